package wire

import (
	"bytes"
	"net/netip"
	"reflect"
	"testing"
)

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func hdr(x ExchangeType, f Flags, id uint32) Header {
	return Header{
		SPIi: 0x0102030405060708, SPIr: 0x1112131415161718,
		Version: Version, Exchange: x, Flags: f, MessageID: id,
	}
}

// testMessages are messages that between them hold every payload type.
func testMessages() map[string]*Message {
	return map[string]*Message{
		"empty": {Header: hdr(INFORMATIONAL, FlagInitiator, 7)},
		"sa_init": {Header: hdr(IKE_SA_INIT, FlagInitiator, 0), Payloads: []Payload{
			&SA{Proposals: []Proposal{
				{Number: 1, Protocol: ProtoIKE, Transforms: []Transform{
					{Type: TransformENCR, ID: 12, KeyLength: 256},
					{Type: TransformENCR, ID: 20, KeyLength: 128},
					{Type: TransformPRF, ID: 5},
					{Type: TransformINTEG, ID: 12},
					{Type: TransformDH, ID: 31},
				}},
				{Number: 2, Protocol: ProtoIKE, SPI: seq(8, 0xa0), Transforms: []Transform{
					{Type: TransformENCR, ID: 20, KeyLength: 256},
					{Type: TransformPRF, ID: 7},
					{Type: TransformDH, ID: 19, UnknownAttrs: true},
				}},
				{Number: 3, Protocol: ProtoESP, SPI: seq(4, 0xb0)},
			}},
			&KE{Group: 31, Data: seq(32, 1)},
			&KE{Group: 0},
			&Nonce{Data: seq(32, 0x40)},
			&Notify{Code: NotifyNATDetectionSourceIP, Data: seq(20, 0x60)},
			&Notify{Code: NotifyNATDetectionDestinationIP, Data: seq(20, 0x80)},
			&Notify{Protocol: ProtoESP, SPI: seq(4, 0x90), Code: NotifyRekeySA},
			&Notify{Code: NotifyIKEv2FragmentationSupported},
			&Unknown{T: 200, Data: []byte("opaque")},
			&Unknown{T: 201},
			&VendorID{Data: []byte("iked")},
			&CertReq{Encoding: 4, Data: seq(40, 0)},
		}},
		"auth": {Header: hdr(IKE_AUTH, FlagInitiator, 1), Payloads: []Payload{
			&ID{IDType: IDFQDN, Data: []byte("initiator.example")},
			&ID{Responder: true, IDType: IDIPv4Addr, Data: []byte{192, 0, 2, 1}},
			&Cert{Encoding: 4, Data: seq(100, 3)},
			&Cert{Encoding: 12},
			&CertReq{Encoding: 4},
			&Auth{Method: AuthDigitalSig, Data: seq(64, 9)},
			&Auth{Method: AuthNullAuth},
			&CP{CfgType: 1, Attrs: []CPAttribute{{Type: 1}, {Type: 8}, {Type: 3, Value: []byte{8, 8, 8, 8}}}},
			&CP{CfgType: 2},
			&EAP{Data: []byte{1, 2, 0, 5, 1}},
			&EAP{},
			&TS{Selectors: []TrafficSelector{
				{Type: TSIPv4AddrRange, StartPort: 0, EndPort: 65535,
					StartAddr: netip.MustParseAddr("10.0.0.0"), EndAddr: netip.MustParseAddr("10.0.0.255")},
				{Type: TSIPv6AddrRange, IPProtocol: 17, StartPort: 500, EndPort: 4500,
					StartAddr: netip.MustParseAddr("2001:db8::"), EndAddr: netip.MustParseAddr("2001:db8::ffff")},
			}},
			&TS{Responder: true, Selectors: []TrafficSelector{
				{Type: TSIPv6AddrRange, IPProtocol: 6, StartPort: 80, EndPort: 80,
					StartAddr: netip.MustParseAddr("::"), EndAddr: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")},
			}},
			&TS{Responder: true},
			&Delete{Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{seq(4, 1), seq(4, 5), seq(4, 9)}},
			&Delete{Protocol: ProtoIKE},
			&Nonce{Data: seq(16, 0)},
			&Nonce{Data: seq(256, 0)},
			&VendorID{},
			&Unknown{T: 3, Data: []byte{1}},
		}},
		"sk": {Header: hdr(IKE_AUTH, FlagInitiator, 1), Payloads: []Payload{
			&VendorID{Data: []byte("x")},
			&Encrypted{First: PayloadIDi, Body: seq(80, 0)},
		}},
		"sk_only_empty": {Header: hdr(INFORMATIONAL, FlagResponse, 9), Payloads: []Payload{
			&Encrypted{},
		}},
		"skf": {Header: hdr(IKE_AUTH, FlagResponse, 1), Payloads: []Payload{
			&EncryptedFragment{First: PayloadIDr, Number: 1, Total: 3, Body: seq(60, 5)},
		}},
		"skf_later": {Header: hdr(IKE_AUTH, FlagResponse, 1), Payloads: []Payload{
			&EncryptedFragment{Number: 3, Total: 3, Body: seq(10, 5)},
		}},
		"unknown_noncritical_only": {Header: hdr(INFORMATIONAL, 0, 2), Payloads: []Payload{
			&Unknown{T: 150, Critical: false, Data: []byte{9}},
		}},
	}
}

func TestRoundTrip(t *testing.T) {
	for name, m := range testMessages() {
		t.Run(name, func(t *testing.T) {
			b := m.Marshal()
			if int(m.Header.Length) != len(b) {
				t.Fatalf("Header.Length %d, wrote %d octets", m.Header.Length, len(b))
			}
			want := PayloadNone
			if len(m.Payloads) > 0 {
				want = m.Payloads[0].Type()
			}
			if m.Header.NextPayload != want {
				t.Fatalf("Header.NextPayload %d, want %d", m.Header.NextPayload, want)
			}
			got, err := Parse(b)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("round trip differs:\n got %#v\nwant %#v", got, m)
			}
			for i := range m.Payloads {
				if !reflect.DeepEqual(got.Payloads[i], m.Payloads[i]) {
					t.Errorf("payload %d: got %#v want %#v", i, got.Payloads[i], m.Payloads[i])
				}
			}
			if b2 := got.Marshal(); !bytes.Equal(b, b2) {
				t.Fatalf("second Marshal differs:\n%x\n%x", b, b2)
			}
			// The chain alone round-trips through ParsePayloads too.
			ps, err := ParsePayloads(m.Header.NextPayload, b[HeaderLen:])
			if err != nil {
				t.Fatalf("ParsePayloads: %v", err)
			}
			if !reflect.DeepEqual(ps, m.Payloads) {
				t.Fatalf("ParsePayloads differs")
			}
			if c := AppendPayloads([]byte{0xee}, ps); !bytes.Equal(c[1:], b[HeaderLen:]) || c[0] != 0xee {
				t.Fatalf("AppendPayloads differs")
			}
		})
	}
}

