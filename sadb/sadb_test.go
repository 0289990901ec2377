package sadb_test

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
)

func pair(spiIn, spiOut uint32) (in, out *sadb.SA) {
	l, r := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	in = &sadb.SA{SPI: spiIn, Protocol: sadb.ESP, Inbound: true, Src: r, Dst: l,
		EncrID: 20, EncrKeyBits: 256, EncrKey: sadb.Key(make([]byte, 36))}
	out = &sadb.SA{SPI: spiOut, Protocol: sadb.ESP, Src: l, Dst: r,
		EncrID: 20, EncrKeyBits: 256, EncrKey: sadb.Key(make([]byte, 36))}
	for i := range in.EncrKey {
		in.EncrKey[i], out.EncrKey[i] = byte(i+1), byte(i+101)
	}
	return in, out
}

// The DB over the memory backend, as the daemon and the engine tests use it.
func TestDBWithMemoryBackend(t *testing.T) {
	mem := memory.New()
	db := sadb.New(mem)
	spi, err := db.AllocateSPI()
	if err != nil {
		t.Fatal(err)
	}
	in, out := pair(spi, 0x0badcafe)
	if err := db.Install(in, out); err != nil {
		t.Fatal(err)
	}
	if db.Len() != 2 || len(mem.SAs()) != 2 {
		t.Fatalf("Len() = %d, memory holds %d, want 2", db.Len(), len(mem.SAs()))
	}
	if err := mem.Count(in.ID(), 1400); err != nil {
		t.Fatal(err)
	}
	c, err := db.Counters(in.ID())
	if err != nil || c != (sadb.Counters{Bytes: 1400, Packets: 1}) {
		t.Errorf("Counters = %+v, %v, want 1400 bytes in 1 packet", c, err)
	}

	// Installing the same SA again is refused and leaves the DB as it was.
	in2, _ := pair(0x12345678, 0)
	if err := db.Install(in2, in); err == nil {
		t.Error("Install of an SA that is already installed succeeded")
	}
	if db.Len() != 2 || len(mem.SAs()) != 2 {
		t.Errorf("after refused Install: Len() = %d, memory %d, want 2", db.Len(), len(mem.SAs()))
	}

	if err := db.Remove(in.ID(), out.ID()); err != nil {
		t.Fatal(err)
	}
	if len(mem.SAs()) != 0 || db.Len() != 0 {
		t.Errorf("after Remove: Len() = %d, memory %d", db.Len(), len(mem.SAs()))
	}
	if err := db.Remove(in.ID()); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}
	if _, err := db.Counters(in.ID()); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("Counters of a removed SA = %v, want ErrNotFound", err)
	}
}

func TestDBCloseWithMemoryBackend(t *testing.T) {
	mem := memory.New()
	db := sadb.New(mem)
	in, out := pair(0x1000, 0x2000)
	if err := db.Install(in, out); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(mem.SAs()); n != 0 || db.Len() != 0 {
		t.Errorf("after Close: memory holds %d, Len() = %d", n, db.Len())
	}
}
