package wire

import (
	"errors"
	"testing"
)

func checkErr(t *testing.T, err error, n NotifyType, p PayloadType, reason string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want *Error %s", err, err, reason)
	}
	if e.Notify != n || e.Payload != p || e.Reason != reason {
		t.Fatalf("error %+v, want notify %d payload %d reason %s", e, n, p, reason)
	}
	if e.Error() == "" {
		t.Fatal("empty Error()")
	}
}

// msg wraps a payload chain in a header with a correct Length.
func msg(first PayloadType, chain ...byte) []byte {
	h := Header{Version: Version, Exchange: INFORMATIONAL, NextPayload: first,
		Length: uint32(HeaderLen + len(chain))}
	return append(AppendHeader(nil, &h), chain...)
}

// gen is a generic payload header followed by body, with length computed.
func gen(next PayloadType, flags byte, body ...byte) []byte {
	l := GenericHeaderLen + len(body)
	return append([]byte{byte(next), flags, byte(l >> 8), byte(l)}, body...)
}

func cat(bs ...[]byte) []byte {
	var r []byte
	for _, b := range bs {
		r = append(r, b...)
	}
	return r
}

var nonce16 = seq(16, 0)

func TestHeaderErrors(t *testing.T) {
	v := saInitVector
	for _, n := range []int{0, 1, 27} {
		_, err := Parse(v[:n])
		checkErr(t, err, NotifyInvalidSyntax, 0, "truncated_header")
		_, err = ParseHeader(v[:n])
		checkErr(t, err, NotifyInvalidSyntax, 0, "truncated_header")
	}
	// Length larger than what was received.
	_, err := Parse(v[:len(v)-1])
	checkErr(t, err, NotifyInvalidSyntax, 0, "truncated_header")
	// Octets beyond Length.
	_, err = Parse(append(append([]byte{}, v...), 0))
	checkErr(t, err, NotifyInvalidSyntax, 0, "bad_length")
	// Length below the header length.
	b := append([]byte{}, v...)
	b[27] = 27
	b[26] = 0
	_, err = Parse(b)
	checkErr(t, err, NotifyInvalidSyntax, 0, "bad_length")
	// Major versions other than 2; the minor version is ignored.
	for _, ver := range []byte{0x10, 0x30, 0xf0, 0x00} {
		b := append([]byte{}, v...)
		b[17] = ver
		_, err = Parse(b)
		checkErr(t, err, NotifyInvalidMajorVersion, 0, "bad_version")
	}
	b = append([]byte{}, v...)
	b[17] = 0x21
	if m, err := Parse(b); err != nil || m.Header.Version != 0x21 {
		t.Fatalf("minor version 1: %v", err)
	}
}

