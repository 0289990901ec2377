// Package cert authenticates IKE peers with X.509 certificates and
// signatures (RFC 7296 §2.15, §3.6–3.8; RFC 7427; RFC 4754; RFC 8420).
//
// A connection configured with method "cert" signs its AUTH payload with
// a private key whose certificate it sends in CERT payloads, and verifies
// the peer's AUTH with the public key of a certificate that chains to one
// of its trusted CAs, is not revoked by a configured CRL, and names the
// identity (IDi/IDr) the peer claims.
//
// Signature schemes: RSA Digital Signature (AUTH method 1, PKCS#1 v1.5 with
// SHA-1), ECDSA with SHA-256/384/512 on P-256/384/521 (methods 9, 10, 11,
// RFC 4754) and Digital Signature (method 14, RFC 7427) with RSASSA-PSS,
// RSASSA-PKCS1-v1_5 (SHA-2), ECDSA and Ed25519. Both roles announce the
// hashes they accept in a SIGNATURE_HASH_ALGORITHMS notify in IKE_SA_INIT;
// method 14 is only used towards a peer that announced a fitting hash.
//
// Certificate requests: the responder sends CERTREQ (the SHA-1 hashes of
// its CAs' SubjectPublicKeyInfo) in IKE_SA_INIT, the initiator in
// IKE_AUTH. Each side sends its end-entity certificate and the
// intermediates that lead to a CA the peer named, or all configured
// intermediates when it named none that we know.
package cert

import (
	"crypto"
	"crypto/sha1" // #nosec G505 -- SHA-1 for CERTREQ hashes and AUTH method 1, as RFC 7296 defines them (trust.go, sig.go)
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
)

// Signature policies of Options.Signature.
const (
	// SignatureAuto uses Digital Signature (14) when the peer announced a
	// fitting hash (RSASSA-PSS for RSA keys, ECDSA, Ed25519), else the
	// key's classic method: 1 for RSA, 9/10/11 for ECDSA by curve.
	SignatureAuto = "auto"
	// SignatureRSA always uses method 1, RSA PKCS#1 v1.5 with SHA-1, for
	// peers that know nothing else.
	SignatureRSA = "rsa"
	// SignaturePSS uses method 14 with RSASSA-PSS.
	SignaturePSS = "pss"
	// SignatureECDSA always uses methods 9/10/11 (RFC 4754) by curve.
	SignatureECDSA = "ecdsa"
	// SignatureEd25519 uses method 14 with Ed25519 (RFC 8420).
	SignatureEd25519 = "ed25519"
	// SignatureDigital uses method 14 with the key's classic algorithm:
	// PKCS#1 v1.5 with SHA-2 for RSA, ECDSA, Ed25519.
	SignatureDigital = "digital"
)

// Options is the configuration section of the "cert" method. Relative
// paths are relative to the configuration file's directory.
type Options struct {
	// Cert is this side's end-entity certificate (PEM or DER). Further
	// certificates in the same PEM file are taken as intermediates.
	Cert string `yaml:"cert"`
	// Key is the private key of Cert (PEM: PKCS#8, PKCS#1 or SEC1); it
	// must not be accessible by group or others.
	Key string `yaml:"key"`
	// CA lists the files of the trust anchors that peers' certificates
	// must chain to. At least one.
	CA []string `yaml:"ca"`
	// Intermediates lists files of intermediate CA certificates: sent to
	// the peer above Cert, and used to complete the peer's chain.
	Intermediates []string `yaml:"intermediates"`
	// CRLs lists CRL files (PEM or DER), reloaded when they change.
	CRLs []string `yaml:"crls"`
	// Signature is the signature policy: auto (default), rsa, pss, ecdsa,
	// ed25519 or digital.
	Signature string `yaml:"signature"`
}

func init() {
	auth.Register("cert", func(decode func(any) error, baseDir string) (auth.Method, error) {
		var o Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return FromOptions(o, baseDir)
	})
}

