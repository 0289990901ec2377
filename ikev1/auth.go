package ikev1

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/transform"
)

// The credentials a connection authenticates with (Connection.Auth). They
// are declared here, not imported, so that this package depends on no
// IKEv2 code; package auth declares the same method sets, and auth/psk and
// auth/cert implement them.
type (
	// PresharedKeyer holds a pre-shared key. IKEv1 keys SKEYID with the key
	// itself (RFC 2409 §5.4).
	PresharedKeyer interface {
		// PresharedKey returns a copy of the key; the caller wipes it.
		PresharedKey() []byte
	}
	// HashSigner signs Main Mode's HASH_I or HASH_R with a private key
	// and holds the certificate chain that goes with it. It must not block:
	// the engine calls it with an SA's lock held.
	HashSigner interface {
		// SignHash signs digest as it is (no further hashing): RSA
		// PKCS#1 v1.5 without a DigestInfo (RFC 2409 §5.1), ECDSA as r||s
		// (RFC 4754).
		SignHash(digest []byte) ([]byte, error)
		// KeyAlgorithm is "rsa", "ecdsa-p256", "ecdsa-p384" or
		// "ecdsa-p521".
		KeyAlgorithm() string
		// CertificateChain returns this side's certificates, DER, the
		// end-entity one first.
		CertificateChain() [][]byte
	}
	// ChainVerifier checks a peer's certificates and signature. It may
	// block (CRLs are read from files): the engine calls it without locks.
	ChainVerifier interface {
		// VerifyHashSignature checks that chain (DER, the end-entity
		// certificate first, then intermediates) leads to a trusted CA and
		// is not revoked, that the end-entity certificate names the
		// identity of type idType (IKE ID type numbers) and value id, and
		// that sig is its key's signature of digest as SignHash makes it.
		VerifyHashSignature(chain [][]byte, idType uint8, id []byte, digest, sig []byte) error
		// TrustedCANames returns the DER subjects of the trusted CAs, for
		// certificate requests.
		TrustedCANames() [][]byte
	}
)

// MainModeAuth is one Main Mode authentication method (RFC 2409 §5.1-5.4,
// and Windows' GSS-API Kerberos): registered by its Authentication Method
// attribute value. The engine runs the key exchange and the encryption;
// the method decides SKEYID, what else travels in messages 3 and 4, and
// the proof in messages 5 and 6.
type MainModeAuth interface {
	// MethodFor returns the attribute value with which creds (a
	// Connection.Auth) authenticate by this method, or 0 when it cannot
	// use them.
	MethodFor(creds any) uint16
	// Name is the method's name in logs and ikectl ("psk", "rsa-sig").
	Name(method uint16) string
	// NewExchange starts the method's part in one Main Mode.
	NewExchange(p *AuthParams) (AuthExchange, error)
}

// AuthParams is what a method knows of its Main Mode.
type AuthParams struct {
	Initiator bool
	// Method is the negotiated attribute value.
	Method uint16
	// Creds are the connection's credentials.
	Creds any
	// PRF is the negotiated PRF (the HMAC of the negotiated hash).
	PRF *transform.PRF
	// LocalAddr and PeerAddr are the IKE endpoints.
	LocalAddr, PeerAddr netip.AddrPort
	// Transform is the negotiated Main Mode transform (a method reads its
	// own attributes there, such as GSS-API's identity).
	Transform *isakmp.Transform
}

// AuthExchange is a method's part in one Main Mode. The engine calls, in
// order: KEPayloads (message 3 for the initiator, 4 for the responder),
// PeerKE (initiator, with message 4), SKEYID, then Prove and Verify in
// the order of messages 5 and 6. Verify may block; the others run with
// the SA's lock held and must not.
type AuthExchange interface {
	// KEPayloads returns what this side adds to its KE message besides KE,
	// nonce and NAT-D; peer is the peer's KE message for the responder,
	// nil for the initiator.
	KEPayloads(peer []isakmp.Payload) ([]isakmp.Payload, error)
	// PeerKE reads what the responder added to message 4.
	PeerKE(peer []isakmp.Payload) error
	// SKEYID computes the method's SKEYID (§5): from the pre-shared key,
	// or from the nonces and g^xy.
	SKEYID(prf *transform.PRF, ni, nr, gxy []byte) ([]byte, error)
	// HashPRF is the PRF of HASH_I and HASH_R: the negotiated one, or
	// the method's own (ECDSA's hash, RFC 4754 §4 as strongSwan reads it).
	HashPRF(negotiated *transform.PRF) *transform.PRF
	// LocalIdentity is the identity to send when the connection names
	// none (a certificate's subject); zero means the IP address.
	LocalIdentity() Identity
	// Prove returns the payloads after ID in message 5 or 6 that prove
	// hash (HASH_I or HASH_R).
	Prove(hash []byte) ([]isakmp.Payload, error)
	// Verify checks the peer's message 5 or 6 (payloads after ID) against
	// the hash it must prove, for the peer's identity.
	Verify(hash []byte, peerID Identity, peer []isakmp.Payload) error
	// Close wipes the exchange's secrets.
	Close()
}

