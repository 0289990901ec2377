package sadb

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// fakeBackend is a Backend that can be told to refuse SPIs.
type fakeBackend struct {
	mu       sync.Mutex
	sas      map[ID]SA
	refuse   map[uint32]error // AddSA of these SPIs fails
	deleteFn func(ID) error   // when set, DeleteSA returns its result first
	closeErr error
	closed   bool
	deletes  []ID
}

var errRefused = errors.New("fake: refused")

func newFake() *fakeBackend {
	return &fakeBackend{sas: map[ID]SA{}, refuse: map[uint32]error{}}
}

func (*fakeBackend) Name() string { return "fake" }

func (b *fakeBackend) AddSA(sa *SA) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.refuse[sa.SPI]; err != nil {
		return err
	}
	if _, dup := b.sas[sa.ID()]; dup {
		return fmt.Errorf("fake: %v exists", sa.ID())
	}
	b.sas[sa.ID()] = *sa
	return nil
}

func (b *fakeBackend) DeleteSA(id ID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deletes = append(b.deletes, id)
	if b.deleteFn != nil {
		if err := b.deleteFn(id); err != nil {
			return err
		}
	}
	if _, ok := b.sas[id]; !ok {
		return fmt.Errorf("fake: %w", ErrNotFound)
	}
	delete(b.sas, id)
	return nil
}

func (b *fakeBackend) Counters(id ID) (Counters, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.sas[id]; !ok {
		return Counters{}, ErrNotFound
	}
	return Counters{Bytes: 100, Packets: 1}, nil
}

func (b *fakeBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.sas = map[ID]SA{}
	return b.closeErr
}

func (b *fakeBackend) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.sas)
}

var (
	local  = netip.MustParseAddr("192.0.2.1")
	remote = netip.MustParseAddr("198.51.100.7")
	// Distinctive key bytes, easy to spot in formatted output.
	encrKeyBytes  = []byte{0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe, 0x13, 0x37, 0x42, 0x99, 0xab, 0xcd, 0xef, 0x01}
	integKeyBytes = []byte{0xfe, 0xed, 0xfa, 0xce, 0x0b, 0xad, 0xf0, 0x0d, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00}
)

func testSA(spi uint32, inbound bool) *SA {
	sa := &SA{
		SPI: spi, Protocol: ESP, Mode: Tunnel, Inbound: inbound,
		Src: remote, Dst: local,
		EncrID: 12, EncrKeyBits: 128, EncrKey: Key(bytes.Clone(encrKeyBytes)),
		IntegID: 12, IntegKey: Key(bytes.Clone(integKeyBytes)),
	}
	if !inbound {
		sa.Src, sa.Dst = local, remote
	}
	return sa
}

func TestAllocateSPIUniqueAndNotReserved(t *testing.T) {
	db := New(newFake())
	const n = 100000
	seen := make(map[uint32]struct{}, n)
	for i := range n {
		spi, err := db.AllocateSPI()
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		if spi < 256 {
			t.Fatalf("allocation %d: SPI %d is in the reserved range 0-255 (RFC 4303 §2.1)", i, spi)
		}
		if _, dup := seen[spi]; dup {
			t.Fatalf("allocation %d: SPI %08x handed out twice", i, spi)
		}
		seen[spi] = struct{}{}
	}
	if len(db.reserved) != n {
		t.Errorf("db.reserved holds %d SPIs after %d allocations", len(db.reserved), n)
	}
}

func TestAllocateSPIConcurrent(t *testing.T) {
	db := New(newFake())
	const workers, each = 8, 2000
	out := make([][]uint32, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				spi, err := db.AllocateSPI()
				if err != nil {
					t.Error(err)
					return
				}
				out[w] = append(out[w], spi)
			}
		})
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for _, spis := range out {
		for _, spi := range spis {
			if seen[spi] || spi < 256 {
				t.Fatalf("SPI %08x duplicated or reserved", spi)
			}
			seen[spi] = true
		}
	}
	if len(seen) != workers*each {
		t.Errorf("got %d SPIs, want %d", len(seen), workers*each)
	}
}