func TestChainErrors(t *testing.T) {
	tests := []struct {
		name   string
		b      []byte
		n      NotifyType
		p      PayloadType
		reason string
	}{
		{"payload length past end", func() []byte {
			b := msg(PayloadNonce, gen(0, 0, nonce16...)...)
			b[HeaderLen+3]++
			return b
		}(), NotifyInvalidSyntax, PayloadNonce, "bad_length"},
		{"payload length below 4", msg(PayloadVendorID, 0, 0, 0, 3), NotifyInvalidSyntax, PayloadVendorID, "bad_length"},
		{"payload length 0", msg(PayloadVendorID, 0, 0, 0, 0, 1, 2, 3, 4), NotifyInvalidSyntax, PayloadVendorID, "bad_length"},
		{"payload header truncated", msg(PayloadVendorID, 0, 0, 0), NotifyInvalidSyntax, PayloadVendorID, "bad_length"},
		{"next payload beyond end", msg(PayloadVendorID, gen(PayloadNonce, 0, 1)...), NotifyInvalidSyntax, PayloadNonce, "bad_length"},
		{"trailing octets", msg(PayloadVendorID, append(gen(0, 0, 1), 0, 0, 0, 4)...), NotifyInvalidSyntax, PayloadVendorID, "bad_length"},
		{"octets without payloads", msg(0, 1, 2, 3, 4), NotifyInvalidSyntax, 0, "bad_length"},
		{"unknown critical", msg(PayloadVendorID, cat(gen(99, 0, 1), gen(0, 0x80, 1, 2))...), NotifyUnsupportedCriticalPayload, 99, "unsupported_critical_payload"},
		{"unknown critical first", msg(1, gen(0, 0xff)...), NotifyUnsupportedCriticalPayload, 1, "unsupported_critical_payload"},
		{"SK not last", msg(PayloadSK, cat(gen(PayloadIDi, 0, 1, 2, 3), gen(0, 0, 1))...), NotifyInvalidSyntax, PayloadSK, "invalid_syntax"},
		{"SKF not last", msg(PayloadSKF, cat(gen(0, 0, 0, 1, 0, 1), gen(0, 0, 1))...), NotifyInvalidSyntax, PayloadSKF, "invalid_syntax"},
		{"SKF short", msg(PayloadSKF, gen(0, 0, 0, 1, 0)...), NotifyInvalidSyntax, PayloadSKF, "invalid_syntax"},
		{"SKF number 0", msg(PayloadSKF, gen(0, 0, 0, 0, 0, 1)...), NotifyInvalidSyntax, PayloadSKF, "invalid_syntax"},
		{"SKF number > total", msg(PayloadSKF, gen(0, 0, 0, 3, 0, 2)...), NotifyInvalidSyntax, PayloadSKF, "invalid_syntax"},
		{"nonce short", msg(PayloadNonce, gen(0, 0, seq(15, 0)...)...), NotifyInvalidSyntax, PayloadNonce, "invalid_syntax"},
		{"nonce long", msg(PayloadNonce, gen(0, 0, seq(257, 0)...)...), NotifyInvalidSyntax, PayloadNonce, "invalid_syntax"},
		{"KE short", msg(PayloadKE, gen(0, 0, 0, 19, 0)...), NotifyInvalidSyntax, PayloadKE, "invalid_syntax"},
		{"IDi short", msg(PayloadIDi, gen(0, 0, 2, 0, 0)...), NotifyInvalidSyntax, PayloadIDi, "invalid_syntax"},
		{"IDr short", msg(PayloadIDr, gen(0, 0)...), NotifyInvalidSyntax, PayloadIDr, "invalid_syntax"},
		{"CERT empty", msg(PayloadCERT, gen(0, 0)...), NotifyInvalidSyntax, PayloadCERT, "invalid_syntax"},
		{"CERTREQ empty", msg(PayloadCERTREQ, gen(0, 0)...), NotifyInvalidSyntax, PayloadCERTREQ, "invalid_syntax"},
		{"AUTH short", msg(PayloadAUTH, gen(0, 0, 2, 0, 0)...), NotifyInvalidSyntax, PayloadAUTH, "invalid_syntax"},
		{"notify short", msg(PayloadNotify, gen(0, 0, 0, 0, 0x40)...), NotifyInvalidSyntax, PayloadNotify, "invalid_syntax"},
		{"notify SPI past end", msg(PayloadNotify, gen(0, 0, 3, 4, 0x40, 0x09, 1, 2, 3)...), NotifyInvalidSyntax, PayloadNotify, "invalid_syntax"},
		{"delete short", msg(PayloadDelete, gen(0, 0, 3, 4, 0)...), NotifyInvalidSyntax, PayloadDelete, "invalid_syntax"},
		{"delete count too high", msg(PayloadDelete, gen(0, 0, 3, 4, 0, 2, 1, 2, 3, 4)...), NotifyInvalidSyntax, PayloadDelete, "invalid_syntax"},
		{"delete count too low", msg(PayloadDelete, gen(0, 0, 3, 4, 0, 1, 1, 2, 3, 4, 5)...), NotifyInvalidSyntax, PayloadDelete, "invalid_syntax"},
		{"delete ESP SPI size 8", msg(PayloadDelete, gen(0, 0, 3, 8, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8)...), NotifyInvalidSyntax, PayloadDelete, "invalid_syntax"},
		{"delete IKE SPI size 4", msg(PayloadDelete, gen(0, 0, 1, 4, 0, 1, 1, 2, 3, 4)...), NotifyInvalidSyntax, PayloadDelete, "invalid_syntax"},
		{"delete IKE with count", msg(PayloadDelete, gen(0, 0, 1, 0, 0, 1)...), NotifyInvalidSyntax, PayloadDelete, "invalid_syntax"},
		{"TS short", msg(PayloadTSi, gen(0, 0, 0, 0, 0)...), NotifyInvalidSyntax, PayloadTSi, "invalid_syntax"},
		{"TS count too high", msg(PayloadTSi, gen(0, 0, cat([]byte{2, 0, 0, 0}, ts4())...)...), NotifyInvalidSyntax, PayloadTSi, "invalid_syntax"},
		{"TS count too low", msg(PayloadTSr, gen(0, 0, cat([]byte{1, 0, 0, 0}, ts4(), ts4())...)...), NotifyInvalidSyntax, PayloadTSr, "invalid_syntax"},
		{"TS IPv4 length 40", msg(PayloadTSi, gen(0, 0, cat([]byte{1, 0, 0, 0}, func() []byte { b := ts6(); b[0] = 7; return b }())...)...), NotifyInvalidSyntax, PayloadTSi, "invalid_syntax"},
		{"TS IPv6 length 16", msg(PayloadTSi, gen(0, 0, cat([]byte{1, 0, 0, 0}, func() []byte { b := ts4(); b[0] = 8; return b }())...)...), NotifyInvalidSyntax, PayloadTSi, "invalid_syntax"},
		{"TS IPv6 truncated", msg(PayloadTSi, gen(0, 0, cat([]byte{1, 0, 0, 0}, ts6()[:39])...)...), NotifyInvalidSyntax, PayloadTSi, "invalid_syntax"},
		{"TS unknown type", msg(PayloadTSi, gen(0, 0, cat([]byte{1, 0, 0, 0}, func() []byte { b := ts4(); b[0] = 9; return b }())...)...), NotifyInvalidSyntax, PayloadTSi, "invalid_syntax"},
		{"CP short", msg(PayloadCP, gen(0, 0, 1, 0, 0)...), NotifyInvalidSyntax, PayloadCP, "invalid_syntax"},
		{"CP attribute past end", msg(PayloadCP, gen(0, 0, 1, 0, 0, 0, 0, 1, 0, 5, 1, 2, 3, 4)...), NotifyInvalidSyntax, PayloadCP, "invalid_syntax"},
		{"CP attribute header truncated", msg(PayloadCP, gen(0, 0, 1, 0, 0, 0, 0, 1, 0)...), NotifyInvalidSyntax, PayloadCP, "invalid_syntax"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse(tc.b)
			if err == nil {
				t.Fatalf("parsed: %#v", m)
			}
			checkErr(t, err, tc.n, tc.p, tc.reason)
			_, err = ParsePayloads(PayloadType(tc.b[16]), tc.b[HeaderLen:])
			checkErr(t, err, tc.n, tc.p, tc.reason)
		})
	}
}