// Method authenticates with one certificate and key, and verifies peers
// against one set of trust anchors and CRLs. It is safe for concurrent use.
type Method struct {
	key           PrivateKey
	leaf          *x509.Certificate
	chain         []*x509.Certificate // leaf, then its issuers among the intermediates
	intermediates []*x509.Certificate // all configured
	interPool     *x509.CertPool
	roots         *x509.CertPool
	rootCerts     []*x509.Certificate
	certReq       *wire.CertReq
	chainRoots    map[[sha1.Size]byte]bool // CERTREQ hashes of the configured CAs that issued the chain's top
	crls          []*crlFile
	signature     string
	localID       *wire.ID

	now  func() time.Time
	rand io.Reader

	cacheMu sync.Mutex
	cache   map[[sha256.Size]byte]*verifiedChain

	// onProve, when set (tests), learns the scheme each Prove signs with.
	onProve func(initiator bool, s Scheme)
}

// verifiedChain is a peer chain that verified, kept so that the next
// handshake with the same certificates skips path validation.
type verifiedChain struct {
	chains             [][]*x509.Certificate
	notBefore, expires time.Time
}

// maxCachedChains bounds the verified-chain cache; it is emptied when full.
const maxCachedChains = 1024

// Format implements fmt.Formatter so that printing a Method never shows
// the private key.
func (m *Method) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "cert.Method{cert: %s, key: [redacted]}", subjectString(m.leaf))
}

func resolve(baseDir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(baseDir, p)
}

// FromOptions builds a Method from its configuration: it loads the
// certificate, key, CAs, intermediates and CRLs, and checks that the key
// belongs to the certificate and fits the signature policy.
func FromOptions(o Options, baseDir string) (*Method, error) {
	if o.Cert == "" || o.Key == "" {
		return nil, errors.New("cert: both cert and key are required")
	}
	if len(o.CA) == 0 {
		return nil, errors.New("cert: ca is required: the CA certificates peers' certificates must chain to")
	}
	m := &Method{signature: o.Signature, cache: map[[sha256.Size]byte]*verifiedChain{}}
	if m.signature == "" {
		m.signature = SignatureAuto
	}
	own, err := loadCertificates(resolve(baseDir, o.Cert))
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	m.leaf = own[0]
	m.intermediates = append(m.intermediates, own[1:]...)
	for _, p := range o.Intermediates {
		cs, err := loadCertificates(resolve(baseDir, p))
		if err != nil {
			return nil, fmt.Errorf("cert: intermediates: %w", err)
		}
		m.intermediates = append(m.intermediates, cs...)
	}
	for _, p := range o.CA {
		cs, err := loadCertificates(resolve(baseDir, p))
		if err != nil {
			return nil, fmt.Errorf("cert: ca: %w", err)
		}
		m.rootCerts = append(m.rootCerts, cs...)
	}
	for _, p := range o.CRLs {
		f := &crlFile{path: resolve(baseDir, p)}
		if err := f.load(); err != nil {
			return nil, fmt.Errorf("cert: crls: %w", err)
		}
		m.crls = append(m.crls, f)
	}
	key, err := LoadPrivateKey(resolve(baseDir, o.Key))
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	if err := m.init(key); err != nil {
		return nil, err
	}
	return m, nil
}

// init checks the loaded material and derives the rest.
func (m *Method) init(key PrivateKey) error {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok || !pub.Equal(m.leaf.PublicKey) {
		return fmt.Errorf("cert: the private key does not belong to certificate %s", subjectString(m.leaf))
	}
	m.key = key
	if err := checkUsage(m.leaf); err != nil {
		return fmt.Errorf("cert: own %v; peers will refuse it", err)
	}
	kind := kindOf(m.leaf.PublicKey)
	need := map[string]keyKind{SignatureRSA: kindRSA, SignaturePSS: kindRSA, SignatureECDSA: kindECDSA, SignatureEd25519: kindEd25519}
	switch m.signature {
	case SignatureAuto, SignatureDigital:
	case SignatureRSA, SignaturePSS, SignatureECDSA, SignatureEd25519:
		if need[m.signature] != kind {
			return fmt.Errorf("cert: signature %q needs an %s key, the certificate holds an %s key", m.signature, need[m.signature], kind)
		}
	default:
		return fmt.Errorf("cert: unknown signature %q (expected one of: auto, rsa, pss, ecdsa, ed25519, digital)", m.signature)
	}
	m.chain = buildLocalChain(m.leaf, m.intermediates)
	m.chainRoots = map[[sha1.Size]byte]bool{}
	for _, r := range m.rootCerts {
		if issuedBy(m.chain[len(m.chain)-1], r) {
			m.chainRoots[CertReqHash(r)] = true
		}
	}
	m.roots = x509.NewCertPool()
	for _, c := range m.rootCerts {
		m.roots.AddCert(c)
	}
	m.interPool = x509.NewCertPool()
	for _, c := range m.intermediates {
		m.interPool.AddCert(c)
	}
	m.certReq = CertReq(m.rootCerts)
	id, err := CertIdentity(m.leaf)
	if err != nil {
		return fmt.Errorf("cert: %w", err)
	}
	m.localID = id
	m.now = time.Now
	return nil
}