func TestUnknownCriticalSent(t *testing.T) {
	m := &Message{Header: hdr(INFORMATIONAL, 0, 2), Payloads: []Payload{
		&Nonce{Data: seq(16, 0)},
		&Unknown{T: 150, Critical: true, Data: []byte{9}},
	}}
	b := m.Marshal()
	if b[HeaderLen+20+1] != 0x80 {
		t.Fatalf("critical bit not written: %x", b[HeaderLen+20:])
	}
	if b[HeaderLen+1] != 0 {
		t.Fatalf("critical bit written on a known payload")
	}
	_, err := Parse(b)
	checkErr(t, err, NotifyUnsupportedCriticalPayload, 150, "unsupported_critical_payload")
}

func TestAliasing(t *testing.T) {
	m := &Message{Header: hdr(INFORMATIONAL, 0, 0), Payloads: []Payload{
		&VendorID{Data: []byte("abc")}, &Nonce{Data: seq(16, 0)},
	}}
	b := m.Marshal()
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	v := got.Payloads[0].(*VendorID)
	if cap(v.Data) != len(v.Data) {
		t.Fatalf("parsed slice capacity %d exceeds length %d", cap(v.Data), len(v.Data))
	}
	_ = append(v.Data, 'z')
	if !bytes.Equal(got.Payloads[1].(*Nonce).Data, seq(16, 0)) {
		t.Fatal("append to a parsed field clobbered the next payload")
	}
}

func TestIDAppendBody(t *testing.T) {
	id := &ID{IDType: IDKeyID, Data: []byte{1, 2}}
	if got, want := id.AppendBody([]byte{9}), []byte{9, 11, 0, 0, 0, 1, 2}; !bytes.Equal(got, want) {
		t.Fatalf("AppendBody = %x, want %x", got, want)
	}
}

func TestFind(t *testing.T) {
	n := &Notify{Code: NotifyCookie}
	ps := []Payload{&Nonce{}, n, &ID{Responder: true}}
	if Find(ps, PayloadNotify) != n || Find(ps, PayloadIDi) != nil || Find(ps, PayloadIDr) == nil {
		t.Fatal("Find")
	}
	if FindNotify(ps, NotifyCookie) != n || FindNotify(ps, NotifyRekeySA) != nil {
		t.Fatal("FindNotify")
	}
}

func TestErrorString(t *testing.T) {
	e := &Error{Notify: NotifyInvalidSyntax, Payload: PayloadSA, Reason: "invalid_syntax", Detail: "x"}
	if got := e.Error(); got != "ike/wire: invalid_syntax in payload 33: x" {
		t.Fatalf("Error() = %q", got)
	}
	e = &Error{Notify: NotifyInvalidSyntax, Reason: "truncated_header"}
	if got := e.Error(); got != "ike/wire: truncated_header" {
		t.Fatalf("Error() = %q", got)
	}
}
