package transform

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Proposal is one proposal as configured: for each transform type the
// algorithms acceptable, in preference order. It is parsed from a
// strongSwan-style proposal string.
type Proposal struct {
	Encr  []EncrChoice // encryption with key size
	PRF   []uint16     // IKE only
	Integ []uint16     // empty for AEAD-only proposals
	DH    []uint16     // IKE: required; ESP: optional (PFS); DHNone never listed
	ESN   []uint16     // ESP only; defaults to [ESNNo]
}

// EncrChoice is an encryption transform and its key size in bits (0 for
// transforms without a Key Length attribute).
type EncrChoice struct {
	ID      uint16
	KeyBits uint16
}

// ParseIKEProposal parses an IKE proposal string such as
// "aes256gcm16-prfsha256-x25519" or "aes128-aes256-sha256-sha384-modp2048-ecp256".
// Keywords: aes128 aes192 aes256 (CBC), aes128gcm16 aes256gcm16 (also
// aes128gcm aes256gcm), chacha20poly1305; sha256 sha384 sha512 (integrity,
// and the PRF of the same hash when no prf keyword is given); prfsha256
// prfsha384 prfsha512; modp2048 ecp256 ecp384 ecp521 x25519 (also curve25519).
// An IKE proposal needs at least one encryption algorithm, a PRF (given or
// implied), a DH group, and integrity unless every encryption is AEAD; AEAD
// and non-AEAD encryption cannot be mixed in one proposal. Errors name the
// offending keyword.
func ParseIKEProposal(s string) (Proposal, error) { return parseProposal(s, false, false) }

// ParseESPProposal parses an ESP proposal string such as "aes256gcm16",
// "aes128-sha256-modp2048" (with PFS) or "chacha20poly1305-esn". Keywords
// as for IKE without prf*, plus esn and noesn.
func ParseESPProposal(s string) (Proposal, error) { return parseProposal(s, true, false) }

// ParseIKEv1Proposal parses the proposal of an IKEv1 Main Mode, such as
// "aes256-sha256-modp2048" or the Windows 2003 default "3des-sha1-modp1024".
// IKEv1's algorithm set: aes128 aes192 aes256 (CBC) and the legacy 3des;
// sha256 sha384 sha512 and the legacy sha1 (also sha), each naming the hash
// and its HMAC as the PRF (RFC 2409 §4: the PRF is the HMAC of the
// negotiated hash); modp2048 ecp256 ecp384 ecp521 and the legacy modp1024.
// No AEAD ciphers, no separate prf keywords, no Curve25519 (none of them
// has an IKEv1 Main Mode attribute value the real peers agree on). Whether
// the legacy algorithms may be used is the caller's decision
// (LegacyAlgorithms).
func ParseIKEv1Proposal(s string) (Proposal, error) { return parseProposal(s, false, true) }

// ParseIKEv1ESPProposal parses an IKEv1 Quick Mode (ESP) proposal such as
// "aes256-sha256" or, with PFS, "aes256-sha256-modp2048": the encryption
// and hash keywords of ParseIKEv1Proposal, a DH group for PFS, no ESN.
func ParseIKEv1ESPProposal(s string) (Proposal, error) { return parseProposal(s, true, true) }

// String prints the proposal in strongSwan's log style, e.g.
// "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519" (all choices joined by "/").
func (p Proposal) String() string {
	var parts []string
	for _, e := range p.Encr {
		if t := EncrByID(e.ID); t != nil {
			parts = append(parts, t.String(e.KeyBits))
		} else if e.KeyBits != 0 {
			parts = append(parts, "ENCR_"+strconv.Itoa(int(e.ID))+"-"+strconv.Itoa(int(e.KeyBits)))
		} else {
			parts = append(parts, "ENCR_"+strconv.Itoa(int(e.ID)))
		}
	}
	for _, id := range p.Integ {
		if t := IntegByID(id); t != nil {
			parts = append(parts, t.Name)
		} else {
			parts = append(parts, "INTEG_"+strconv.Itoa(int(id)))
		}
	}
	for _, id := range p.PRF {
		if t := PRFByID(id); t != nil {
			parts = append(parts, t.Name)
		} else {
			parts = append(parts, "PRF_"+strconv.Itoa(int(id)))
		}
	}
	for _, id := range p.DH {
		if g := GroupByID(id); g != nil {
			parts = append(parts, g.Name())
		} else {
			parts = append(parts, "DH_"+strconv.Itoa(int(id)))
		}
	}
	for _, id := range p.ESN {
		switch id {
		case ESNNo:
			parts = append(parts, "NO_EXT_SEQ")
		case ESNYes:
			parts = append(parts, "EXT_SEQ")
		default:
			parts = append(parts, "ESN_"+strconv.Itoa(int(id)))
		}
	}
	return strings.Join(parts, "/")
}

