package kerberos

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// The Kerberos V5 GSS-API mechanism's token framing (RFC 1964 §1.1,
// RFC 2743 §3.1, RFC 4121 §4.1): context establishment tokens, and the
// RFC 1964 per-message tokens used with RC4-HMAC keys (RFC 4757 §7), are
//
//	0x60 <DER length> 0x06 <OID length> <mechanism OID> <TOK_ID, 2 octets> <body>
//
// RFC 4121's per-message tokens (TOK_ID 05 04 and 04 04) have no framing.

// Mechanism OIDs, DER-encoded with their tag and length.
var (
	// oidKRB5 is 1.2.840.113554.1.2.2, the Kerberos V5 mechanism (RFC 1964).
	oidKRB5 = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}
	// oidMSKRB5 is 1.2.840.48018.1.2.2, the OID Windows 2000 used for the
	// same mechanism (in SPNEGO); accepted on input, answered in kind.
	oidMSKRB5 = []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02}
)

// Token identifiers (TOK_ID), RFC 1964 §1.1 and §1.2, RFC 4121 §4.1 and §4.2.6.
const (
	tokAPReq    uint16 = 0x0100
	tokAPRep    uint16 = 0x0200
	tokError    uint16 = 0x0300
	tokWrapV1   uint16 = 0x0201 // RFC 1964 / RFC 4757 Wrap
	tokWrapCFX  uint16 = 0x0504 // RFC 4121 Wrap
	tokMICV1    uint16 = 0x0101
	tokMICCFX   uint16 = 0x0404
	maxGSSToken        = 64 << 10 // far above any ticket a KDC issues
)

// GSS context flags carried in the authenticator checksum (RFC 4121
// §4.1.1.1, RFC 2744 §5.19).
const (
	flagDeleg    uint32 = 1
	flagMutual   uint32 = 2
	flagReplay   uint32 = 4
	flagSequence uint32 = 8
	flagConf     uint32 = 16
	flagInteg    uint32 = 32
)

// initiatorFlags are what iked asks for, the set racoon asks MIT for
// (mutual authentication, sequencing, confidentiality, integrity).
const initiatorFlags = flagMutual | flagSequence | flagConf | flagInteg

// chksumGSS is the authenticator checksum type of RFC 4121 §4.1.1 (0x8003).
const chksumGSS = 0x8003

// frameToken wraps a mechanism token body in the RFC 2743 §3.1 framing.
func frameToken(oid []byte, tokID uint16, body []byte) []byte {
	inner := len(oid) + 2 + len(body)
	out := make([]byte, 0, inner+6)
	out = append(out, 0x60)
	out = appendDERLength(out, inner)
	out = append(out, oid...)
	out = binary.BigEndian.AppendUint16(out, tokID)
	return append(out, body...)
}

func appendDERLength(b []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(b, byte(n))
	case n < 0x100:
		return append(b, 0x81, byte(n))
	case n < 0x10000:
		return append(b, 0x82, byte(n>>8), byte(n))
	default:
		return append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
}

// framed is a parsed framed token.
type framed struct {
	oid   []byte // the mechanism OID as sent (aliases the input)
	tokID uint16
	body  []byte // aliases the input
}

var errNotFramed = errors.New("not a GSS-API initial context token (tag 0x60)")

// parseFramed reads a framed token. The outer length must cover the token
// exactly and the mechanism must be Kerberos V5 under either OID.
func parseFramed(tok []byte) (framed, error) {
	var f framed
	if len(tok) > maxGSSToken {
		return f, fmt.Errorf("GSS token of %d octets is too long", len(tok))
	}
	if len(tok) < 2 || tok[0] != 0x60 {
		return f, errNotFramed
	}
	n, hdr, err := readDERLength(tok[1:])
	if err != nil {
		return f, err
	}
	rest := tok[1+hdr:]
	if n != len(rest) {
		return f, fmt.Errorf("GSS token length %d does not match its %d octets", n, len(rest))
	}
	switch {
	case bytes.HasPrefix(rest, oidKRB5):
		f.oid = rest[:len(oidKRB5)]
	case bytes.HasPrefix(rest, oidMSKRB5):
		f.oid = rest[:len(oidMSKRB5)]
	default:
		return f, errors.New("GSS token is not of the Kerberos V5 mechanism (OID 1.2.840.113554.1.2.2)")
	}
	rest = rest[len(f.oid):]
	if len(rest) < 2 {
		return f, errors.New("GSS token has no TOK_ID")
	}
	f.tokID = binary.BigEndian.Uint16(rest)
	f.body = rest[2:]
	return f, nil
}

// readDERLength reads a definite DER length (at most 3 octets of it),
// returning the length and how many octets encoded it.
func readDERLength(b []byte) (n, used int, err error) {
	if len(b) == 0 {
		return 0, 0, errors.New("GSS token truncated in its length")
	}
	if b[0] < 0x80 {
		return int(b[0]), 1, nil
	}
	k := int(b[0] & 0x7f)
	if k == 0 || k > 3 || len(b) < 1+k {
		return 0, 0, errors.New("GSS token has a bad DER length")
	}
	for _, c := range b[1 : 1+k] {
		n = n<<8 | int(c)
	}
	if n < 0x80 || (k > 1 && b[1] == 0) {
		return 0, 0, errors.New("GSS token length is not minimally encoded")
	}
	return n, 1 + k, nil
}

// gssChecksum builds the authenticator checksum of RFC 4121 §4.1.1: Lgth
// 16, no channel bindings (Bnd all zero: IKE binds the exchange through
// the HASH instead), the flags, all little-endian.
func gssChecksum(flags uint32) []byte {
	c := make([]byte, 24)
	binary.LittleEndian.PutUint32(c[0:4], 16)
	binary.LittleEndian.PutUint32(c[20:24], flags)
	return c
}

// parseGSSChecksum returns the flags of an RFC 4121 §4.1.1 checksum. The
// channel bindings are ignored: iked passes none (as racoon does), and
// RFC 4121 §4.1.1.2 lets an acceptor without bindings accept any.
// Delegation (a forwarded TGT) is not supported and ignored.
func parseGSSChecksum(c []byte) (uint32, error) {
	if len(c) < 24 {
		return 0, fmt.Errorf("GSS authenticator checksum of %d octets, want at least 24", len(c))
	}
	if l := binary.LittleEndian.Uint32(c[0:4]); l != 16 {
		return 0, fmt.Errorf("GSS authenticator checksum has a channel binding length of %d, want 16", l)
	}
	return binary.LittleEndian.Uint32(c[20:24]), nil
}
