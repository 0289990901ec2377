package cert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // #nosec G505 -- AUTH method 1 (RSA with SHA-1), defined by RFC 7296 section 3.8
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/iked/iked/ike/wire"
)

// HashAlgorithm is a hash algorithm identifier of the
// SIGNATURE_HASH_ALGORITHMS notify (RFC 7427 §4, IANA "IKEv2 Hash
// Algorithms").
type HashAlgorithm uint16

// Hash algorithm identifiers.
const (
	HashSHA1     HashAlgorithm = 1
	HashSHA2_256 HashAlgorithm = 2
	HashSHA2_384 HashAlgorithm = 3
	HashSHA2_512 HashAlgorithm = 4
	HashIdentity HashAlgorithm = 5 // RFC 8420: the data is signed as is (Ed25519)
)

// announcedHashes are the hashes iked announces and accepts in Digital
// Signature (14) authentication. SHA-1 is left out: RFC 8247 §3.2 says it
// must not be used there.
var announcedHashes = []HashAlgorithm{HashSHA2_256, HashSHA2_384, HashSHA2_512, HashIdentity}

// HashAlgorithmsNotify returns the SIGNATURE_HASH_ALGORITHMS notify that
// announces hashes: their 16-bit identifiers in order.
func HashAlgorithmsNotify(hashes []HashAlgorithm) *wire.Notify {
	data := make([]byte, 0, 2*len(hashes))
	for _, h := range hashes {
		data = binary.BigEndian.AppendUint16(data, uint16(h))
	}
	return &wire.Notify{Code: wire.NotifySignatureHashAlgorithms, Data: data}
}

// PeerHashes returns the hashes the peer announced in its
// SIGNATURE_HASH_ALGORITHMS notify among ps; ok is false when it sent
// none (then Digital Signature authentication must not be used, RFC 7427
// §4).
func PeerHashes(ps []wire.Payload) (hashes []HashAlgorithm, ok bool) {
	n := wire.FindNotify(ps, wire.NotifySignatureHashAlgorithms)
	if n == nil {
		return nil, false
	}
	for i := 0; i+1 < len(n.Data); i += 2 {
		hashes = append(hashes, HashAlgorithm(binary.BigEndian.Uint16(n.Data[i:])))
	}
	return hashes, true
}

func (h HashAlgorithm) hash() crypto.Hash {
	switch h {
	case HashSHA1:
		return crypto.SHA1
	case HashSHA2_256:
		return crypto.SHA256
	case HashSHA2_384:
		return crypto.SHA384
	case HashSHA2_512:
		return crypto.SHA512
	}
	return 0
}

// keyKind is the kind of a public or private key.
type keyKind uint8

const (
	kindRSA keyKind = iota + 1
	kindECDSA
	kindEd25519
)

// String names the key kind for messages.
func (k keyKind) String() string {
	switch k {
	case kindRSA:
		return "RSA"
	case kindECDSA:
		return "ECDSA"
	case kindEd25519:
		return "Ed25519"
	}
	return "unsupported"
}

func kindOf(pub crypto.PublicKey) keyKind {
	switch pub.(type) {
	case *rsa.PublicKey:
		return kindRSA
	case *ecdsa.PublicKey:
		return kindECDSA
	case ed25519.PublicKey:
		return kindEd25519
	}
	return 0
}

// Scheme is one way of signing the AUTH payload: an AUTH method and, for
// Digital Signature (14), the signature algorithm and hash.
type Scheme struct {
	// Method is the AUTH method: 1, 9, 10, 11 or 14.
	Method wire.AuthMethod
	// Kind of key that signs.
	kind keyKind
	// Hash is the digest signed; zero for Ed25519.
	Hash crypto.Hash
	// PSS selects RSASSA-PSS (salt as long as the hash) over PKCS#1 v1.5.
	PSS bool
	// SaltLength is the PSS salt length when verifying.
	SaltLength int
}