// keyword kinds.
const (
	kwEncr = iota
	kwInteg
	kwPRF
	kwDH
	kwESN
)

type keyword struct {
	kind    int
	id      uint16
	keyBits uint16
}

// keywords maps strongSwan's proposal keywords to transforms. A hash
// keyword (sha256...) is an integrity algorithm that also implies the PRF
// of the same hash.
var keywords = map[string]keyword{
	"aes128":           {kwEncr, EncrAESCBC, 128},
	"aes192":           {kwEncr, EncrAESCBC, 192},
	"aes256":           {kwEncr, EncrAESCBC, 256},
	"aes128gcm16":      {kwEncr, EncrAESGCM16, 128},
	"aes256gcm16":      {kwEncr, EncrAESGCM16, 256},
	"aes128gcm":        {kwEncr, EncrAESGCM16, 128},
	"aes256gcm":        {kwEncr, EncrAESGCM16, 256},
	"chacha20poly1305": {kwEncr, EncrChaCha20Poly1305, 0},
	"sha256":           {kwInteg, IntegHMACSHA2_256_128, 0},
	"sha384":           {kwInteg, IntegHMACSHA2_384_192, 0},
	"sha512":           {kwInteg, IntegHMACSHA2_512_256, 0},
	"prfsha256":        {kwPRF, PRFHMACSHA2_256, 0},
	"prfsha384":        {kwPRF, PRFHMACSHA2_384, 0},
	"prfsha512":        {kwPRF, PRFHMACSHA2_512, 0},
	"modp2048":         {kwDH, DHModp2048, 0},
	"ecp256":           {kwDH, DHECP256, 0},
	"ecp384":           {kwDH, DHECP384, 0},
	"ecp521":           {kwDH, DHECP521, 0},
	"x25519":           {kwDH, DHCurve25519, 0},
	"curve25519":       {kwDH, DHCurve25519, 0},
	"esn":              {kwESN, ESNYes, 0},
	"3des":             {kwEncr, EncrDES3, 0},
	"sha1":             {kwInteg, IntegHMACSHA1_96, 0},
	"sha":              {kwInteg, IntegHMACSHA1_96, 0},
	"prfsha1":          {kwPRF, PRFHMACSHA1, 0},
	"modp1024":         {kwDH, DHModp1024, 0},
	"noesn":            {kwESN, ESNNo, 0},
}

// prfOfInteg is the PRF implied by a hash keyword.
var prfOfInteg = map[uint16]uint16{
	IntegHMACSHA2_256_128: PRFHMACSHA2_256,
	IntegHMACSHA2_384_192: PRFHMACSHA2_384,
	IntegHMACSHA2_512_256: PRFHMACSHA2_512,
	IntegHMACSHA1_96:      PRFHMACSHA1,
}

// v1Words are the keywords IKEv1 proposals accept.
var v1Words = map[string]bool{
	"aes128": true, "aes192": true, "aes256": true, "3des": true,
	"sha1": true, "sha": true, "sha256": true, "sha384": true, "sha512": true,
	"modp1024": true, "modp2048": true, "ecp256": true, "ecp384": true, "ecp521": true,
}