func TestReleaseSPI(t *testing.T) {
	db := New(newFake())
	a, err := db.AllocateSPI()
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.AllocateSPI()
	if err != nil {
		t.Fatal(err)
	}
	db.ReleaseSPI(a)
	if _, ok := db.reserved[a]; ok {
		t.Errorf("ReleaseSPI(%08x) left it reserved", a)
	}
	if _, ok := db.reserved[b]; !ok {
		t.Errorf("ReleaseSPI(%08x) also released %08x", a, b)
	}
	db.ReleaseSPI(12345) // never allocated: no effect, no panic
	if len(db.reserved) != 1 {
		t.Errorf("reserved = %v, want only %08x", db.reserved, b)
	}
}

func TestRemoveReleasesInboundSPI(t *testing.T) {
	db := New(newFake())
	spi, err := db.AllocateSPI()
	if err != nil {
		t.Fatal(err)
	}
	in := testSA(spi, true)
	if err := db.Install(in); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.reserved[spi]; !ok {
		t.Fatal("installed inbound SPI not reserved")
	}
	if err := db.Remove(in.ID()); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.reserved[spi]; ok {
		t.Error("Remove of an inbound SA left its SPI reserved")
	}
}

func TestRemoveOutboundKeepsInboundReservation(t *testing.T) {
	// The peer chooses outbound SPIs, which may equal one of our inbound
	// SPIs; removing the outbound SA must not free our inbound SPI.
	db := New(newFake())
	spi, err := db.AllocateSPI()
	if err != nil {
		t.Fatal(err)
	}
	out := testSA(spi, false)
	if err := db.Install(out); err != nil {
		t.Fatal(err)
	}
	if err := db.Remove(out.ID()); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.reserved[spi]; !ok {
		t.Error("Remove of an outbound SA released the inbound SPI of the same number")
	}
}

func TestInstallTwo(t *testing.T) {
	be := newFake()
	db := New(be)
	in, out := testSA(0x1000, true), testSA(0x2000, false)
	if err := db.Install(in, out); err != nil {
		t.Fatal(err)
	}
	if db.Len() != 2 || be.len() != 2 {
		t.Fatalf("Len() = %d, backend holds %d, want 2 and 2", db.Len(), be.len())
	}
	for _, sa := range []*SA{in, out} {
		if _, ok := be.sas[sa.ID()]; !ok {
			t.Errorf("backend lacks %v", sa.ID())
		}
	}
	if db.Backend() != Backend(be) {
		t.Error("Backend() is not the backend given to New")
	}
	c, err := db.Counters(in.ID())
	if err != nil || c.Packets != 1 {
		t.Errorf("Counters = %+v, %v", c, err)
	}
}

