package memory

import (
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/iked/iked/sadb"
)

var _ sadb.Backend = (*Backend)(nil)

func sa(spi uint32, dst string) *sadb.SA {
	return &sadb.SA{
		SPI: spi, Protocol: sadb.ESP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr(dst),
		EncrID: 12, EncrKeyBits: 128, EncrKey: sadb.Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
	}
}

func TestName(t *testing.T) {
	if New().Name() != "memory" {
		t.Errorf("Name() = %q", New().Name())
	}
}

func TestAddSADuplicate(t *testing.T) {
	b := New()
	a := sa(0x1000, "10.0.0.2")
	if err := b.AddSA(a); err != nil {
		t.Fatal(err)
	}
	dup := sa(0x1000, "10.0.0.2")
	dup.EncrKeyBits = 256 // same ID, other content
	if err := b.AddSA(dup); err == nil {
		t.Error("AddSA of a duplicate ID succeeded")
	}
	if got := b.SAs(); len(got) != 1 || got[0].EncrKeyBits != 128 {
		t.Errorf("duplicate replaced or added: %+v", got)
	}
	// Same SPI, other destination or protocol: a different SA.
	if err := b.AddSA(sa(0x1000, "10.0.0.3")); err != nil {
		t.Errorf("AddSA same SPI other Dst: %v", err)
	}
	ah := sa(0x1000, "10.0.0.2")
	ah.Protocol = sadb.AH
	if err := b.AddSA(ah); err != nil {
		t.Errorf("AddSA same SPI other protocol: %v", err)
	}
	if n := len(b.SAs()); n != 3 {
		t.Errorf("holds %d SAs, want 3", n)
	}
}

func TestDeleteSA(t *testing.T) {
	b := New()
	a := sa(0x1000, "10.0.0.2")
	if err := b.AddSA(a); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteSA(a.ID()); err != nil {
		t.Fatal(err)
	}
	if n := len(b.SAs()); n != 0 {
		t.Errorf("holds %d SAs after DeleteSA", n)
	}
	err := b.DeleteSA(a.ID())
	if !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("DeleteSA of a missing SA = %v, want errors.Is ErrNotFound", err)
	}
	if err := b.AddSA(a); err != nil {
		t.Errorf("AddSA after DeleteSA: %v", err)
	}
}

func TestCount(t *testing.T) {
	b := New()
	a := sa(0x1000, "10.0.0.2")
	if err := b.AddSA(a); err != nil {
		t.Fatal(err)
	}
	c, err := b.Counters(a.ID())
	if err != nil || c != (sadb.Counters{}) {
		t.Fatalf("fresh Counters = %+v, %v", c, err)
	}
	for _, n := range []int{100, 1500, 0} {
		if err := b.Count(a.ID(), n); err != nil {
			t.Fatal(err)
		}
	}
	c, err = b.Counters(a.ID())
	if err != nil || c != (sadb.Counters{Bytes: 1600, Packets: 3}) {
		t.Errorf("Counters = %+v, %v, want 1600 bytes, 3 packets", c, err)
	}
	missing := sadb.ID{Dst: a.Dst, Protocol: sadb.ESP, SPI: 0x9999}
	if err := b.Count(missing, 1); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("Count of a missing SA = %v", err)
	}
	if _, err := b.Counters(missing); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("Counters of a missing SA = %v", err)
	}
	// Counters start over for a re-added SA.
	if err := b.DeleteSA(a.ID()); err != nil {
		t.Fatal(err)
	}
	if err := b.AddSA(a); err != nil {
		t.Fatal(err)
	}
	if c, _ := b.Counters(a.ID()); c != (sadb.Counters{}) {
		t.Errorf("re-added SA has counters %+v", c)
	}
}

func TestSAsReturnsCopies(t *testing.T) {
	b := New()
	a := sa(0x1000, "10.0.0.2")
	if err := b.AddSA(a); err != nil {
		t.Fatal(err)
	}
	// AddSA keeps a copy: changing the caller's SA afterwards changes nothing.
	a.SPI = 0x2000
	a.ESN = true
	got := b.SAs()
	if len(got) != 1 || got[0].SPI != 0x1000 || got[0].ESN {
		t.Fatalf("SAs() = %+v, want the SA as added", got)
	}
	// Changing a returned SA does not change the backend.
	got[0].SPI = 0x3000
	got[0].EncrKeyBits = 1
	again := b.SAs()
	if again[0].SPI != 0x1000 || again[0].EncrKeyBits != 128 {
		t.Errorf("SAs() returned the stored SA, not a copy: now %+v", again[0])
	}
	if _, err := b.Counters(sadb.ID{Dst: a.Dst, Protocol: sadb.ESP, SPI: 0x1000}); err != nil {
		t.Errorf("SA lost its ID after a returned copy was changed: %v", err)
	}
}

func TestClose(t *testing.T) {
	b := New()
	for i := range uint32(5) {
		if err := b.AddSA(sa(0x1000+i, "10.0.0.2")); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(b.SAs()); n != 0 {
		t.Errorf("holds %d SAs after Close", n)
	}
}

func TestConcurrent(t *testing.T) {
	b := New()
	var wg sync.WaitGroup
	for w := range uint32(8) {
		wg.Go(func() {
			s := sa(0x10000*(w+1), "10.0.0.2")
			for range 200 {
				if err := b.AddSA(s); err != nil {
					t.Error(err)
					return
				}
				_ = b.Count(s.ID(), 10)
				_, _ = b.Counters(s.ID())
				_ = b.SAs()
				if err := b.DeleteSA(s.ID()); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(b.SAs()); n != 0 {
		t.Errorf("holds %d SAs", n)
	}
}