func appendUnique[T comparable](list []T, v T) []T {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// parseProposal parses an IKE (esp false) or ESP proposal string.
//
// With AEAD encryption, an IKE proposal's hash keywords only imply the PRF
// (RFC 5282 §8 forbids an integrity transform beside a combined-mode
// cipher); an ESP proposal rejects them.
func parseProposal(s string, esp, v1 bool) (Proposal, error) {
	var p Proposal
	kind := "IKE"
	if esp {
		kind = "ESP"
	}
	if v1 {
		kind = "IKEv1 " + kind
	}
	if s == "" {
		return p, fmt.Errorf("empty %s proposal", kind)
	}
	var (
		impliedPRF          []uint16
		hashWords           []string
		aeadWord, otherWord string
	)
	for _, w := range strings.Split(s, "-") {
		if w == "" {
			return Proposal{}, fmt.Errorf("empty algorithm in proposal %q", s)
		}
		k, ok := keywords[w]
		if !ok {
			return Proposal{}, fmt.Errorf("unknown algorithm %q in proposal %q", w, s)
		}
		if v1 && !v1Words[w] {
			return Proposal{}, fmt.Errorf("algorithm %q is not available in IKEv1 proposal %q", w, s)
		}
		if !v1 && legacyNames[w] {
			return Proposal{}, fmt.Errorf("legacy algorithm %q is only available in IKEv1 proposals (version: ikev1), not in %s proposal %q", w, kind, s)
		}
		switch k.kind {
		case kwEncr:
			if EncrByID(k.id).AEAD {
				if aeadWord == "" {
					aeadWord = w
				}
			} else if otherWord == "" {
				otherWord = w
			}
			p.Encr = appendUnique(p.Encr, EncrChoice{ID: k.id, KeyBits: k.keyBits})
		case kwInteg:
			p.Integ = appendUnique(p.Integ, k.id)
			impliedPRF = appendUnique(impliedPRF, prfOfInteg[k.id])
			hashWords = append(hashWords, w)
		case kwPRF:
			if esp {
				return Proposal{}, fmt.Errorf("algorithm %q is not allowed in ESP proposal %q", w, s)
			}
			p.PRF = appendUnique(p.PRF, k.id)
		case kwDH:
			p.DH = appendUnique(p.DH, k.id)
		case kwESN:
			if !esp {
				return Proposal{}, fmt.Errorf("algorithm %q is not allowed in IKE proposal %q", w, s)
			}
			p.ESN = appendUnique(p.ESN, k.id)
		}
	}
	if len(p.Encr) == 0 {
		return Proposal{}, fmt.Errorf("%s proposal %q has no encryption algorithm", kind, s)
	}
	if aeadWord != "" && otherWord != "" {
		return Proposal{}, fmt.Errorf("%s proposal %q mixes AEAD %q and non-AEAD %q encryption", kind, s, aeadWord, otherWord)
	}
	if aeadWord != "" && len(p.Integ) > 0 {
		if esp {
			return Proposal{}, fmt.Errorf("integrity algorithm %q is not allowed with AEAD %q in ESP proposal %q", hashWords[0], aeadWord, s)
		}
		p.Integ = nil
	}
	if aeadWord == "" && len(p.Integ) == 0 {
		return Proposal{}, fmt.Errorf("%s proposal %q needs an integrity algorithm for %q", kind, s, otherWord)
	}
	if esp {
		if len(p.ESN) == 0 {
			p.ESN = []uint16{ESNNo}
		}
		return p, nil
	}
	if v1 {
		// The PRF is the HMAC of each hash: no prf keywords.
		p.PRF = impliedPRF
	}
	if len(p.PRF) == 0 {
		if len(impliedPRF) == 0 {
			return Proposal{}, fmt.Errorf("IKE proposal %q has no PRF (add prfsha256 or a hash such as sha256)", s)
		}
		p.PRF = impliedPRF
	}
	if len(p.DH) == 0 {
		return Proposal{}, fmt.Errorf("IKE proposal %q has no Diffie-Hellman group", s)
	}
	return p, nil
}

// Errors returned by Protector.Open.
var (
	// ErrIntegrity means the ICV or AEAD tag did not verify.
	ErrIntegrity = errorString("transform: integrity check failed")
	// ErrMalformed means the SK body was too short or its padding invalid.
	ErrMalformed = errorString("transform: malformed encrypted payload")
)

type errorString string

func (e errorString) Error() string { return string(e) }