// Name implements auth.Method.
func (*Method) Name() string { return "cert" }

// Accepts implements auth.Method: the signature methods 1, 9, 10, 11 and 14.
func (*Method) Accepts(a wire.AuthMethod) bool {
	switch a {
	case wire.AuthRSASig, wire.AuthECDSA256, wire.AuthECDSA384, wire.AuthECDSA521, wire.AuthDigitalSig:
		return true
	}
	return false
}

// ProvenIdentity implements auth.ProvenIdentity: the identity the
// certificate proves by default (see CertIdentity), what a cert connection
// sends when it has no local_id.
func (m *Method) ProvenIdentity() *wire.ID {
	return &wire.ID{IDType: m.localID.IDType, Data: append([]byte(nil), m.localID.Data...)}
}

// TrustAnchors returns the configured CA certificates, the roots a
// peer's chain must end in (a directory policy names its certificate
// methods by CA).
func (m *Method) TrustAnchors() []*x509.Certificate {
	return append([]*x509.Certificate(nil), m.rootCerts...)
}

// Certificate returns this side's end-entity certificate.
func (m *Method) Certificate() *x509.Certificate { return m.leaf }

// Intermediates returns the configured intermediate CA certificates (those
// in the cert file after the end-entity one, and the intermediates files).
func (m *Method) Intermediates() []*x509.Certificate {
	return append([]*x509.Certificate(nil), m.intermediates...)
}

// NewSession implements auth.Method.
func (m *Method) NewSession(p *auth.Params) (auth.Session, error) {
	return &session{m: m, p: p}, nil
}

// chooseScheme picks the scheme Prove signs with, from the policy and the
// hashes the peer announced.
func (m *Method) chooseScheme(peerHashes []HashAlgorithm, announced bool) (Scheme, error) {
	kind := kindOf(m.leaf.PublicKey)
	legacy := func() (Scheme, error) {
		switch kind {
		case kindRSA:
			return Scheme{Method: wire.AuthRSASig, kind: kindRSA, Hash: crypto.SHA1}, nil
		case kindECDSA:
			meth, h := curveMethod(ecCurve(m.leaf.PublicKey))
			return Scheme{Method: meth, kind: kindECDSA, Hash: h}, nil
		}
		return Scheme{}, errors.New("an Ed25519 key can only sign with Digital Signature (14), and the peer sent no SIGNATURE_HASH_ALGORITHMS with the identity hash")
	}
	digital := func(pss bool) (Scheme, error) {
		s := Scheme{Method: wire.AuthDigitalSig, kind: kind, PSS: pss}
		if kind == kindEd25519 {
			for _, h := range peerHashes {
				if h == HashIdentity {
					return s, nil
				}
			}
			return Scheme{}, fmt.Errorf("the peer's SIGNATURE_HASH_ALGORITHMS %v lack the identity hash (5) that Ed25519 needs", peerHashes)
		}
		for _, want := range m.hashPreference() {
			for _, h := range peerHashes {
				if h == want {
					s.Hash = h.hash()
					return s, nil
				}
			}
		}
		return Scheme{}, fmt.Errorf("the peer's SIGNATURE_HASH_ALGORITHMS %v hold none of SHA2-256, SHA2-384, SHA2-512", peerHashes)
	}
	switch m.signature {
	case SignatureRSA, SignatureECDSA:
		return legacy()
	case SignatureAuto:
		if announced {
			if s, err := digital(kind == kindRSA); err == nil {
				return s, nil
			}
		}
		return legacy()
	}
	if !announced {
		return Scheme{}, fmt.Errorf("signature %q needs Digital Signature (14), but the peer sent no SIGNATURE_HASH_ALGORITHMS notify (RFC 7427)", m.signature)
	}
	return digital(m.signature == SignaturePSS)
}