func ts4() []byte {
	return []byte{7, 0, 0, 16, 0, 0, 255, 255, 10, 0, 0, 0, 10, 0, 0, 255}
}

func ts6() []byte {
	b := []byte{8, 0, 0, 40, 0, 0, 255, 255}
	return append(b, seq(32, 0)...)
}

func TestUnknownNonCriticalSkipped(t *testing.T) {
	b := msg(PayloadVendorID, cat(gen(99, 0, 1), gen(PayloadNonce, 0x7f, 7, 8), gen(0, 0, nonce16...))...)
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Payloads) != 3 {
		t.Fatalf("%d payloads", len(m.Payloads))
	}
	u, ok := m.Payloads[1].(*Unknown)
	if !ok || u.T != 99 || u.Critical || len(u.Data) != 2 || u.Data[0] != 7 {
		t.Fatalf("unknown payload %#v", m.Payloads[1])
	}
	if _, ok := m.Payloads[2].(*Nonce); !ok {
		t.Fatalf("chain did not continue past the unknown payload: %#v", m.Payloads[2])
	}
}

func TestKnownCriticalIgnored(t *testing.T) {
	b := msg(PayloadNonce, gen(0, 0x80, nonce16...)...)
	m, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if b2 := m.Marshal(); b2[HeaderLen+1] != 0 {
		t.Fatal("critical bit resent on a known payload")
	}
}