func TestInstallRollback(t *testing.T) {
	for _, n := range []int{2, 3, 4} {
		t.Run(fmt.Sprint(n, " SAs"), func(t *testing.T) {
			be := newFake()
			db := New(be)
			var sas []*SA
			for i := range n {
				sas = append(sas, testSA(uint32(0x1000+i), i%2 == 0))
			}
			last := sas[n-1].SPI
			be.refuse[last] = errRefused
			err := db.Install(sas...)
			if err == nil {
				t.Fatal("Install succeeded although the backend refused an SA")
			}
			if !errors.Is(err, errRefused) {
				t.Errorf("Install error %v does not wrap the backend's error", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%08x", last)) {
				t.Errorf("Install error %q does not name SPI %08x", err, last)
			}
			if be.len() != 0 {
				t.Errorf("backend holds %d SAs after a failed Install, want 0: %v", be.len(), be.sas)
			}
			if db.Len() != 0 {
				t.Errorf("Len() = %d after a failed Install, want 0", db.Len())
			}
			// Nothing left behind: the same SAs install once the backend agrees.
			delete(be.refuse, last)
			if err := db.Install(sas...); err != nil {
				t.Fatalf("Install after rollback: %v", err)
			}
			if db.Len() != n || be.len() != n {
				t.Errorf("Len() = %d, backend %d, want %d", db.Len(), be.len(), n)
			}
		})
	}
}

func TestInstallFirstRefused(t *testing.T) {
	be := newFake()
	db := New(be)
	be.refuse[0x1000] = errRefused
	if err := db.Install(testSA(0x1000, true), testSA(0x2000, false)); !errors.Is(err, errRefused) {
		t.Fatalf("Install = %v, want errRefused", err)
	}
	if be.len() != 0 || db.Len() != 0 {
		t.Errorf("backend %d, Len %d, want 0, 0", be.len(), db.Len())
	}
}

func isZero(b []byte) bool { return len(b) > 0 && bytes.Equal(b, make([]byte, len(b))) }

func TestRemoveWipesKeys(t *testing.T) {
	be := newFake()
	db := New(be)
	in, out := testSA(0x1000, true), testSA(0x2000, false)
	if err := db.Install(in, out); err != nil {
		t.Fatal(err)
	}
	if err := db.Remove(in.ID(), out.ID()); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []*SA{in, out} {
		if !isZero(sa.EncrKey) || !isZero(sa.IntegKey) {
			t.Errorf("SA %08x keys not wiped: encr %x integ %x", sa.SPI, []byte(sa.EncrKey), []byte(sa.IntegKey))
		}
	}
	if db.Len() != 0 || be.len() != 0 {
		t.Errorf("Len() = %d, backend %d after Remove, want 0", db.Len(), be.len())
	}
}

func TestRemoveMissing(t *testing.T) {
	be := newFake()
	db := New(be)
	a, b := testSA(0x1000, true), testSA(0x2000, false)
	if err := db.Install(a, b); err != nil {
		t.Fatal(err)
	}
	missing := ID{Dst: local, Protocol: ESP, SPI: 0xdead}
	err := db.Remove(a.ID(), missing, b.ID())
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove with a missing SA = %v, want ErrNotFound", err)
	}
	if db.Len() != 0 || be.len() != 0 {
		t.Errorf("the others were not removed: Len() = %d, backend %d", db.Len(), be.len())
	}
	if !isZero(b.EncrKey) || !isZero(b.IntegKey) {
		t.Error("SA after the missing one not wiped")
	}
}

func TestRemoveReturnsFirstError(t *testing.T) {
	be := newFake()
	db := New(be)
	a, b := testSA(0x1000, true), testSA(0x2000, false)
	if err := db.Install(a, b); err != nil {
		t.Fatal(err)
	}
	first := errors.New("first")
	be.deleteFn = func(id ID) error {
		if id.SPI == 0x1000 {
			return first
		}
		return nil
	}
	missing := ID{Dst: local, Protocol: ESP, SPI: 0xdead}
	if err := db.Remove(a.ID(), missing, b.ID()); !errors.Is(err, first) {
		t.Errorf("Remove = %v, want the first error", err)
	}
	if len(be.deletes) != 3 {
		t.Errorf("backend saw %d deletes, want 3 (every SA tried)", len(be.deletes))
	}
}

func TestClose(t *testing.T) {
	be := newFake()
	db := New(be)
	sas := []*SA{testSA(0x1000, true), testSA(0x2000, false), testSA(0x3000, true)}
	if err := db.Install(sas...); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if !be.closed {
		t.Error("Close did not close the backend")
	}
	if db.Len() != 0 {
		t.Errorf("Len() = %d after Close", db.Len())
	}
	if len(be.deletes) != len(sas) {
		t.Errorf("Close deleted %d SAs from the backend, want %d", len(be.deletes), len(sas))
	}
	for _, sa := range sas {
		if !isZero(sa.EncrKey) || !isZero(sa.IntegKey) {
			t.Errorf("SA %08x keys not wiped by Close", sa.SPI)
		}
	}
}