// hashPreference orders the SHA-2 hashes for the key: the one matching an
// ECDSA curve's strength first, SHA-256 first for RSA.
func (m *Method) hashPreference() []HashAlgorithm {
	if c := ecCurve(m.leaf.PublicKey); c != nil {
		switch _, h := curveMethod(c); h {
		case crypto.SHA384:
			return []HashAlgorithm{HashSHA2_384, HashSHA2_512, HashSHA2_256}
		case crypto.SHA512:
			return []HashAlgorithm{HashSHA2_512, HashSHA2_384, HashSHA2_256}
		}
	}
	return []HashAlgorithm{HashSHA2_256, HashSHA2_384, HashSHA2_512}
}

// certPayloads are the CERT payloads this side sends: the end-entity
// certificate, then the intermediates below the first CA of its chain the
// peer asked for, or all configured intermediates when the peer asked for
// none that the chain reaches.
func (m *Method) certPayloads(req map[[sha1.Size]byte]bool) []wire.Payload {
	out := []wire.Payload{&wire.Cert{Encoding: CertEncodingX509Sig, Data: m.leaf.Raw}}
	if len(req) > 0 {
		for i, c := range m.chain[1:] {
			if req[CertReqHash(c)] {
				return appendCerts(out, m.chain[1:1+i])
			}
		}
		for h := range m.chainRoots {
			if req[h] {
				return appendCerts(out, m.chain[1:])
			}
		}
	}
	return appendCerts(out, m.intermediates)
}

func appendCerts(out []wire.Payload, cs []*x509.Certificate) []wire.Payload {
	for _, c := range cs {
		out = append(out, &wire.Cert{Encoding: CertEncodingX509Sig, Data: c.Raw})
	}
	return out
}

// verifyPeerChain parses the peer's CERT payloads and validates its
// end-entity certificate up to a trust anchor, with the usage rules and
// the CRLs. It returns the end-entity certificate.
func (m *Method) verifyPeerChain(peer []wire.Payload) (*x509.Certificate, error) {
	var raws [][]byte
	for _, p := range peer {
		if c, ok := p.(*wire.Cert); ok {
			if c.Encoding == CertEncodingX509Sig {
				raws = append(raws, c.Data)
			}
		}
	}
	if len(raws) == 0 {
		return nil, auth.Failf("peer sent no X.509 certificate (CERT payload of encoding 4)")
	}
	now := m.now()
	h := sha256.New()
	for _, r := range raws {
		var l [4]byte
		l[0], l[1], l[2], l[3] = byte(len(r)>>24), byte(len(r)>>16), byte(len(r)>>8), byte(len(r))
		h.Write(l[:])
		h.Write(r)
	}
	key := [sha256.Size]byte(h.Sum(nil))
	m.cacheMu.Lock()
	vc := m.cache[key]
	m.cacheMu.Unlock()
	if vc == nil || now.Before(vc.notBefore) || !now.Before(vc.expires) {
		var err error
		if vc, err = m.validate(raws, now); err != nil {
			return nil, err
		}
		m.cacheMu.Lock()
		if len(m.cache) >= maxCachedChains {
			clear(m.cache)
		}
		m.cache[key] = vc
		m.cacheMu.Unlock()
	}
	// Revocation is checked at every handshake: CRLs change.
	reason := ""
	for _, chain := range vc.chains {
		if reason = checkRevoked(chain, m.crls); reason == "" {
			return chain[0], nil
		}
	}
	return nil, auth.Failf("%s", reason)
}

