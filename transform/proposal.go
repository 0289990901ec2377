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
	// AddKE are the additional key exchanges of RFC 9370 (transform types
	// 6-12, ADDKE1...ADDKE7, keywords ke1_... ke7_...): for each, the
	// acceptable methods in preference order, DHNone meaning the exchange
	// is optional. An empty list means the type is not proposed.
	AddKE [MaxAddKE][]uint16
}

// MaxAddKE is the number of additional key exchange types (RFC 9370 §2.2.1:
// Transform Types 6 to 12).
const MaxAddKE = 7

// HasAddKE reports whether the proposal has any additional key exchange,
// optional ones included: an initiator that offers one announces
// IKE_INTERMEDIATE support (RFC 9370 §2.2.1).
func (p *Proposal) HasAddKE() bool {
	for _, l := range p.AddKE {
		if len(l) > 0 {
			return true
		}
	}
	return false
}

// PostQuantum reports whether every combination the proposal allows
// includes a post-quantum key exchange (IsPostQuantum): its main method
// is one, or some additional key exchange offers only such methods.
func (p *Proposal) PostQuantum() bool {
	allPQ := func(ids []uint16) bool {
		for _, id := range ids {
			if !IsPostQuantum(id) {
				return false
			}
		}
		return len(ids) > 0
	}
	if allPQ(p.DH) {
		return true
	}
	for _, l := range p.AddKE {
		if allPQ(l) {
			return true
		}
	}
	return false
}

