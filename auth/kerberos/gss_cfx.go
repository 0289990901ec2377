package kerberos

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/crypto/etype"
	"github.com/jcmturner/gokrb5/v8/types"
)

// RFC 4121 §4.2 per-message tokens, for the enctypes RFC 4121 calls
// "newer" (AES with SHA-1 or SHA-2, and any other RFC 3961 enctype but
// DES, 3DES and RC4). gokrb5's gssapi.WrapToken covers only the
// integrity-only form without rotation; the sealed form, which MIT's
// gss_wrap (and so racoon) sends for the IKEv1 HASH, is written here.
//
//	TOK_ID 05 04 | Flags | 0xFF | EC (2) | RRC (2) | SND_SEQ (8) | data
//
// Sealed:          data = rotate(encrypt(plaintext | EC filler octets | header with RRC 0), RRC)
// Integrity only:  data = rotate(plaintext | checksum(plaintext | header with EC and RRC 0), RRC), EC = checksum length

// Flags of an RFC 4121 token (§4.2.2).
const (
	cfxSentByAcceptor byte = 0x01
	cfxSealed         byte = 0x02
	cfxAcceptorSubkey byte = 0x04
)

// Key usages of RFC 4121 §2: Wrap tokens use the SEAL usages whether or
// not they are sealed (the SIGN usages are for MIC tokens).
const (
	usageAcceptorSeal  = 22
	usageInitiatorSeal = 24
)

const cfxHeaderLen = 16

// isCFX reports whether tokens keyed with this enctype use RFC 4121's
// format; false for DES (1–3), 3DES (16) and RC4 (23, 24), which use
// RFC 1964's.
func isCFX(enctype int32) bool {
	switch enctype {
	case 1, 2, 3, 16, 23, 24:
		return false
	}
	return true
}

func cfxHeader(flags byte, ec, rrc uint16, seq uint64) []byte {
	h := make([]byte, cfxHeaderLen)
	h[0], h[1], h[2], h[3] = 0x05, 0x04, flags, 0xff
	binary.BigEndian.PutUint16(h[4:], ec)
	binary.BigEndian.PutUint16(h[6:], rrc)
	binary.BigEndian.PutUint64(h[8:], seq)
	return h
}

// cfxWrap makes a sealed (conf) or integrity-only Wrap token with EC 0
// (sealed) and RRC 0, as MIT sends them. fromAcceptor and acceptorSubkey
// set the flags; key is the key they name.
func cfxWrap(key types.EncryptionKey, msg []byte, seq uint64, conf, fromAcceptor, acceptorSubkey bool) ([]byte, error) {
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, err
	}
	var flags byte
	if fromAcceptor {
		flags |= cfxSentByAcceptor
	}
	if acceptorSubkey {
		flags |= cfxAcceptorSubkey
	}
	usage := uint32(usageInitiatorSeal)
	if fromAcceptor {
		usage = usageAcceptorSeal
	}
	if conf {
		flags |= cfxSealed
		hdr := cfxHeader(flags, 0, 0, seq)
		plain := make([]byte, 0, len(msg)+cfxHeaderLen)
		plain = append(append(plain, msg...), hdr...)
		_, ct, err := et.EncryptMessage(key.KeyValue, plain, usage)
		if err != nil {
			return nil, err
		}
		return append(hdr, ct...), nil
	}
	zero := cfxHeader(flags, 0, 0, seq)
	sum, err := et.GetChecksumHash(key.KeyValue, append(append([]byte(nil), msg...), zero...), usage)
	if err != nil {
		return nil, err
	}
	hdr := cfxHeader(flags, uint16(len(sum)), 0, seq)
	out := make([]byte, 0, cfxHeaderLen+len(msg)+len(sum))
	return append(append(append(out, hdr...), msg...), sum...), nil
}

// cfxToken is a parsed RFC 4121 Wrap token header.
type cfxToken struct {
	flags   byte
	ec, rrc uint16
	seq     uint64
	data    []byte // after the header, still rotated
}

func parseCFX(tok []byte) (cfxToken, error) {
	var t cfxToken
	if len(tok) < cfxHeaderLen {
		return t, fmt.Errorf("RFC 4121 token of %d octets is shorter than its header", len(tok))
	}
	if tok[0] != 0x05 || tok[1] != 0x04 {
		return t, fmt.Errorf("not an RFC 4121 Wrap token (TOK_ID %02x %02x)", tok[0], tok[1])
	}
	if tok[3] != 0xff {
		return t, errors.New("RFC 4121 Wrap token: filler octet is not 0xFF")
	}
	if tok[2]&^(cfxSentByAcceptor|cfxSealed|cfxAcceptorSubkey) != 0 {
		return t, fmt.Errorf("RFC 4121 Wrap token: unknown flags %#02x", tok[2])
	}
	t.flags = tok[2]
	t.ec = binary.BigEndian.Uint16(tok[4:])
	t.rrc = binary.BigEndian.Uint16(tok[6:])
	t.seq = binary.BigEndian.Uint64(tok[8:])
	t.data = tok[cfxHeaderLen:]
	return t, nil
}