// String names the scheme as logs show it, e.g. "digital-signature/rsa-pss-sha256".
func (s Scheme) String() string {
	var alg string
	switch {
	case s.kind == kindEd25519:
		alg = "ed25519"
	case s.kind == kindRSA && s.PSS:
		alg = "rsa-pss-" + hashName(s.Hash)
	case s.kind == kindRSA:
		alg = "rsa-pkcs1-" + hashName(s.Hash)
	case s.kind == kindECDSA:
		alg = "ecdsa-" + hashName(s.Hash)
	}
	switch s.Method {
	case wire.AuthRSASig:
		return "rsa-signature(1)/" + alg
	case wire.AuthECDSA256, wire.AuthECDSA384, wire.AuthECDSA521:
		return fmt.Sprintf("ecdsa(%d)/%s", s.Method, alg)
	}
	return "digital-signature(14)/" + alg
}

func hashName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "sha1"
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return h.String()
}

// Object identifiers of RFC 7427 Appendix A and RFC 8420.
var (
	oidSHA1WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSASSAPSS     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
	oidECDSAWithSHA1 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 1}
	oidECDSASHA256   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSASHA384   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSASHA512   = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519       = asn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA1          = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// The AlgorithmIdentifier DER blobs iked sends in Digital Signature AUTH
// payloads, as listed in RFC 7427 Appendix A (A.1 PKCS#1 v1.5, A.3 ECDSA,
// A.4.3 RSASSA-PSS with SHA-256 spelled out for each hash, MGF1 with the
// same hash and a salt as long as the hash) and RFC 8420 §2 (Ed25519,
// parameters absent).
var (
	derSHA256WithRSA = mustHex("300d06092a864886f70d01010b0500")
	derSHA384WithRSA = mustHex("300d06092a864886f70d01010c0500")
	derSHA512WithRSA = mustHex("300d06092a864886f70d01010d0500")
	derECDSASHA256   = mustHex("300a06082a8648ce3d040302")
	derECDSASHA384   = mustHex("300a06082a8648ce3d040303")
	derECDSASHA512   = mustHex("300a06082a8648ce3d040304")
	derPSSSHA256     = mustHex("304106092a864886f70d01010a3034a00f300d06096086480165030402010500a11c301a06092a864886f70d010108300d06096086480165030402010500a203020120")
	derPSSSHA384     = mustHex("304106092a864886f70d01010a3034a00f300d06096086480165030402020500a11c301a06092a864886f70d010108300d06096086480165030402020500a203020130")
	derPSSSHA512     = mustHex("304106092a864886f70d01010a3034a00f300d06096086480165030402030500a11c301a06092a864886f70d010108300d06096086480165030402030500a203020140")
	derEd25519       = mustHex("300506032b6570")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic("cert: bad hex " + s)
	}
	return b
}

// AlgorithmIdentifier returns the DER AlgorithmIdentifier that names s in
// a Digital Signature AUTH payload (RFC 7427 §3).
func (s Scheme) AlgorithmIdentifier() ([]byte, error) {
	switch s.kind {
	case kindEd25519:
		return derEd25519, nil
	case kindRSA:
		if s.PSS {
			switch s.Hash {
			case crypto.SHA256:
				return derPSSSHA256, nil
			case crypto.SHA384:
				return derPSSSHA384, nil
			case crypto.SHA512:
				return derPSSSHA512, nil
			}
		} else {
			switch s.Hash {
			case crypto.SHA256:
				return derSHA256WithRSA, nil
			case crypto.SHA384:
				return derSHA384WithRSA, nil
			case crypto.SHA512:
				return derSHA512WithRSA, nil
			}
		}
	case kindECDSA:
		switch s.Hash {
		case crypto.SHA256:
			return derECDSASHA256, nil
		case crypto.SHA384:
			return derECDSASHA384, nil
		case crypto.SHA512:
			return derECDSASHA512, nil
		}
	}
	return nil, fmt.Errorf("no AlgorithmIdentifier for %s", s)
}

// pssParameters is RSASSA-PSS-params (RFC 4055 §3.1).
type pssParameters struct {
	Hash         pkix.AlgorithmIdentifier `asn1:"explicit,tag:0,optional"`
	MGF          pkix.AlgorithmIdentifier `asn1:"explicit,tag:1,optional"`
	SaltLength   int                      `asn1:"explicit,tag:2,optional,default:20"`
	TrailerField int                      `asn1:"explicit,tag:3,optional,default:1"`
}

