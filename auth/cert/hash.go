package cert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
)

// The auth.HashSigner and auth.ChainVerifier side of a certificate
// method, for key exchanges that sign a hash they computed (IKEv1).

var (
	_ auth.HashSigner    = (*Method)(nil)
	_ auth.ChainVerifier = (*Method)(nil)
)

// KeyAlgorithm implements auth.HashSigner.
func (m *Method) KeyAlgorithm() string {
	switch k := m.key.signer.(type) {
	case *rsa.PrivateKey:
		return "rsa"
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return "ecdsa-p256"
		case elliptic.P384():
			return "ecdsa-p384"
		case elliptic.P521():
			return "ecdsa-p521"
		}
	}
	return "ed25519"
}

// SignHash implements auth.HashSigner: RSA PKCS#1 v1.5 of the digest as
// it is (no DigestInfo, as IKEv1's RSA signatures are), ECDSA r||s.
func (m *Method) SignHash(digest []byte) ([]byte, error) {
	rnd := m.rand
	if rnd == nil {
		rnd = rand.Reader
	}
	switch k := m.key.signer.(type) {
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rnd, k, 0, digest)
	case *ecdsa.PrivateKey:
		return signRaw(rnd, k, digest)
	}
	return nil, errors.New("cert: an Ed25519 key cannot sign an IKEv1 hash")
}

// CertificateChain implements auth.HashSigner.
func (m *Method) CertificateChain() [][]byte {
	out := make([][]byte, 0, len(m.chain))
	for _, c := range m.chain {
		out = append(out, c.Raw)
	}
	if len(out) == 0 {
		out = append(out, m.leaf.Raw)
	}
	return out
}

// TrustedCANames implements auth.ChainVerifier.
func (m *Method) TrustedCANames() [][]byte {
	out := make([][]byte, 0, len(m.rootCerts))
	for _, c := range m.rootCerts {
		out = append(out, c.RawSubject)
	}
	return out
}

// VerifyHashSignature implements auth.ChainVerifier, with the path
// validation, usage rules, CRLs and identity binding of IKEv2's Verify.
func (m *Method) VerifyHashSignature(chain [][]byte, idType uint8, id []byte, digest, sig []byte) error {
	if len(chain) == 0 {
		return auth.Failf("peer sent no X.509 certificate")
	}
	leaf, err := m.verifyRaws(chain)
	if err != nil {
		return err
	}
	if err := MatchIdentity(&wire.ID{IDType: wire.IDType(idType), Data: id}, leaf); err != nil {
		return auth.Failf("peer %v", err)
	}
	switch k := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, 0, digest, sig); err != nil {
			return auth.Failf("RSA signature does not verify with the certificate's key")
		}
	case *ecdsa.PublicKey:
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n || !ecdsa.Verify(k, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
			return auth.Failf("ECDSA signature does not verify with the certificate's key")
		}
	default:
		return auth.Failf("the peer's %s key cannot sign an IKEv1 hash", kindOf(leaf.PublicKey))
	}
	return nil
}

// verifyRaws validates a peer's DER chain (cached) and checks revocation;
// it returns the end-entity certificate.
func (m *Method) verifyRaws(raws [][]byte) (*x509.Certificate, error) {
	ps := make([]wire.Payload, len(raws))
	for i, r := range raws {
		ps[i] = &wire.Cert{Encoding: CertEncodingX509Sig, Data: r}
	}
	return m.verifyPeerChain(ps)
}
