package wire

import (
	"bytes"
	"reflect"
	"testing"
)

// saInitVector is a minimal IKE_SA_INIT request written out by hand from
// RFC 7296 §3: SA (one IKE proposal: ENCR_AES_CBC with a 128-bit key,
// DH group 19), KE (group 19, four octets of data) and a 16-octet Nonce.
var saInitVector = []byte{
	// IKE header (§3.1)
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // SPIi
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // SPIr
	33,         // Next Payload: SA
	0x20,       // Version 2.0
	34,         // Exchange: IKE_SA_INIT
	0x08,       // Flags: Initiator
	0, 0, 0, 0, // Message ID
	0, 0, 0, 92, // Length
	// SA payload (§3.3)
	34, 0x00, 0, 32, // Next: KE, not critical, length 32
	0, 0, 0, 28, // proposal: last, reserved, length 28
	1, 1, 0, 2, // proposal 1, IKE, SPI size 0, 2 transforms
	3, 0, 0, 12, // transform: more, reserved, length 12
	1, 0, 0, 12, // ENCR, reserved, ENCR_AES_CBC
	0x80, 14, 0, 128, // TV Key Length 128
	0, 0, 0, 8, // transform: last, reserved, length 8
	4, 0, 0, 19, // DH, reserved, group 19
	// KE payload (§3.4)
	40, 0x00, 0, 12, // Next: Nonce, length 12
	0, 19, 0, 0, // group 19, reserved
	0xde, 0xad, 0xbe, 0xef,
	// Nonce payload (§3.9)
	0, 0x00, 0, 20, // Next: none, length 20
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
}

func TestVector(t *testing.T) {
	m, err := Parse(saInitVector)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	h := m.Header
	if h.SPIi != 0x0102030405060708 || h.SPIr != 0 {
		t.Errorf("SPIs %x %x", h.SPIi, h.SPIr)
	}
	if h.NextPayload != PayloadSA || h.Version != 0x20 || h.Exchange != IKE_SA_INIT ||
		h.Flags != FlagInitiator || h.MessageID != 0 || h.Length != 92 {
		t.Errorf("header %+v", h)
	}
	if !h.FromInitiator() || h.IsResponse() {
		t.Errorf("flags %v", h.Flags)
	}
	if len(m.Payloads) != 3 {
		t.Fatalf("%d payloads", len(m.Payloads))
	}
	sa, ok := m.Payloads[0].(*SA)
	if !ok || len(sa.Proposals) != 1 {
		t.Fatalf("payload 0: %#v", m.Payloads[0])
	}
	p := sa.Proposals[0]
	if p.Number != 1 || p.Protocol != ProtoIKE || p.SPI != nil || len(p.Transforms) != 2 {
		t.Fatalf("proposal %#v", p)
	}
	if got := p.Transforms[0]; got != (Transform{Type: TransformENCR, ID: 12, KeyLength: 128}) {
		t.Errorf("transform 0 %#v", got)
	}
	if got := p.Transforms[1]; got != (Transform{Type: TransformDH, ID: 19}) {
		t.Errorf("transform 1 %#v", got)
	}
	ke, ok := m.Payloads[1].(*KE)
	if !ok || ke.Group != 19 || !bytes.Equal(ke.Data, []byte{0xde, 0xad, 0xbe, 0xef}) {
		t.Errorf("payload 1: %#v", m.Payloads[1])
	}
	n, ok := m.Payloads[2].(*Nonce)
	if !ok || !bytes.Equal(n.Data, seq(16, 0)) {
		t.Errorf("payload 2: %#v", m.Payloads[2])
	}

	// Building the same message from structures gives the same octets.
	want := &Message{
		Header: Header{SPIi: 0x0102030405060708, Version: Version, Exchange: IKE_SA_INIT, Flags: FlagInitiator},
		Payloads: []Payload{
			&SA{Proposals: []Proposal{{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
				{Type: TransformENCR, ID: 12, KeyLength: 128},
				{Type: TransformDH, ID: 19},
			}}}},
			&KE{Group: 19, Data: []byte{0xde, 0xad, 0xbe, 0xef}},
			&Nonce{Data: seq(16, 0)},
		},
	}
	if b := want.Marshal(); !bytes.Equal(b, saInitVector) {
		t.Fatalf("Marshal:\n got %x\nwant %x", b, saInitVector)
	}
	if !reflect.DeepEqual(want, m) {
		t.Fatalf("parsed %#v, want %#v", m, want)
	}

	h2, err := ParseHeader(saInitVector[:HeaderLen+10])
	if err == nil {
		t.Fatalf("ParseHeader of a short message: %+v", h2)
	}
	if h2, err = ParseHeader(saInitVector); err != nil || h2 != h {
		t.Fatalf("ParseHeader: %+v %v", h2, err)
	}
	if b := AppendHeader(nil, &h); !bytes.Equal(b, saInitVector[:HeaderLen]) {
		t.Fatalf("AppendHeader %x", b)
	}
}
