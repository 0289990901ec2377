package transport

import (
	"bytes"
	"net/netip"
	"testing"
)

func TestNonESPMarker(t *testing.T) {
	a, b := Pipe(netip.MustParseAddrPort("192.0.2.1:4500"), netip.MustParseAddrPort("192.0.2.2:4500"))
	ma := WithNonESPMarker(a)
	if err := ma.WriteTo([]byte("ike"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, _, err := b.ReadFrom(buf)
	if err != nil || !bytes.Equal(buf[:n], []byte{0, 0, 0, 0, 'i', 'k', 'e'}) {
		t.Fatalf("wire form %x, %v", buf[:n], err)
	}
	mb := WithNonESPMarker(b)
	// ESP (nonzero SPI) and a keepalive are skipped; the IKE message after them is returned.
	_ = a.WriteTo([]byte{0, 0, 0x10, 0, 1, 2}, b.LocalAddr())
	_ = a.WriteTo([]byte{0xff}, b.LocalAddr())
	_ = ma.WriteTo([]byte("hello"), b.LocalAddr())
	n, _, err = mb.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" || mb.Skipped() != 2 {
		t.Fatalf("read %q, skipped %d, %v", buf[:n], mb.Skipped(), err)
	}
}

func TestUDPLoopback(t *testing.T) {
	a, err := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := ListenUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.WriteTo([]byte("ping"), b.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, from, err := b.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" || from != a.LocalAddr() {
		t.Fatalf("got %q from %s (%v), want ping from %s", buf[:n], from, err, a.LocalAddr())
	}
}