func TestCloseErrors(t *testing.T) {
	be := newFake()
	be.closeErr = errors.New("close failed")
	db := New(be)
	if err := db.Close(); !errors.Is(err, be.closeErr) {
		t.Errorf("Close = %v, want the backend's close error", err)
	}

	// A removal error wins, but the backend is still closed.
	be = newFake()
	db = New(be)
	if err := db.Install(testSA(0x1000, true)); err != nil {
		t.Fatal(err)
	}
	rmErr := errors.New("delete failed")
	be.deleteFn = func(ID) error { return rmErr }
	be.closeErr = errors.New("close failed")
	if err := db.Close(); !errors.Is(err, rmErr) {
		t.Errorf("Close = %v, want the removal error", err)
	}
	if !be.closed {
		t.Error("backend not closed after a removal error")
	}
}

func TestKeyNeverPrints(t *testing.T) {
	k := Key(bytes.Clone(encrKeyBytes))
	// The detector itself finds the bytes printed as a plain []byte.
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X"} {
		if !revealsKey(fmt.Sprintf(f, []byte(k))) {
			t.Fatalf("revealsKey misses %s of the raw bytes", f)
		}
	}
	if k.String() != "[redacted]" {
		t.Errorf("String() = %q", k.String())
	}
	if k.GoString() != "sadb.Key{[redacted]}" {
		t.Errorf("GoString() = %q", k.GoString())
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		for _, v := range []any{k, &k, []Key{k}} {
			if got := fmt.Sprintf(f, v); revealsKey(got) {
				t.Errorf("Sprintf(%q, %T) = %s reveals the key", f, v, got)
			}
		}
	}
}

// revealsKey reports whether s holds the test key bytes in a form fmt
// prints []byte: hex (%x, %X), decimal (%v), Go syntax (%#v) or raw (%s).
func revealsKey(s string) bool {
	for _, kb := range [][]byte{encrKeyBytes, integKeyBytes} {
		lower := strings.ToLower(s)
		if strings.Contains(lower, fmt.Sprintf("%x", kb[:4])) ||
			strings.Contains(s, strings.Trim(fmt.Sprint(kb[:4]), "[]")) ||
			strings.Contains(lower, fmt.Sprintf("%#x, %#x", kb[0], kb[1])) ||
			strings.Contains(s, string(kb[:4])) {
			return true
		}
	}
	return false
}

func TestSANeverPrintsKeys(t *testing.T) {
	sa := testSA(0x1000, true)
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
		for _, v := range []any{sa, *sa, []SA{*sa}} {
			if got := fmt.Sprintf(f, v); revealsKey(got) {
				t.Errorf("Sprintf(%q, %T) = %s reveals key bytes", f, v, got)
			}
		}
	}
	// Containers of pointers are only checked with the %v family: with a
	// verb that is invalid for a pointer (%s, %q), fmt's bad-verb path
	// prints the pointee without calling any String method.
	for _, f := range []string{"%v", "%+v", "%#v"} {
		for _, v := range []any{[]*SA{sa}, map[ID]*SA{sa.ID(): sa}, struct{ In, Out *SA }{sa, sa}} {
			if got := fmt.Sprintf(f, v); revealsKey(got) {
				t.Errorf("Sprintf(%q, %T) = %s reveals key bytes", f, v, got)
			}
		}
	}
	if got := fmt.Sprintf("%+v", sa); !strings.Contains(got, "EncrKey:[redacted]") {
		t.Errorf("%%+v of an SA = %s, want EncrKey:[redacted]", got)
	}
}

func TestProtocolModeStrings(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{ESP.String(), "esp"},
		{AH.String(), "ah"},
		{Protocol(99).String(), "proto99"},
		{Tunnel.String(), "tunnel"},
		{Transport.String(), "transport"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if ESP != 50 || AH != 51 {
		t.Error("protocols are not IP protocol numbers")
	}
}

func TestSAID(t *testing.T) {
	sa := testSA(0xabcdef, true)
	if got, want := sa.ID(), (ID{Dst: local, Protocol: ESP, SPI: 0xabcdef}); got != want {
		t.Errorf("ID() = %+v, want %+v", got, want)
	}
}