// OffersPostQuantum reports whether some combination the proposal allows
// includes a post-quantum key exchange.
func (p *Proposal) OffersPostQuantum() bool {
	for _, id := range p.DH {
		if IsPostQuantum(id) {
			return true
		}
	}
	for _, l := range p.AddKE {
		for _, id := range l {
			if IsPostQuantum(id) {
				return true
			}
		}
	}
	return false
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
// prfsha384 prfsha512; modp2048 modp3072 modp4096 ecp256 ecp384 ecp521
// x25519 (also curve25519) x448 (also curve448) mlkem768 mlkem1024; and for
// the additional key exchanges of RFC 9370 keN_METHOD (N 1 to 7) with any
// of these methods or none, e.g.
// "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_none" (strongSwan's
// syntax: ke1_mlkem768-ke1_none makes the first one optional). The
// deprecated sha1 (also sha: HMAC_SHA1_96 and PRF_HMAC_SHA1) and prfsha1
// are accepted when named (LegacyAlgorithms lists them for warnings);
// iked's defaults never name them.
// An IKE proposal needs at least one encryption algorithm, a PRF (given or
// implied), a DH group, and integrity unless every encryption is AEAD; AEAD
// and non-AEAD encryption cannot be mixed in one proposal. Errors name the
// offending keyword.
func ParseIKEProposal(s string) (Proposal, error) { return parseProposal(s, false, false) }

// ParseESPProposal parses an ESP proposal string such as "aes256gcm16",
// "aes128-sha256-modp2048" (with PFS), "aes256gcm16-x25519-ke1_mlkem768"
// (PFS with an additional key exchange, RFC 9370 §2.2.4) or
// "chacha20poly1305-esn". Keywords as for IKE without prf*, plus esn and
// noesn; additional key exchanges need a PFS method.
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
	for i, l := range p.AddKE {
		for _, id := range l {
			parts = append(parts, AddKEName(i+1, id))
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

// GroupName is the key exchange method's name as strongSwan prints it
// (CURVE_25519, ML_KEM_768), "NONE" for DHNone, or "DH_N".
func GroupName(id uint16) string {
	if id == DHNone {
		return "NONE"
	}
	if g := GroupByID(id); g != nil {
		return g.Name()
	}
	return "DH_" + strconv.Itoa(int(id))
}

// AddKEName is an additional key exchange as strongSwan logs it: "KE1_ML_KEM_768",
// "KE2_NONE" (n is 1 for ADDKE1).
func AddKEName(n int, id uint16) string {
	return "KE" + strconv.Itoa(n) + "_" + GroupName(id)
}

// Keywords prints the proposal in the syntax it is written in, strongSwan's
// (aes256gcm16-prfsha384-x25519-ke1_mlkem768): what a negotiated suite is
// shown as in ikectl, the JSON and the metrics. The PRF is always written
// out; ESN only when it is offered (noesn is the default). A transform iked
// has no keyword for prints as TYPE_ID (e.g. ENCR_3).
func (p Proposal) Keywords() string {
	var parts []string
	for _, e := range p.Encr {
		parts = append(parts, keywordOf(kwEncr, e.ID, e.KeyBits, "encr"))
	}
	for _, id := range p.Integ {
		parts = append(parts, keywordOf(kwInteg, id, 0, "integ"))
	}
	for _, id := range p.PRF {
		parts = append(parts, keywordOf(kwPRF, id, 0, "prf"))
	}
	for _, id := range p.DH {
		parts = append(parts, keywordOf(kwDH, id, 0, "ke"))
	}
	for i, l := range p.AddKE {
		for _, id := range l {
			w := "none"
			if id != DHNone {
				w = keywordOf(kwDH, id, 0, "ke")
			}
			parts = append(parts, "ke"+strconv.Itoa(i+1)+"_"+w)
		}
	}
	for _, id := range p.ESN {
		if id == ESNYes {
			parts = append(parts, "esn")
		}
	}
	return strings.Join(parts, "-")
}

// keywordOf finds the canonical keyword of a transform: the first in
// canonicalKeywords of its kind and ID.
func keywordOf(kind int, id, keyBits uint16, prefix string) string {
	for _, w := range canonicalKeywords {
		k := keywords[w]
		if k.kind == kind && k.id == id && k.keyBits == keyBits {
			return w
		}
	}
	if keyBits != 0 {
		return prefix + strconv.Itoa(int(id)) + "_" + strconv.Itoa(int(keyBits))
	}
	return prefix + strconv.Itoa(int(id))
}

// canonicalKeywords are the keywords Keywords prints, one per transform
// (aliases such as aes128gcm and curve25519 are read, never printed).
var canonicalKeywords = []string{
	"aes128", "aes192", "aes256", "aes128gcm16", "aes256gcm16", "chacha20poly1305",
	"sha256", "sha384", "sha512", "prfsha256", "prfsha384", "prfsha512",
	"modp2048", "ecp256", "ecp384", "ecp521", "x25519", "mlkem768", "mlkem1024",
	"3des", "sha1", "prfsha1", "modp1024", // IKEv1's legacy algorithms
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
	"modp3072":         {kwDH, DHModp3072, 0},
	"modp4096":         {kwDH, DHModp4096, 0},
	"ecp256":           {kwDH, DHECP256, 0},
	"ecp384":           {kwDH, DHECP384, 0},
	"ecp521":           {kwDH, DHECP521, 0},
	"x25519":           {kwDH, DHCurve25519, 0},
	"curve25519":       {kwDH, DHCurve25519, 0},
	"x448":             {kwDH, DHCurve448, 0},
	"curve448":         {kwDH, DHCurve448, 0},
	"mlkem768":         {kwDH, DHMLKEM768, 0},
	"mlkem1024":        {kwDH, DHMLKEM1024, 0},
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
		if n, id, ok, err := parseAddKE(w); ok {
			if err != nil {
				return Proposal{}, fmt.Errorf("%v in proposal %q", err, s)
			}
			if v1 {
				return Proposal{}, fmt.Errorf("additional key exchange %q (RFC 9370) is IKEv2 only, not in %s proposal %q", w, kind, s)
			}
			p.AddKE[n-1] = appendUnique(p.AddKE[n-1], id)
			continue
		}
		if w == "mlkem512" {
			return Proposal{}, fmt.Errorf("algorithm %q in proposal %q is not implemented (Go's crypto/mlkem has mlkem768 and mlkem1024)", w, s)
		}
		k, ok := keywords[w]
		if !ok {
			if why := unsupported(w); why != "" {
				return Proposal{}, fmt.Errorf("algorithm %q in proposal %q is not supported: %s", w, s, why)
			}
			return Proposal{}, fmt.Errorf("unknown algorithm %q in proposal %q", w, s)
		}
		if v1 && !v1Words[w] {
			return Proposal{}, fmt.Errorf("algorithm %q is not available in IKEv1 proposal %q", w, s)
		}
		if !v1 && ikev1OnlyNames[w] {
			return Proposal{}, fmt.Errorf("legacy algorithm %q is deprecated and not supported in %s proposal %q: it is only available in IKEv1 proposals, enable it with version: ikev1 and allow_legacy: true", w, kind, s)
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
	if p.HasAddKE() && len(p.DH) == 0 {
		return Proposal{}, fmt.Errorf("%s proposal %q has additional key exchanges (keN_...) but no key exchange method to start with (add one, e.g. x25519)", kind, s)
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

// parseAddKE parses an additional key exchange keyword, keN_METHOD (N 1
// to 7, METHOD a key exchange keyword or none). ok is false for a word
// that is not one.
func parseAddKE(w string) (n int, id uint16, ok bool, err error) {
	if len(w) < 4 || w[:2] != "ke" || w[3] != '_' || w[2] < '0' || w[2] > '9' {
		return 0, 0, false, nil
	}
	n = int(w[2] - '0')
	if n < 1 || n > MaxAddKE {
		return 0, 0, true, fmt.Errorf("additional key exchange %q: RFC 9370 has ke1 to ke7", w)
	}
	m := w[4:]
	if m == "none" {
		return n, DHNone, true, nil
	}
	if m == "mlkem512" {
		return 0, 0, true, fmt.Errorf("algorithm %q is not implemented (Go's crypto/mlkem has mlkem768 and mlkem1024)", w)
	}
	k, found := keywords[m]
	if !found || k.kind != kwDH || ikev1OnlyNames[m] {
		return 0, 0, true, fmt.Errorf("unknown key exchange method %q in %q", m, w)
	}
	return n, k.id, true, nil
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

// unsupported says why a keyword strongSwan knows is not an iked
// algorithm, or "" for a word no IKE implementation uses, so that a
// configuration names the problem ("not supported") rather than calling a
// well-known algorithm unknown.
func unsupported(w string) string {
	const (
		broken   = "broken, RFC 8247 and RFC 8221 forbid it"
		weak     = "too weak, RFC 8247 says SHOULD NOT"
		notInIKE = "iked does not implement it"
	)
	switch w {
	case "md5", "md5_128", "prfmd5", "des", "desiv32", "desiv64", "null", "modp768":
		return broken
	case "modp1536", "modp1024s160", "modp2048s224", "modp2048s256", "ecp192", "ecp224":
		return weak
	case "modp6144", "modp8192":
		return notInIKE + " (use modp4096, ecp384, ecp521 or x448)"
	case "aes192gcm16", "aes192gcm":
		return notInIKE + " (use aes128gcm16 or aes256gcm16)"
	}
	for _, prefix := range []string{
		"aes128ctr", "aes192ctr", "aes256ctr", "aes128ccm", "aes192ccm", "aes256ccm",
		"aes128gcm8", "aes192gcm8", "aes256gcm8", "aes128gcm12", "aes192gcm12", "aes256gcm12",
		"aes128gmac", "aes192gmac", "aes256gmac", "camellia", "serpent", "twofish", "blowfish",
		"cast128", "idea", "3idea", "aesxcbc", "aescmac", "prfaesxcbc", "prfaescmac", "prfcamelliaxcbc",
		"camelliaxcbc", "sha1_160", "sha256_96", "ecp224bp", "ecp256bp", "ecp384bp", "ecp512bp",
	} {
		if strings.HasPrefix(w, prefix) {
			return notInIKE
		}
	}
	return ""
}