// validate does path validation for the peer's certificates.
func (m *Method) validate(raws [][]byte, now time.Time) (*verifiedChain, error) {
	certs := make([]*x509.Certificate, len(raws))
	for i, r := range raws {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return nil, auth.Failf("peer's certificate #%d does not parse: %v", i+1, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	inter := m.interPool
	if len(certs) > 1 {
		inter = m.interPool.Clone()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots: m.roots, Intermediates: inter, CurrentTime: now,
		// EKUs are checked by checkUsage, with IKE's rules.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, auth.Failf("%s", describeVerifyError(leaf, err, now))
	}
	if err := checkUsage(leaf); err != nil {
		return nil, auth.Failf("%v", err)
	}
	vc := &verifiedChain{chains: chains}
	for _, chain := range chains {
		for _, c := range chain {
			if vc.expires.IsZero() || c.NotAfter.Before(vc.expires) {
				vc.expires = c.NotAfter
			}
			if c.NotBefore.After(vc.notBefore) {
				vc.notBefore = c.NotBefore
			}
		}
	}
	return vc, nil
}

type session struct {
	m *Method
	p *auth.Params
}

// Format implements fmt.Formatter: a session never prints its method's key.
func (session) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "cert.session{[redacted]}") }

// SAInitPayloads announces the hashes accepted for Digital Signature
// authentication, and for a responder requests certificates from its CAs.
func (s *session) SAInitPayloads() []wire.Payload {
	ps := []wire.Payload{HashAlgorithmsNotify(announcedHashes)}
	if !s.p.Initiator {
		ps = append(ps, s.m.certReq)
	}
	return ps
}

// Prove returns CERT payloads, a CERTREQ (initiator) and AUTH.
func (s *session) Prove(signedOctets []byte, peer []wire.Payload) ([]wire.Payload, error) {
	m := s.m
	if id := s.p.LocalID; id != nil {
		if err := MatchIdentity(id, m.leaf); err != nil {
			return nil, fmt.Errorf("cert: local %v; set local_id to an identity the certificate holds", err)
		}
	}
	hashes, announced := PeerHashes(s.p.PeerInit)
	scheme, err := m.chooseScheme(hashes, announced)
	if err != nil {
		return nil, fmt.Errorf("cert: %w", err)
	}
	out := m.certPayloads(requestedCAs(peer, s.p.PeerInit))
	if s.p.Initiator {
		out = append(out, m.certReq)
	}
	sig, err := sign(m.key.signer, scheme, signedOctets, m.rand)
	if err != nil {
		return nil, fmt.Errorf("cert: signing with %s: %w", scheme, err)
	}
	if m.onProve != nil {
		m.onProve(s.p.Initiator, scheme)
	}
	return append(out, &wire.Auth{Method: scheme.Method, Data: sig}), nil
}

// Verify checks the peer's certificate chain, that the certificate names
// the peer's ID, and the AUTH signature with the certificate's key.
func (s *session) Verify(signedOctets []byte, peer []wire.Payload) error {
	var id *wire.ID
	var a *wire.Auth
	for _, p := range peer {
		switch v := p.(type) {
		case *wire.ID:
			// The peer's ID: IDr when we initiated, IDi when we respond.
			if v.Responder == s.p.Initiator && id == nil {
				id = v
			}
		case *wire.Auth:
			a = v
		}
	}
	if id == nil || a == nil {
		return auth.Failf("peer's IKE_AUTH lacks its ID or AUTH payload")
	}
	if !s.m.Accepts(a.Method) {
		return auth.Failf("peer used AUTH method %d; a certificate connection takes signatures (1, 9, 10, 11, 14)", a.Method)
	}
	leaf, err := s.m.verifyPeerChain(peer)
	if err != nil {
		return err
	}
	if err := MatchIdentity(id, leaf); err != nil {
		return auth.Failf("peer %v", err)
	}
	if _, err := verifyAuth(leaf.PublicKey, a, signedOctets); err != nil {
		return auth.Failf("AUTH of %s: %v", IdentityString(id), err)
	}
	return nil
}

// Close implements auth.Session; a session holds no secrets of its own.
func (*session) Close() {}