func digestByOID(oid asn1.ObjectIdentifier) crypto.Hash {
	switch {
	case oid.Equal(oidSHA1):
		return crypto.SHA1
	case oid.Equal(oidSHA256):
		return crypto.SHA256
	case oid.Equal(oidSHA384):
		return crypto.SHA384
	case oid.Equal(oidSHA512):
		return crypto.SHA512
	}
	return 0
}

// ParseAlgorithmIdentifier decodes the DER AlgorithmIdentifier of a Digital
// Signature AUTH payload into the scheme it names. It understands every
// object of RFC 7427 Appendix A and Ed25519, with RSASSA-PSS parameters
// decoded rather than compared, so that any hash, MGF1 hash and salt
// length a peer chooses is read; whether the scheme is acceptable is
// decided by the caller (see acceptable).
func ParseAlgorithmIdentifier(der []byte) (Scheme, error) {
	var ai pkix.AlgorithmIdentifier
	rest, err := asn1.Unmarshal(der, &ai)
	if err != nil {
		return Scheme{}, fmt.Errorf("malformed AlgorithmIdentifier: %w", err)
	}
	if len(rest) != 0 {
		return Scheme{}, errors.New("malformed AlgorithmIdentifier: trailing data")
	}
	absentOrNull := len(ai.Parameters.FullBytes) == 0 || bytes.Equal(ai.Parameters.FullBytes, asn1.NullBytes)
	s := Scheme{Method: wire.AuthDigitalSig}
	oid := ai.Algorithm
	switch {
	case oid.Equal(oidSHA1WithRSA), oid.Equal(oidSHA256WithRSA), oid.Equal(oidSHA384WithRSA), oid.Equal(oidSHA512WithRSA):
		s.kind = kindRSA
		s.Hash = map[int]crypto.Hash{5: crypto.SHA1, 11: crypto.SHA256, 12: crypto.SHA384, 13: crypto.SHA512}[oid[6]]
		if !absentOrNull {
			return Scheme{}, fmt.Errorf("unexpected parameters for %v", oid)
		}
	case oid.Equal(oidECDSAWithSHA1), oid.Equal(oidECDSASHA256), oid.Equal(oidECDSASHA384), oid.Equal(oidECDSASHA512):
		s.kind = kindECDSA
		if len(oid) == 6 {
			s.Hash = crypto.SHA1
		} else {
			s.Hash = map[int]crypto.Hash{2: crypto.SHA256, 3: crypto.SHA384, 4: crypto.SHA512}[oid[6]]
		}
		if !absentOrNull {
			return Scheme{}, fmt.Errorf("unexpected parameters for %v", oid)
		}
	case oid.Equal(oidEd25519):
		s.kind = kindEd25519
		if len(ai.Parameters.FullBytes) != 0 {
			return Scheme{}, errors.New("an Ed25519 AlgorithmIdentifier must not have parameters")
		}
	case oid.Equal(oidRSASSAPSS):
		s.kind, s.PSS = kindRSA, true
		var p pssParameters
		if len(ai.Parameters.FullBytes) == 0 {
			// Absent parameters (RFC 7427 A.4.1) mean the defaults.
			p = pssParameters{SaltLength: 20, TrailerField: 1}
		} else if rest, err := asn1.Unmarshal(ai.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
			return Scheme{}, errors.New("malformed RSASSA-PSS parameters")
		}
		s.Hash = crypto.SHA1
		if len(p.Hash.Algorithm) != 0 {
			s.Hash = digestByOID(p.Hash.Algorithm)
		}
		mgfHash := crypto.SHA1
		if len(p.MGF.Algorithm) != 0 {
			if !p.MGF.Algorithm.Equal(oidMGF1) {
				return Scheme{}, fmt.Errorf("RSASSA-PSS with mask generation function %v, only MGF1 is supported", p.MGF.Algorithm)
			}
			var h pkix.AlgorithmIdentifier
			if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &h); err != nil {
				return Scheme{}, errors.New("malformed MGF1 parameters")
			}
			mgfHash = digestByOID(h.Algorithm)
		}
		if s.Hash == 0 || mgfHash != s.Hash {
			return Scheme{}, errors.New("RSASSA-PSS with an unknown hash or an MGF1 hash other than the message hash")
		}
		if p.TrailerField != 1 || p.SaltLength < 0 {
			return Scheme{}, errors.New("RSASSA-PSS with an unsupported trailer field or salt length")
		}
		s.SaltLength = p.SaltLength
	default:
		return Scheme{}, fmt.Errorf("unsupported signature algorithm %v", oid)
	}
	if s.Hash == 0 && s.kind != kindEd25519 {
		return Scheme{}, fmt.Errorf("unsupported signature algorithm %v", oid)
	}
	return s, nil
}