// authFailure is a failed authentication: answered with
// AUTHENTICATION-FAILED (or INVALID-HASH-INFORMATION, INVALID-SIGNATURE).
type authFailure struct {
	code   isakmp.NotifyType
	reason string
}

func (f *authFailure) Error() string { return "authentication failed: " + f.reason }

func authFailf(code isakmp.NotifyType, format string, args ...any) *authFailure {
	return &authFailure{code: code, reason: fmt.Sprintf(format, args...)}
}

func builtinAuths() []MainModeAuth { return []MainModeAuth{pskAuth{}, sigAuth{}, gssAuth{}} }

// authFor returns the method and attribute value for a connection's
// credentials.
func (e *Engine) authFor(creds any) (MainModeAuth, uint16) {
	for _, a := range e.authList {
		if m := a.MethodFor(creds); m != 0 {
			return a, m
		}
	}
	return nil, 0
}

// pskAuth is pre-shared key authentication (RFC 2409 §5.4).
type pskAuth struct{}

func (pskAuth) MethodFor(creds any) uint16 {
	if _, ok := creds.(PresharedKeyer); ok {
		return isakmp.AuthPSK
	}
	return 0
}

func (pskAuth) Name(uint16) string { return "psk" }

func (pskAuth) NewExchange(p *AuthParams) (AuthExchange, error) {
	k, ok := p.Creds.(PresharedKeyer)
	if !ok {
		return nil, errors.New("no pre-shared key")
	}
	return &pskExchange{key: k.PresharedKey()}, nil
}

type pskExchange struct{ key []byte }

func (*pskExchange) KEPayloads([]isakmp.Payload) ([]isakmp.Payload, error) { return nil, nil }
func (*pskExchange) PeerKE([]isakmp.Payload) error                         { return nil }
func (x *pskExchange) SKEYID(prf *transform.PRF, ni, nr, _ []byte) ([]byte, error) {
	return skeyidPSK(prf, x.key, ni, nr), nil
}
func (*pskExchange) HashPRF(p *transform.PRF) *transform.PRF { return p }
func (*pskExchange) LocalIdentity() Identity                 { return Identity{} }
func (*pskExchange) Prove(hash []byte) ([]isakmp.Payload, error) {
	return []isakmp.Payload{&isakmp.Hash{Data: hash}}, nil
}

func (*pskExchange) Verify(hash []byte, _ Identity, peer []isakmp.Payload) error {
	h, _ := isakmp.Find(peer, isakmp.PayloadHash).(*isakmp.Hash)
	if h == nil {
		return authFailf(isakmp.PayloadMalformed, "no HASH payload")
	}
	if !hashEqual(h.Data, hash) {
		return authFailf(isakmp.InvalidHashInformation, "HASH mismatch: the peers' pre-shared keys differ")
	}
	return nil
}

func (x *pskExchange) Close() { clear(x.key) }

// sigAuth is signature authentication (RFC 2409 §5.1) with RSA (method 3)
// or ECDSA (RFC 4754: 9, 10, 11 by curve).
type sigAuth struct{}

var sigMethods = map[string]uint16{
	"rsa": isakmp.AuthRSASig, "ecdsa-p256": isakmp.AuthECDSA256,
	"ecdsa-p384": isakmp.AuthECDSA384, "ecdsa-p521": isakmp.AuthECDSA521,
}

func (sigAuth) MethodFor(creds any) uint16 {
	s, ok := creds.(HashSigner)
	if !ok {
		return 0
	}
	if _, ok := creds.(ChainVerifier); !ok {
		return 0
	}
	return sigMethods[s.KeyAlgorithm()]
}

