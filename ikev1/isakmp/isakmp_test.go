package isakmp

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// mainMode1 is a Main Mode first message as built by buildMM1.
func buildMM1() *Message {
	return &Message{
		Header: Header{ICookie: 0x0102030405060708, Exchange: ExchangeMain},
		Payloads: []Payload{
			&SA{DOI: DOIIPsec, Situation: SitIdentityOnly, Proposals: []Proposal{{
				Number: 1, Protocol: ProtoISAKMP,
				Transforms: []Transform{
					{Number: 1, ID: KeyIKE, Attributes: []Attribute{
						BasicAttr(AttrEncryption, EncrAESCBC), BasicAttr(AttrKeyLength, 256),
						BasicAttr(AttrHash, HashSHA256), BasicAttr(AttrAuthMethod, AuthPSK),
						BasicAttr(AttrGroup, 14), BasicAttr(AttrLifeType, LifeSeconds),
						DurationAttr(AttrLifeDuration, 15840*10),
					}},
					{Number: 2, ID: KeyIKE, Attributes: []Attribute{BasicAttr(AttrEncryption, EncrDES3)}},
				},
			}}},
			&VendorID{Data: []byte("0123456789abcdef")},
			&Notify{DOI: DOIIPsec, Protocol: ProtoISAKMP, Code: InitialContact, SPI: make([]byte, 16)},
			&Delete{DOI: DOIIPsec, Protocol: ProtoESP, SPISize: 4, SPIs: [][]byte{{1, 2, 3, 4}, {5, 6, 7, 8}}},
			&ID{IDType: IDIPv4, Protocol: 17, Port: 500, Data: []byte{10, 0, 0, 1}},
			&NATD{Hash: bytes.Repeat([]byte{7}, 20)},
			&NATOA{Addr: netip.MustParseAddr("192.0.2.9")},
			&NATOA{Addr: netip.MustParseAddr("2001:db8::1")},
			&Nonce{Data: bytes.Repeat([]byte{9}, 32)},
			&KE{Data: []byte{1, 2, 3}},
			&Cert{Encoding: CertX509Sig, Data: []byte{0x30, 0}},
			&CertReq{Encoding: CertX509Sig},
			&Hash{Data: []byte{1}},
			&Sig{Data: []byte{2}},
			&GSS{Token: []byte{3, 4}},
			&Unknown{PType: 200, Data: []byte{5}},
		},
	}
}

func TestRoundTrip(t *testing.T) {
	m := buildMM1()
	b := m.Marshal()
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Version != Version || got.Header.Length != uint32(len(b)) || got.Header.Next != PayloadSA {
		t.Fatalf("header %+v", got.Header)
	}
	if len(got.Payloads) != len(m.Payloads) {
		t.Fatalf("%d payloads, want %d", len(got.Payloads), len(m.Payloads))
	}
	// The parsed SA keeps its body; clear it to compare fields.
	sa := got.Payloads[0].(*SA)
	if !bytes.Equal(sa.Body, m.Payloads[0].(*SA).MarshalBody()) {
		t.Error("SA body differs from the marshalled one")
	}
	sa.Body = nil
	for i := range m.Payloads {
		if !reflect.DeepEqual(normalise(got.Payloads[i]), normalise(m.Payloads[i])) {
			t.Errorf("payload %d: got %#v, want %#v", i, got.Payloads[i], m.Payloads[i])
		}
	}
	if v, ok := sa.Proposals[0].Transforms[0].Attributes[6].Uint(); !ok || v != 158400 {
		t.Errorf("life duration %d %v", v, ok)
	}
	if again := (&Message{Header: got.Header, Payloads: got.Payloads}).Marshal(); !bytes.Equal(again, b) {
		t.Error("re-marshalled message differs")
	}
}

// normalise maps empty slices to nil so that DeepEqual compares contents.
func normalise(p Payload) Payload {
	switch v := p.(type) {
	case *CertReq:
		if len(v.Data) == 0 {
			c := *v
			c.Data = nil
			return &c
		}
	case *Notify:
		c := *v
		if len(c.Data) == 0 {
			c.Data = nil
		}
		return &c
	case *SA:
		c := *v
		for i := range c.Proposals {
			if len(c.Proposals[i].SPI) == 0 {
				c.Proposals[i].SPI = nil
			}
		}
		return &c
	}
	return p
}