// EncodeAuthData builds the data of a Digital Signature AUTH payload (RFC
// 7427 §3): the length of the AlgorithmIdentifier in one octet, the
// AlgorithmIdentifier, then the signature value.
func EncodeAuthData(algID, sig []byte) []byte {
	out := make([]byte, 0, 1+len(algID)+len(sig))
	out = append(out, byte(len(algID)))
	out = append(out, algID...)
	return append(out, sig...)
}

// DecodeAuthData splits the data of a Digital Signature AUTH payload into
// the AlgorithmIdentifier it names and the signature value.
func DecodeAuthData(data []byte) (Scheme, []byte, error) {
	if len(data) < 1 {
		return Scheme{}, nil, errors.New("empty Digital Signature AUTH data")
	}
	n := int(data[0])
	if n == 0 || len(data) < 1+n+1 {
		return Scheme{}, nil, fmt.Errorf("the Digital Signature AUTH data of %d octets cannot hold an AlgorithmIdentifier of %d and a signature", len(data), n)
	}
	s, err := ParseAlgorithmIdentifier(data[1 : 1+n])
	if err != nil {
		return Scheme{}, nil, err
	}
	return s, data[1+n:], nil
}

// acceptable reports why a scheme the peer used is refused, or nil. SHA-1
// is refused in Digital Signature authentication (RFC 8247 §3.2); method 1
// keeps its SHA-1, which RFC 7296 prescribes for it.
func (s Scheme) acceptable() error {
	if s.Method == wire.AuthDigitalSig && s.Hash == crypto.SHA1 {
		return fmt.Errorf("%s: SHA-1 is not accepted in Digital Signature authentication", s)
	}
	if s.PSS && s.SaltLength < 16 {
		return fmt.Errorf("%s: PSS salt of %d octets is too short", s, s.SaltLength)
	}
	return nil
}

func digest(h crypto.Hash, data []byte) []byte {
	switch h {
	case crypto.SHA1:
		d := sha1.Sum(data) // #nosec G401 -- SHA-1 only for AUTH method 1, whose signature is defined over SHA-1 (RFC 7296 section 3.8), for peers that know nothing else
		return d[:]
	case crypto.SHA256:
		d := sha256.Sum256(data)
		return d[:]
	case crypto.SHA384:
		d := sha512.Sum384(data)
		return d[:]
	case crypto.SHA512:
		d := sha512.Sum512(data)
		return d[:]
	}
	return nil
}

// curveMethod is the ECDSA AUTH method (RFC 4754) of a curve, with its hash.
func curveMethod(c elliptic.Curve) (wire.AuthMethod, crypto.Hash) {
	switch c {
	case elliptic.P256():
		return wire.AuthECDSA256, crypto.SHA256
	case elliptic.P384():
		return wire.AuthECDSA384, crypto.SHA384
	case elliptic.P521():
		return wire.AuthECDSA521, crypto.SHA512
	}
	return 0, 0
}

// sign produces the AUTH data of scheme s over data with key.
func sign(key crypto.Signer, s Scheme, data []byte, rnd io.Reader) ([]byte, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var sig []byte
	var err error
	switch k := key.(type) {
	case ed25519.PrivateKey:
		sig = ed25519.Sign(k, data)
	case *rsa.PrivateKey:
		d := digest(s.Hash, data)
		if s.PSS {
			sig, err = rsa.SignPSS(rnd, k, s.Hash, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: s.Hash})
		} else {
			sig, err = rsa.SignPKCS1v15(rnd, k, s.Hash, d)
		}
	case *ecdsa.PrivateKey:
		d := digest(s.Hash, data)
		if s.Method == wire.AuthDigitalSig {
			sig, err = ecdsa.SignASN1(rnd, k, d)
		} else {
			sig, err = signRaw(rnd, k, d)
		}
	default:
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	if err != nil {
		return nil, err
	}
	if s.Method != wire.AuthDigitalSig {
		return sig, nil
	}
	algID, err := s.AlgorithmIdentifier()
	if err != nil {
		return nil, err
	}
	return EncodeAuthData(algID, sig), nil
}

