package flood

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/iked/iked/ike/wire"
)

// A request is a well-formed IKE_SA_INIT: header, SA, KE (X25519), Nonce.
func TestRequest(t *testing.T) {
	b, err := Request(0x0102030405060708)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.SPIi != 0x0102030405060708 || m.Header.SPIr != 0 || m.Header.Exchange != wire.IKE_SA_INIT || m.Header.IsResponse() || !m.Header.FromInitiator() {
		t.Fatalf("header %+v", m.Header)
	}
	ke, _ := wire.Find(m.Payloads, wire.PayloadKE).(*wire.KE)
	if wire.Find(m.Payloads, wire.PayloadSA) == nil || ke == nil || len(ke.Data) != 32 || wire.Find(m.Payloads, wire.PayloadNonce) == nil {
		t.Fatalf("payloads %v", m.Payloads)
	}
}

// Packet builds the IPv4 and UDP headers as the wire has them, with valid
// checksums.
func TestPacket(t *testing.T) {
	src, dst := netip.MustParseAddrPort("10.77.0.64:1234"), netip.MustParseAddrPort("10.77.0.1:500")
	payload := []byte("odd-length payload")
	p, err := Packet(src, dst, payload)
	if err != nil {
		t.Fatal(err)
	}
	if p[0] != 0x45 || p[9] != 17 || int(binary.BigEndian.Uint16(p[2:])) != len(p) || len(p) != 28+len(payload) {
		t.Fatalf("IP header % x", p[:20])
	}
	if got := netip.AddrFrom4([4]byte(p[12:16])); got != src.Addr() {
		t.Fatalf("source %v", got)
	}
	if got := netip.AddrFrom4([4]byte(p[16:20])); got != dst.Addr() {
		t.Fatalf("destination %v", got)
	}
	if fold(sum(p[:20], 0)) != 0xffff {
		t.Fatal("IP header checksum does not verify")
	}
	u := p[20:]
	if binary.BigEndian.Uint16(u) != 1234 || binary.BigEndian.Uint16(u[2:]) != 500 || int(binary.BigEndian.Uint16(u[4:])) != 8+len(payload) {
		t.Fatalf("UDP header % x", u[:8])
	}
	var pseudo [12]byte
	copy(pseudo[:4], p[12:16])
	copy(pseudo[4:8], p[16:20])
	pseudo[9] = 17
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(u)))
	if fold(sum(u, sum(pseudo[:], 0))) != 0xffff {
		t.Fatal("UDP checksum does not verify")
	}
	if string(u[8:]) != string(payload) {
		t.Fatal("payload changed")
	}
	if _, err := Packet(netip.MustParseAddrPort("[2001:db8::1]:1"), dst, nil); err == nil {
		t.Fatal("IPv6 source accepted")
	}
}

func TestRunNeedsBounds(t *testing.T) {
	if _, err := Run(t.Context(), Options{Target: netip.MustParseAddrPort("127.0.0.1:500"), Sources: []netip.Addr{netip.MustParseAddr("127.0.0.2")}}); err == nil {
		t.Fatal("an unbounded flood was started")
	}
}
