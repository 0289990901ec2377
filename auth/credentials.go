package auth

// Credentials for key exchanges whose authentication is not IKEv2's AUTH
// payload: IKEv1 (RFC 2409) keys SKEYID with the pre-shared key itself and
// signs a hash it computes, with its own payloads. A Method that can serve
// such an engine implements these small interfaces besides Method; they
// carry no wire types, so that an engine that must not depend on IKEv2's
// wire format (package ikev1 declares the same method sets) can use them.

// PresharedKeyer is implemented by methods that hold a pre-shared key
// (auth/psk).
type PresharedKeyer interface {
	// PresharedKey returns a copy of the key; the caller wipes it.
	PresharedKey() []byte
}

// HashSigner is implemented by methods that sign with a private key and
// send a certificate chain (auth/cert). Its methods do not block.
type HashSigner interface {
	// SignHash signs digest as it is, without hashing it again: RSA
	// PKCS#1 v1.5 without a DigestInfo (RFC 2409 §5.1's SIG payload),
	// ECDSA as r||s padded to the curve (RFC 4754).
	SignHash(digest []byte) ([]byte, error)
	// KeyAlgorithm names the key: "rsa", "ecdsa-p256", "ecdsa-p384",
	// "ecdsa-p521" ("ed25519" signs no IKEv1 hash).
	KeyAlgorithm() string
	// CertificateChain returns this side's certificates, DER, the
	// end-entity one first, then the intermediates that lead to its CA.
	CertificateChain() [][]byte
}

// ChainVerifier is implemented by methods that verify peers' certificate
// chains (auth/cert). VerifyHashSignature may block (it reads CRLs).
type ChainVerifier interface {
	// VerifyHashSignature checks that chain (DER, the end-entity
	// certificate first) leads to a trust anchor and is not revoked, that
	// the end-entity certificate names the identity of type idType (the
	// ID type numbers IKEv1 and IKEv2 share: 1 IPv4, 2 FQDN, 3 email,
	// 5 IPv6, 9 DN) and value id, and that sig is its key's signature of
	// digest in SignHash's form.
	VerifyHashSignature(chain [][]byte, idType uint8, id []byte, digest, sig []byte) error
	// TrustedCANames returns the DER subjects of the trust anchors, for
	// certificate requests that name CAs (IKEv1's CR payload).
	TrustedCANames() [][]byte
}