// signRaw makes the r||s signature of RFC 4754 §7: both values padded to
// the size of the curve's order.
func signRaw(rnd io.Reader, k *ecdsa.PrivateKey, d []byte) ([]byte, error) {
	der, err := ecdsa.SignASN1(rnd, k, d)
	if err != nil {
		return nil, err
	}
	var v struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(der, &v); err != nil {
		return nil, err
	}
	n := (k.Curve.Params().BitSize + 7) / 8
	out := make([]byte, 2*n)
	v.R.FillBytes(out[:n])
	v.S.FillBytes(out[n:])
	return out, nil
}

// legacyScheme returns the scheme of a legacy AUTH method (1, 9, 10, 11)
// for verification.
func legacyScheme(m wire.AuthMethod) (Scheme, bool) {
	switch m {
	case wire.AuthRSASig:
		return Scheme{Method: m, kind: kindRSA, Hash: crypto.SHA1}, true
	case wire.AuthECDSA256:
		return Scheme{Method: m, kind: kindECDSA, Hash: crypto.SHA256}, true
	case wire.AuthECDSA384:
		return Scheme{Method: m, kind: kindECDSA, Hash: crypto.SHA384}, true
	case wire.AuthECDSA521:
		return Scheme{Method: m, kind: kindECDSA, Hash: crypto.SHA512}, true
	}
	return Scheme{}, false
}

// verifyAuth checks the AUTH payload a against pub over data. It returns
// the scheme used and a description of what is wrong.
func verifyAuth(pub crypto.PublicKey, a *wire.Auth, data []byte) (Scheme, error) {
	var s Scheme
	var sig []byte
	switch a.Method {
	case wire.AuthDigitalSig:
		var err error
		if s, sig, err = DecodeAuthData(a.Data); err != nil {
			return s, err
		}
	default:
		var ok bool
		if s, ok = legacyScheme(a.Method); !ok {
			return s, fmt.Errorf("AUTH method %d is not a signature method", a.Method)
		}
		sig = a.Data
	}
	if err := s.acceptable(); err != nil {
		return s, err
	}
	if k := kindOf(pub); k != s.kind {
		return s, fmt.Errorf("AUTH uses %s but the certificate holds a %s key", s, k)
	}
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if !ed25519.Verify(k, data, sig) {
			return s, fmt.Errorf("%s signature does not verify with the certificate's key", s)
		}
	case *rsa.PublicKey:
		d := digest(s.Hash, data)
		var err error
		if s.PSS {
			err = rsa.VerifyPSS(k, s.Hash, d, sig, &rsa.PSSOptions{SaltLength: s.SaltLength, Hash: s.Hash})
		} else {
			err = rsa.VerifyPKCS1v15(k, s.Hash, d, sig)
		}
		if err != nil {
			return s, fmt.Errorf("%s signature does not verify with the certificate's key", s)
		}
	case *ecdsa.PublicKey:
		d := digest(s.Hash, data)
		ok := false
		if s.Method == wire.AuthDigitalSig {
			ok = ecdsa.VerifyASN1(k, d, sig)
		} else {
			m, _ := curveMethod(k.Curve)
			if m != s.Method {
				return s, fmt.Errorf("AUTH method %d does not fit the certificate's %s key", s.Method, k.Curve.Params().Name)
			}
			n := (k.Curve.Params().BitSize + 7) / 8
			if len(sig) == 2*n {
				r, ss := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
				ok = ecdsa.Verify(k, d, r, ss)
			}
		}
		if !ok {
			return s, fmt.Errorf("%s signature does not verify with the certificate's key", s)
		}
	default:
		return s, fmt.Errorf("unsupported public key type %T", pub)
	}
	return s, nil
}

func ecCurve(pub crypto.PublicKey) elliptic.Curve {
	if k, ok := pub.(*ecdsa.PublicKey); ok {
		return k.Curve
	}
	return nil
}
