package adsource

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/iked/iked/policy/gpipsec"
)

// fakeDirectory answers like a domain controller, or fails like an
// unreachable one.
type fakeDirectory struct {
	snap *Snapshot
	down bool
}

var errDown = errors.New("dial tcp 10.0.0.10:389: connect: connection refused")

func (f *fakeDirectory) Stamp(context.Context) (Stamp, string, error) {
	if f.down {
		return Stamp{}, "", errDown
	}
	return f.snap.Stamp, f.snap.DC, nil
}

func (f *fakeDirectory) Read(context.Context) (*Snapshot, error) {
	if f.down {
		return nil, errDown
	}
	c := *f.snap
	return &c, nil
}

func (f *fakeDirectory) BaseDN() string { return "DC=corp,DC=example" }

func snapshot(usn uint64, n int) *Snapshot {
	s := &Snapshot{DC: "10.0.0.10:389", ReadAt: time.Now().Round(0), Stamp: Stamp{HighestUSN: usn, Count: n}}
	for range n {
		s.Objects = append(s.Objects, &gpipsec.Object{DN: "CN=ipsecFilter{…},CN=IP Security", Class: gpipsec.ClassFilter, Data: []byte{1, 2}})
	}
	return s
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(discard{}, nil)) }

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestSourceReadsCachesAndFallsBackToTheCache(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "sub", "cache.json")
	dir := &fakeDirectory{snap: snapshot(100, 3)}
	ok := func(*Snapshot) error { return nil }
	s := NewSource(dir, "Secure Server", cache, time.Minute, quiet())
	got, err := s.Initial(context.Background(), ok)
	if err != nil || got.Stamp != dir.snap.Stamp {
		t.Fatalf("initial: %+v %v", got, err)
	}
	if st := s.Status(); st.Origin != FromDirectory || st.Fetches[OutcomeChanged] != 1 {
		t.Errorf("status %+v", st)
	}
	fi, err := os.Stat(cache)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache: %v %v (the objects may hold pre-shared keys: owner only)", fi, err)
	}
	// The DC is down at the next start: the cached snapshot is used.
	dir.down = true
	s2 := NewSource(dir, "Secure Server", cache, time.Minute, quiet())
	got, err = s2.Initial(context.Background(), ok)
	if err != nil || !reflect.DeepEqual(got.Stamp, dir.snap.Stamp) || len(got.Objects) != 3 {
		t.Fatalf("from the cache: %+v %v", got, err)
	}
	if st := s2.Status(); st.Origin != FromCache || st.LastError == "" || st.Fetches[OutcomeCache] != 1 {
		t.Errorf("status %+v", st)
	}
	// A snapshot the daemon refuses falls back to the cache too.
	dir.down = false
	refuse := func(s *Snapshot) error {
		if s.Stamp.HighestUSN == 200 {
			return errors.New("CN=ipsecNFA{…}: Auth-Type 7 is unknown")
		}
		return nil
	}
	dir.snap = snapshot(200, 3)
	s3 := NewSource(dir, "Secure Server", cache, time.Minute, quiet())
	if got, err := s3.Initial(context.Background(), refuse); err != nil || got.Stamp.HighestUSN != 100 {
		t.Fatalf("refused directory policy: %+v %v", got, err)
	}
	// Nothing at all: an error that says both.
	dir.down = true
	s4 := NewSource(dir, "Secure Server", filepath.Join(t.TempDir(), "none.json"), time.Minute, quiet())
	if _, err := s4.Initial(context.Background(), ok); err == nil {
		t.Fatal("no DC and no cache: no error")
	}
}

func TestSourcePollOutcomes(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "cache.json")
	dir := &fakeDirectory{snap: snapshot(100, 3)}
	s := NewSource(dir, "p", cache, time.Minute, quiet())
	var applied []Stamp
	var refuse bool
	s.Apply = func(sn *Snapshot) error {
		if refuse {
			return errors.New("refused")
		}
		applied = append(applied, sn.Stamp)
		return nil
	}
	if _, err := s.Initial(context.Background(), func(*Snapshot) error { return nil }); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		change func()
		want   string
	}{
		{func() {}, OutcomeUnchanged},
		{func() { dir.snap = snapshot(101, 3) }, OutcomeChanged}, // an object changed
		{func() { dir.snap = snapshot(101, 2) }, OutcomeChanged}, // one deleted: the count moves
		{func() { dir.down = true }, OutcomeError},
		{func() { dir.down = false }, OutcomeUnchanged},
		{func() { dir.snap, refuse = snapshot(150, 2), true }, OutcomeRefused},
	}
	for i, st := range steps {
		st.change()
		if got := s.Poll(context.Background()); got != st.want {
			t.Errorf("step %d: %s, want %s", i, got, st.want)
		}
	}
	if want := []Stamp{{101, 3}, {101, 2}}; !reflect.DeepEqual(applied, want) {
		t.Errorf("applied %v, want %v", applied, want)
	}
	st := s.Status()
	if st.Stamp != (Stamp{101, 2}) || st.LastError != "refused" {
		t.Errorf("the running policy's stamp %v, last error %q", st.Stamp, st.LastError)
	}
	if c, err := LoadCache(cache); err != nil || c.Stamp != (Stamp{101, 2}) {
		t.Errorf("the cache holds %+v %v, want the last applied", c, err)
	}
}

func TestControllersFromSRV(t *testing.T) {
	r, err := New(Config{Domain: "corp.example", Kerberos: nilKerberos,
		LookupSRV: func(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
			if service != "ldap" || proto != "tcp" || name != "dc._msdcs.corp.example" {
				return "", nil, errors.New("unexpected lookup " + service + proto + name)
			}
			return "", []*net.SRV{{Target: "dc1.corp.example.", Port: 389}, {Target: "dc2.corp.example.", Port: 3268}}, nil
		},
		LookupHost: func(_ context.Context, host string) ([]netip.Addr, error) {
			return map[string][]netip.Addr{"dc1.corp.example": {netip.MustParseAddr("10.0.0.10")}, "dc2.corp.example": {netip.MustParseAddr("10.0.0.11")}}[host], nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.controllers(context.Background())
	if err != nil || !reflect.DeepEqual(got, []string{"dc1.corp.example:389", "dc2.corp.example:3268"}) {
		t.Fatalf("%v %v", got, err)
	}
	if got := r.Addresses(); !reflect.DeepEqual(got, []netip.Addr{netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.11")}) {
		t.Errorf("the DCs found are exempt: %v", got)
	}
	if r.BaseDN() != "DC=corp,DC=example" {
		t.Errorf("base DN %s", r.BaseDN())
	}
	if _, err := New(Config{DCs: []string{"10.0.0.10"}, Domain: "corp.example", Kerberos: nilKerberos}); err == nil {
		t.Error("a DC by address without an SPN is accepted")
	}
}