// rotateLeft undoes the sender's right rotation by n (RFC 4121 §4.2.5).
func rotateLeft(b []byte, n int) []byte {
	out := make([]byte, len(b))
	if len(b) == 0 {
		return out
	}
	n %= len(b)
	copy(out, b[n:])
	copy(out[len(b)-n:], b[:n])
	return out
}

// cfxUnwrap checks and opens an RFC 4121 Wrap token sent by the peer
// (fromAcceptor tells which side that is). keyFor returns the key the
// token's AcceptorSubkey flag names, or an error when this context has no
// such key.
func cfxUnwrap(tok []byte, fromAcceptor bool, keyFor func(acceptorSubkey bool) (types.EncryptionKey, error)) (msg []byte, seq uint64, err error) {
	t, err := parseCFX(tok)
	if err != nil {
		return nil, 0, err
	}
	if (t.flags&cfxSentByAcceptor != 0) != fromAcceptor {
		return nil, 0, errors.New("RFC 4121 Wrap token: the SentByAcceptor flag names the wrong side (a reflected token?)")
	}
	key, err := keyFor(t.flags&cfxAcceptorSubkey != 0)
	if err != nil {
		return nil, 0, err
	}
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, 0, err
	}
	usage := uint32(usageInitiatorSeal)
	if fromAcceptor {
		usage = usageAcceptorSeal
	}
	if t.flags&cfxSealed != 0 {
		msg, err := cfxOpen(et, key, t, tok[:cfxHeaderLen], usage)
		return msg, t.seq, err
	}
	sum := et.GetHMACBitLength() / 8
	if int(t.ec) != sum || len(t.data) < sum {
		return nil, 0, fmt.Errorf("RFC 4121 Wrap token: checksum of %d octets (EC %d), want %d", len(t.data), t.ec, sum)
	}
	data := rotateLeft(t.data, int(t.rrc))
	body, got := data[:len(data)-sum], data[len(data)-sum:]
	zero := cfxHeader(t.flags, 0, 0, t.seq)
	want, err := et.GetChecksumHash(key.KeyValue, append(append([]byte(nil), body...), zero...), usage)
	if err != nil {
		return nil, 0, err
	}
	if !hmac.Equal(got, want) {
		return nil, 0, errors.New("RFC 4121 Wrap token: checksum does not verify")
	}
	return body, t.seq, nil
}

// cfxOpen decrypts a sealed token's data and checks the header copy inside
// it. The data is rotated by RRC; Windows has been documented to rotate
// by RRC+EC in some modes (MS-KILE §3.4.5.4.1), so that is tried second.
func cfxOpen(et etype.EType, key types.EncryptionKey, t cfxToken, hdr []byte, usage uint32) ([]byte, error) {
	min := et.GetConfounderByteSize() + et.GetHMACBitLength()/8 + cfxHeaderLen + int(t.ec)
	if len(t.data) < min {
		return nil, fmt.Errorf("RFC 4121 Wrap token: %d octets of sealed data, want at least %d", len(t.data), min)
	}
	var plain []byte
	var err error
	for _, r := range []int{int(t.rrc), int(t.rrc) + int(t.ec)} {
		plain, err = et.DecryptMessage(key.KeyValue, rotateLeft(t.data, r), usage)
		if err == nil || t.ec == 0 {
			break
		}
	}
	if err != nil {
		return nil, errors.New("RFC 4121 Wrap token: sealed data does not decrypt and verify with the context key")
	}
	if len(plain) < cfxHeaderLen+int(t.ec) {
		return nil, errors.New("RFC 4121 Wrap token: sealed data too short")
	}
	inner := plain[len(plain)-cfxHeaderLen:]
	// The inner header equals the outer one, but for RRC (zero inside).
	if !hmac.Equal(inner[:6], hdr[:6]) || !hmac.Equal(inner[8:], hdr[8:]) {
		return nil, errors.New("RFC 4121 Wrap token: the encrypted header copy differs from the header")
	}
	return plain[:len(plain)-cfxHeaderLen-int(t.ec)], nil
}
