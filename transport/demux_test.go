package transport

import (
	"net/netip"
	"testing"
	"time"
)

func header(version byte) []byte {
	b := make([]byte, 28)
	b[0] = 1
	b[17] = version
	return b
}

func readWithin(t *testing.T, b Bind) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 100)
		n, _, err := b.ReadFrom(buf)
		if err != nil {
			got <- nil
			return
		}
		got <- buf[:n]
	}()
	select {
	case p := <-got:
		return p
	case <-time.After(10 * time.Second):
		t.Fatal("no datagram")
		return nil
	}
}

func TestDemux(t *testing.T) {
	a, b := Pipe(netip.MustParseAddrPort("192.0.2.1:500"), netip.MustParseAddrPort("192.0.2.2:500"))
	d := NewDemux(b, 2)
	v2 := d.V2()
	// Without a V1 bind every version goes to V2.
	_ = a.WriteTo(header(0x10), b.LocalAddr())
	if p := readWithin(t, v2); p == nil || p[17] != 0x10 {
		t.Fatalf("IKEv1 datagram before V1: %x", p)
	}
	v1 := d.V1()
	_ = a.WriteTo(header(0x20), b.LocalAddr())
	_ = a.WriteTo(header(0x10), b.LocalAddr())
	if p := readWithin(t, v2); p == nil || p[17] != 0x20 {
		t.Fatalf("V2 got %x", p)
	}
	if p := readWithin(t, v1); p == nil || p[17] != 0x10 {
		t.Fatalf("V1 got %x", p)
	}
	// A short datagram goes to V2, which counts it malformed.
	_ = a.WriteTo([]byte{1, 2, 3}, b.LocalAddr())
	if p := readWithin(t, v2); len(p) != 3 {
		t.Fatalf("short datagram: %x", p)
	}
	// Writes go out through the socket.
	if err := v1.WriteTo([]byte("x"), a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if p := readWithin(t, a); string(p) != "x" {
		t.Fatalf("peer got %q", p)
	}
	// Closing one engine's bind keeps the other's.
	v1.Close()
	_ = a.WriteTo(header(0x20), b.LocalAddr())
	if p := readWithin(t, v2); p == nil {
		t.Fatal("V2 closed with V1")
	}
	v2.Close()
	if _, _, err := v2.ReadFrom(make([]byte, 10)); err != ErrClosed {
		t.Fatalf("read after close: %v", err)
	}
	d.Close()
}

func TestDemuxNATT(t *testing.T) {
	_, b := Pipe(netip.MustParseAddrPort("192.0.2.1:4500"), netip.MustParseAddrPort("192.0.2.2:4500"))
	d := NewDemux(WithNonESPMarker(b), 1)
	defer d.Close()
	if _, ok := d.V1().(NATTBind); !ok {
		t.Fatal("V1 of a NAT-T bind is not a NATTBind")
	}
	if _, ok := d.V2().(NATTBind); !ok {
		t.Fatal("V2 of a NAT-T bind is not a NATTBind")
	}
}
