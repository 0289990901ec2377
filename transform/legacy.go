package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"  // #nosec G502 -- 3DES for IKEv1 peers that offer nothing else, only with allow_legacy (docs/ikev1.md)
	"crypto/sha1" // #nosec G505 -- HMAC-SHA-1 (PRF, integrity) for IKEv1 peers, only with allow_legacy (docs/ikev1.md)
	"fmt"
	"hash"
)

// The legacy transforms: IKEv1 peers of the Windows 2003 era negotiate
// them (its default main mode is 3DES/SHA-1/MODP-1024), so they are in the
// registry, but no default proposal of either engine names them and the
// IKEv2 proposal parser refuses their keywords (see ParseIKEv1Proposal).
// Their IDs are the IKEv2 IANA IDs, as for every transform here; the IKEv1
// engine maps its own attribute values onto them.
const (
	// EncrDES3 is ENCR_3DES (168-bit 3DES-EDE-CBC, RFC 2451).
	EncrDES3 uint16 = 3
	// PRFHMACSHA1 is PRF_HMAC_SHA1 (RFC 2104).
	PRFHMACSHA1 uint16 = 2
	// IntegHMACSHA1_96 is AUTH_HMAC_SHA1_96 (RFC 2404).
	IntegHMACSHA1_96 uint16 = 2
	// DHModp1024 is the 1024-bit MODP group (RFC 2409 §6.2, Oakley group 2).
	DHModp1024 uint16 = 2
)

// modp1024Prime is the prime of RFC 2409 §6.2; the generator is 2.
const modp1024Prime = "" +
	"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
	"29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
	"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
	"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
	"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381" +
	"FFFFFFFFFFFFFFFF"

var (
	encrDES3    = &Encr{ID: EncrDES3, Name: "3DES", IVLen: 8, BlockLen: 8, keyLen: 24}
	prfSHA1     = &PRF{ID: PRFHMACSHA1, Name: "PRF_HMAC_SHA1", Size: 20, newHash: sha1.New}
	integSHA1   = &Integ{ID: IntegHMACSHA1_96, Name: "HMAC_SHA1_96", KeyLen: 20, ICVLen: 12, newHash: sha1.New}
	modp1024    = newMODPGroup(DHModp1024, "MODP_1024", modp1024Prime)
	legacyNames = map[string]bool{"3des": true, "sha1": true, "sha": true, "prfsha1": true, "modp1024": true}
)

// Legacy reports whether the transform of this kind and ID is one of the
// legacy ones (3DES, SHA-1, MODP-1024): kind is "encr", "prf", "integ" or
// "dh".
func Legacy(kind string, id uint16) bool {
	switch kind {
	case "encr":
		return id == EncrDES3
	case "prf":
		return id == PRFHMACSHA1
	case "integ":
		return id == IntegHMACSHA1_96
	case "dh":
		return id == DHModp1024
	}
	return false
}

// LegacyAlgorithms returns the names of the legacy transforms the proposal
// names, in the order encryption, integrity, PRF, DH; empty when it names
// none.
func (p Proposal) LegacyAlgorithms() []string {
	var out []string
	for _, e := range p.Encr {
		if Legacy("encr", e.ID) {
			out = appendUnique(out, encrDES3.Name)
		}
	}
	for _, id := range p.Integ {
		if Legacy("integ", id) {
			out = appendUnique(out, integSHA1.Name)
		}
	}
	for _, id := range p.PRF {
		if Legacy("prf", id) {
			out = appendUnique(out, prfSHA1.Name)
		}
	}
	for _, id := range p.DH {
		if Legacy("dh", id) {
			out = appendUnique(out, modp1024.Name())
		}
	}
	return out
}

// NewBlock returns the block cipher of a CBC encryption transform (AES_CBC
// or 3DES) keyed with key, for protocols that run CBC themselves (IKEv1's
// encrypted payloads, RFC 2409 Appendix B).
func (e *Encr) NewBlock(key []byte) (cipher.Block, error) {
	switch e.ID {
	case EncrAESCBC:
		if !e.validKeyBits(uint16(len(key) * 8)) {
			return nil, fmt.Errorf("transform: AES_CBC key of %d octets", len(key))
		}
		return aes.NewCipher(key)
	case EncrDES3:
		if len(key) != e.keyLen {
			return nil, fmt.Errorf("transform: 3DES key of %d octets, want %d", len(key), e.keyLen)
		}
		return des.NewTripleDESCipher(key) // #nosec G405 -- 3DES only where a connection allows the legacy algorithms (allow_legacy)
	}
	return nil, fmt.Errorf("transform: %s is not a CBC cipher", e.Name)
}

// NewHash returns the PRF's underlying hash function, unkeyed: IKEv1 uses
// it for its initial IVs (RFC 2409 Appendix B) and NAT-D hashes (RFC 3947).
func (p *PRF) NewHash() hash.Hash { return p.newHash() }