// sa builds an SA payload chain from a proposal body.
func saMsg(body ...byte) []byte { return msg(PayloadSA, gen(0, 0, body...)...) }

func TestSAErrors(t *testing.T) {
	tr := func(last byte, attrs ...byte) []byte {
		l := 8 + len(attrs)
		return append([]byte{last, 0, byte(l >> 8), byte(l), 1, 0, 0, 12}, attrs...)
	}
	prop := func(last byte, spi []byte, n byte, trs ...byte) []byte {
		l := 8 + len(spi) + len(trs)
		b := []byte{last, 0, byte(l >> 8), byte(l), 1, 1, byte(len(spi)), n}
		return append(append(b, spi...), trs...)
	}
	good := prop(0, nil, 2, cat(tr(3, 0x80, 14, 0, 128), tr(0))...)
	if m, err := Parse(saMsg(good...)); err != nil {
		t.Fatalf("good SA: %v", err)
	} else if tt := m.Payloads[0].(*SA).Proposals[0].Transforms; len(tt) != 2 || tt[0].KeyLength != 128 {
		t.Fatalf("good SA: %#v", tt)
	}
	// Unknown attributes, TV and TLV, are skipped and flagged.
	m, err := Parse(saMsg(prop(0, nil, 1, tr(0, 0x80, 1, 0, 5, 0, 2, 0, 3, 1, 2, 3, 0x80, 14, 1, 0)...)...))
	if err != nil {
		t.Fatalf("unknown attrs: %v", err)
	}
	if got := m.Payloads[0].(*SA).Proposals[0].Transforms[0]; !got.UnknownAttrs || got.KeyLength != 256 {
		t.Fatalf("unknown attrs: %#v", got)
	}
	// ...and survive a round trip as unknown.
	m2, err := Parse(m.Marshal())
	if err != nil || !m2.Payloads[0].(*SA).Proposals[0].Transforms[0].UnknownAttrs {
		t.Fatalf("unknown attrs round trip: %v", err)
	}

	bad := map[string][]byte{
		"empty SA":                     nil,
		"proposal header truncated":    good[:7],
		"proposal length past end":     func() []byte { b := append([]byte{}, good...); b[3]++; return b }(),
		"proposal length short":        func() []byte { b := append([]byte{}, good...); b[3]--; return b }(),
		"proposal length below header": func() []byte { b := prop(0, nil, 0); b[3] = 4; return b }(),
		"proposal length below SPI":    func() []byte { b := prop(0, []byte{1, 2, 3, 4}, 0); b[3] = 10; return b[:10] }(),
		"more but last":                prop(2, nil, 2, cat(tr(3), tr(0))...),
		"last but more":                cat(prop(0, nil, 1, tr(0)...), prop(0, nil, 1, tr(0)...)),
		"bad last substruc":            prop(1, nil, 1, tr(0)...),
		"too many transforms":          prop(0, nil, 3, cat(tr(3), tr(0))...),
		"too few transforms":           prop(0, nil, 1, cat(tr(3), tr(0))...),
		"transform last mismatch":      prop(0, nil, 2, cat(tr(0), tr(0))...),
		"transform last on non-last":   prop(0, nil, 2, cat(tr(3), tr(3))...),
		"transform bad substruc":       prop(0, nil, 1, tr(2)...),
		"transform length short":       prop(0, nil, 1, func() []byte { b := tr(0); b[3] = 7; return b }()...),
		"transform length past end":    prop(0, nil, 1, func() []byte { b := tr(0); b[3] = 9; return b }()...),
		"attribute truncated":          prop(0, nil, 1, tr(0, 0x80, 14)...),
		"TLV attribute past end":       prop(0, nil, 1, tr(0, 0, 1, 0, 2, 1)...),
		"transform header truncated":   prop(0, nil, 1, tr(0)[:6]...),
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(saMsg(body...))
			checkErr(t, err, NotifyInvalidSyntax, PayloadSA, "invalid_syntax")
		})
	}
}