func (sigAuth) Name(m uint16) string {
	if m == isakmp.AuthRSASig {
		return "rsa-sig"
	}
	return "ecdsa-sig"
}

func (sigAuth) NewExchange(p *AuthParams) (AuthExchange, error) {
	s, ok1 := p.Creds.(HashSigner)
	v, ok2 := p.Creds.(ChainVerifier)
	if !ok1 || !ok2 {
		return nil, errors.New("no certificate and key")
	}
	return &sigExchange{signer: s, verifier: v, method: p.Method}, nil
}

type sigExchange struct {
	signer   HashSigner
	verifier ChainVerifier
	method   uint16
	// peerCAs are the CA names the peer asked for (its CR payloads).
	peerCAs [][]byte
}

// KEPayloads asks the peer for certificates from our CAs (RFC 2409 §5.1:
// CERTREQ in messages 3 and 4).
func (x *sigExchange) KEPayloads(peer []isakmp.Payload) ([]isakmp.Payload, error) {
	x.notePeerCAs(peer)
	var out []isakmp.Payload
	for _, n := range x.verifier.TrustedCANames() {
		out = append(out, &isakmp.CertReq{Encoding: isakmp.CertX509Sig, Data: n})
	}
	return out, nil
}

func (x *sigExchange) notePeerCAs(peer []isakmp.Payload) {
	for _, p := range peer {
		if cr, ok := p.(*isakmp.CertReq); ok && cr.Encoding == isakmp.CertX509Sig {
			x.peerCAs = append(x.peerCAs, cr.Data)
		}
	}
}

func (x *sigExchange) PeerKE(peer []isakmp.Payload) error { x.notePeerCAs(peer); return nil }

func (*sigExchange) SKEYID(prf *transform.PRF, ni, nr, gxy []byte) ([]byte, error) {
	return skeyidSig(prf, ni, nr, gxy), nil
}

func (x *sigExchange) HashPRF(p *transform.PRF) *transform.PRF {
	switch x.method {
	case isakmp.AuthECDSA256:
		return transform.PRFByID(transform.PRFHMACSHA2_256)
	case isakmp.AuthECDSA384:
		return transform.PRFByID(transform.PRFHMACSHA2_384)
	case isakmp.AuthECDSA521:
		return transform.PRFByID(transform.PRFHMACSHA2_512)
	}
	return p
}

// LocalIdentity is the certificate's subject, as strongSwan and Windows
// identify certificate peers by default.
func (x *sigExchange) LocalIdentity() Identity {
	chain := x.signer.CertificateChain()
	if len(chain) == 0 {
		return Identity{}
	}
	c, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return Identity{}
	}
	return Identity{Type: isakmp.IDDERASN1DN, Value: c.RawSubject}
}

// Prove sends the end-entity certificate (and the intermediates, which a
// peer with only the root needs) and the signature.
func (x *sigExchange) Prove(hash []byte) ([]isakmp.Payload, error) {
	sig, err := x.signer.SignHash(hash)
	if err != nil {
		return nil, err
	}
	var out []isakmp.Payload
	for _, c := range x.signer.CertificateChain() {
		out = append(out, &isakmp.Cert{Encoding: isakmp.CertX509Sig, Data: c})
	}
	return append(out, &isakmp.Sig{Data: sig}), nil
}

func (x *sigExchange) Verify(hash []byte, peerID Identity, peer []isakmp.Payload) error {
	var chain [][]byte
	var sig *isakmp.Sig
	for _, p := range peer {
		switch v := p.(type) {
		case *isakmp.Cert:
			if v.Encoding != isakmp.CertX509Sig {
				return authFailf(isakmp.CertTypeUnsupported, "certificate encoding %d", v.Encoding)
			}
			chain = append(chain, v.Data)
		case *isakmp.Sig:
			sig = v
		}
	}
	if sig == nil {
		return authFailf(isakmp.PayloadMalformed, "no SIG payload")
	}
	if len(chain) == 0 {
		return authFailf(isakmp.CertificateUnavailable, "the peer sent no certificate")
	}
	if err := x.verifier.VerifyHashSignature(chain, peerID.Type, peerID.Value, hash, sig.Data); err != nil {
		return authFailf(isakmp.InvalidSignature, "%v", err)
	}
	return nil
}

func (*sigExchange) Close() {}