func TestPaddedBody(t *testing.T) {
	b, first := AppendPayloads(nil, []Payload{&Hash{Data: []byte{1, 2, 3}}, &Nonce{Data: make([]byte, 16)}})
	padded := append(append([]byte(nil), b...), 0, 0, 0, 3)
	body, err := ParseBody(first, padded, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(body.Raw) != len(b) || body.Offsets[1] != 7 {
		t.Fatalf("raw %d offsets %v", len(body.Raw), body.Offsets)
	}
	if _, err := ParseBody(first, padded, false); err == nil {
		t.Fatal("trailing octets accepted without padding")
	}
}

func TestParseErrors(t *testing.T) {
	good := buildMM1().Marshal()
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name   string
		b      []byte
		notify NotifyType
	}{
		{"short", good[:20], PayloadMalformed},
		{"version 2", mutate(func(b []byte) []byte { b[17] = 0x20; return b }), InvalidMajorVersion},
		{"minor", mutate(func(b []byte) []byte { b[17] = 0x11; return b }), InvalidMinorVersion},
		{"flags", mutate(func(b []byte) []byte { b[19] = 0x80; return b }), InvalidFlags},
		{"length", mutate(func(b []byte) []byte { b[27]++; return b }), UnequalPayloadLengths},
		{"cookie", mutate(func(b []byte) []byte { copy(b, make([]byte, 8)); return b }), InvalidCookie},
		{"bad next", mutate(func(b []byte) []byte { b[16] = 50; return b }), InvalidPayloadType},
		{"reserved", mutate(func(b []byte) []byte { b[29] = 1; return b }), PayloadMalformed},
		{"doi", mutate(func(b []byte) []byte { b[35] = 2; return b }), DOINotSupported},
		{"situation", mutate(func(b []byte) []byte { b[39] = 2; return b }), SituationNotSupported},
		{"transform count", mutate(func(b []byte) []byte { b[47] = 3; return b }), BadProposalSyntax},
		{"truncated", good[:len(good)-1], UnequalPayloadLengths},
	}
	for _, tc := range tests {
		if tc.name == "truncated" {
			tc.b = append([]byte(nil), tc.b...)
			tc.b[27]--
		}
		_, err := Parse(tc.b)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error %v", tc.name, err)
			continue
		}
		if tc.name == "truncated" {
			// The last payload's length now overruns the message.
			if e.Notify != PayloadMalformed {
				t.Errorf("%s: notify %s", tc.name, e.Notify)
			}
			continue
		}
		if e.Notify != tc.notify {
			t.Errorf("%s: notify %s, want %s (%v)", tc.name, e.Notify, tc.notify, err)
		}
	}
}

func TestPayloadBounds(t *testing.T) {
	for _, tc := range []struct {
		t PayloadType
		b []byte
	}{
		{PayloadNonce, make([]byte, 7)},
		{PayloadNonce, make([]byte, 257)},
		{PayloadID, []byte{1, 2}},
		{PayloadN, []byte{0, 0, 0, 1, 1, 16, 0, 1}},
		{PayloadD, []byte{0, 0, 0, 1, 3, 4, 0, 2, 1, 2, 3, 4}},
		{PayloadD, []byte{0, 0, 0, 1, 3, 0, 0, 0}},
		{PayloadNATOA, []byte{1, 0, 0, 0, 1, 2, 3}},
		{PayloadFragment, []byte{0, 1, 0, 1}},
		{PayloadFragment, []byte{0, 1, 1, 2}},
		{PayloadKE, nil},
		{PayloadProposal, []byte{0}},
		{PayloadSA, []byte{0, 0, 0, 1, 0, 0, 0, 1}},
	} {
		if p, err := parsePayload(tc.t, tc.b); err == nil {
			t.Errorf("%s %x accepted: %#v", tc.t, tc.b, p)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(buildMM1().Marshal())
	b, first := AppendPayloads(nil, []Payload{&Hash{Data: []byte{1}}, &Fragment{ID: 1, Number: 1, Last: true, Data: []byte{1}}})
	f.Add(append((&Header{ICookie: 1, Next: first, Version: Version, Exchange: ExchangeQuick, Length: uint32(HeaderLen + len(b))}).AppendHeader(nil), b...))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		// What parses re-marshals to a message that parses to the same.
		again, err := Parse(m.Marshal())
		if err != nil {
			t.Fatalf("re-marshalled message does not parse: %v", err)
		}
		if len(again.Payloads) != len(m.Payloads) {
			t.Fatalf("%d payloads, then %d", len(m.Payloads), len(again.Payloads))
		}
	})
}
