package kerberos

import (
	"crypto/hmac"
	"crypto/md5" // #nosec G501 -- RC4-HMAC tokens are defined over HMAC-MD5 and MD5 (RFC 4757 section 7.3), for Windows 2003-era realms
	"crypto/rand"
	"crypto/rc4" // #nosec G503 -- the RC4-HMAC enctype's Wrap tokens (RFC 4757 section 7.3), which RC4-only realms need
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// RFC 1964 §1.2.2 Wrap tokens as RFC 4757 §7.3 defines them for RC4-HMAC
// keys: what Windows 2000 and 2003 domains (RC4 machine keys) and MIT
// speak. gokrb5 has no GSS tokens for RC4. The token is framed (OID,
// TOK_ID 02 01) and its body is
//
//	SGN_ALG 11 00 (HMAC-MD5) | SEAL_ALG 10 00 (RC4) or FF FF | FF FF |
//	SND_SEQ (8, encrypted) | SGN_CKSUM (8) | confounder (8) | data | padding
//
// with, for the context key K:
//
//	SGN_CKSUM = HMAC-MD5(HMAC-MD5(K, "signaturekey\0"),
//	                     MD5(LE32(13) | header(8) | confounder | data | padding))[:8]
//	Kcrypt    = HMAC-MD5(HMAC-MD5(K XOR F0…F0, LE32(0)), SND_SEQ[0:4])    ; sealed only
//	confounder | data | padding encrypted with RC4(Kcrypt), one stream
//	SND_SEQ   = RC4(HMAC-MD5(HMAC-MD5(K, LE32(0)), SGN_CKSUM),
//	                BE32(seq) | direction (00000000 from the initiator, FFFFFFFF from the acceptor))
//
// The padding is one octet 0x01 (RC4 is a stream cipher; RFC 4757 §7.3 and
// MIT send one); a receiver accepts 1 to 8 octets of the RFC 1964 form.

const (
	rc4SgnAlgHMACMD5 = 0x0011 // little-endian on the wire: 11 00
	rc4SealAlgRC4    = 0x0010
	rc4SealAlgNone   = 0xffff
	rc4BodyLen       = 6 + 8 + 8 + 8 // after TOK_ID: algs, filler, SND_SEQ, SGN_CKSUM, confounder
	rc4SealUsage     = 13            // RFC 4757 §7.3: the checksum's message type for Wrap
)

func hmacMD5(key []byte, parts ...[]byte) []byte {
	h := hmac.New(md5.New, key) // #nosec G401 -- HMAC-MD5 as RFC 4757 section 7.3 defines the RC4-HMAC token keys and checksum
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

func rc4XOR(key []byte, parts ...[]byte) {
	c, _ := rc4.NewCipher(key) // #nosec G405 -- RFC 4757's RC4 sealing; NewCipher fails only for keys outside 1–256 octets
	for _, p := range parts {
		c.XORKeyStream(p, p)
	}
}

var le32zero = []byte{0, 0, 0, 0}

// rc4Checksum is SGN_CKSUM over the 8-octet header, the confounder and
// the padded data, all in clear.
func rc4Checksum(key, hdr, confounder, padded []byte) []byte {
	ksign := hmacMD5(key, []byte("signaturekey\x00"))
	usage := binary.LittleEndian.AppendUint32(nil, rc4SealUsage)
	md := md5.New() // #nosec G401 -- the RFC 4757 section 7.3 checksum input is an MD5 digest
	for _, p := range [][]byte{usage, hdr, confounder, padded} {
		md.Write(p)
	}
	return hmacMD5(ksign, md.Sum(nil))[:8]
}

func rc4Kcrypt(key, seq4 []byte) []byte {
	local := make([]byte, len(key))
	for i := range key {
		local[i] = key[i] ^ 0xf0
	}
	return hmacMD5(hmacMD5(local, le32zero), seq4)
}

func rc4Kseq(key, cksum []byte) []byte { return hmacMD5(hmacMD5(key, le32zero), cksum) }

// rc4Wrap makes an RFC 4757 Wrap token with the confounder read from r.
func rc4Wrap(oid, key, msg []byte, seq uint32, conf, fromAcceptor bool, r io.Reader) ([]byte, error) {
	if len(key) != 16 {
		return nil, fmt.Errorf("RC4-HMAC key of %d octets, want 16", len(key))
	}
	if r == nil {
		r = rand.Reader
	}
	body := make([]byte, rc4BodyLen, rc4BodyLen+len(msg)+1)
	binary.LittleEndian.PutUint16(body[0:], rc4SgnAlgHMACMD5)
	seal := uint16(rc4SealAlgNone)
	if conf {
		seal = rc4SealAlgRC4
	}
	binary.LittleEndian.PutUint16(body[2:], seal)
	body[4], body[5] = 0xff, 0xff
	sndSeq, cksum, confounder := body[6:14], body[14:22], body[22:30]
	binary.BigEndian.PutUint32(sndSeq, seq)
	if fromAcceptor {
		copy(sndSeq[4:], []byte{0xff, 0xff, 0xff, 0xff})
	}
	if _, err := io.ReadFull(r, confounder); err != nil {
		return nil, err
	}
	body = append(append(body, msg...), 0x01)
	padded := body[rc4BodyLen:]
	hdr := binary.BigEndian.AppendUint16(nil, tokWrapV1)
	hdr = append(hdr, body[:6]...)
	copy(cksum, rc4Checksum(key, hdr, confounder, padded))
	if conf {
		rc4XOR(rc4Kcrypt(key, sndSeq[:4]), confounder, padded)
	}
	rc4XOR(rc4Kseq(key, cksum), sndSeq)
	return frameToken(oid, tokWrapV1, body), nil
}

// rc4Unwrap checks and opens an RFC 4757 Wrap token sent by the peer
// (fromAcceptor tells which side that is).
func rc4Unwrap(tok, key []byte, fromAcceptor bool) (msg []byte, seq uint32, err error) {
	f, err := parseFramed(tok)
	if err != nil {
		return nil, 0, err
	}
	if f.tokID != tokWrapV1 {
		return nil, 0, fmt.Errorf("not an RFC 1964 Wrap token (TOK_ID %04x)", f.tokID)
	}
	if len(key) != 16 {
		return nil, 0, fmt.Errorf("RC4-HMAC key of %d octets, want 16", len(key))
	}
	if len(f.body) < rc4BodyLen+1 {
		return nil, 0, fmt.Errorf("RFC 1964 Wrap token of %d octets is too short", len(f.body))
	}
	body := append([]byte(nil), f.body...)
	if alg := binary.LittleEndian.Uint16(body[0:]); alg != rc4SgnAlgHMACMD5 {
		return nil, 0, fmt.Errorf("RFC 1964 Wrap token: SGN_ALG %#04x, want HMAC-MD5 (0x0011): not an RC4-HMAC token", alg)
	}
	seal := binary.LittleEndian.Uint16(body[2:])
	if seal != rc4SealAlgRC4 && seal != rc4SealAlgNone {
		return nil, 0, fmt.Errorf("RFC 1964 Wrap token: SEAL_ALG %#04x, want RC4 (0x0010) or none", seal)
	}
	if body[4] != 0xff || body[5] != 0xff {
		return nil, 0, errors.New("RFC 1964 Wrap token: filler is not FF FF")
	}
	sndSeq, cksum, confounder, padded := body[6:14], body[14:22], body[22:30], body[rc4BodyLen:]
	rc4XOR(rc4Kseq(key, cksum), sndSeq)
	if seal == rc4SealAlgRC4 {
		rc4XOR(rc4Kcrypt(key, sndSeq[:4]), confounder, padded)
	}
	hdr := binary.BigEndian.AppendUint16(nil, tokWrapV1)
	hdr = append(hdr, f.body[:6]...)
	if !hmac.Equal(cksum, rc4Checksum(key, hdr, confounder, padded)) {
		return nil, 0, errors.New("RFC 1964 Wrap token: checksum does not verify")
	}
	dir := []byte{0, 0, 0, 0}
	if fromAcceptor {
		dir = []byte{0xff, 0xff, 0xff, 0xff}
	}
	if !hmac.Equal(sndSeq[4:], dir) {
		return nil, 0, errors.New("RFC 1964 Wrap token: SND_SEQ names the wrong direction (a reflected token?)")
	}
	pad := int(padded[len(padded)-1])
	if pad < 1 || pad > 8 || pad > len(padded) {
		return nil, 0, fmt.Errorf("RFC 1964 Wrap token: bad padding length %d", pad)
	}
	for _, c := range padded[len(padded)-pad:] {
		if int(c) != pad {
			return nil, 0, errors.New("RFC 1964 Wrap token: bad padding")
		}
	}
	return padded[:len(padded)-pad], binary.BigEndian.Uint32(sndSeq[:4]), nil
}
