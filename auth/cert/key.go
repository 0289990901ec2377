package cert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/iked/iked/auth"
	"io"
	"os"
)

// PrivateKey is the private key that signs this side's AUTH payloads. It
// never prints its contents.
type PrivateKey struct {
	signer crypto.Signer
}

// Format implements fmt.Formatter: whatever the verb, the key shows as
// [redacted], also inside structs where fmt would not call String.
func (PrivateKey) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, "cert.PrivateKey{[redacted]}")
}

// String implements fmt.Stringer without revealing the key.
func (PrivateKey) String() string { return "cert.PrivateKey{[redacted]}" }

// GoString implements fmt.GoStringer without revealing the key.
func (PrivateKey) GoString() string { return "cert.PrivateKey{[redacted]}" }

// Public returns the key's public half.
func (k PrivateKey) Public() crypto.PublicKey { return k.signer.Public() }

// LoadPrivateKey reads a PEM private key: PKCS#8 ("PRIVATE KEY": RSA,
// ECDSA or Ed25519), PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE
// KEY"). The file must not be readable or writable by group or others
// (mode & 0o077 == 0), as ssh demands of its keys: a key others can read
// is no longer private. Encrypted PEM is refused.
func LoadPrivateKey(path string) (PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return PrivateKey{}, err
	}
	if err := auth.CheckSecretFile("private key", path, fi); err != nil {
		return PrivateKey{}, err
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the configured private key; its mode was checked above
	if err != nil {
		return PrivateKey{}, err
	}
	defer wipe(b)
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

// ParsePrivateKeyPEM parses the first private key block of PEM data, in
// the formats LoadPrivateKey accepts. Other blocks (such as SEC1's "EC
// PARAMETERS") are skipped.
func ParsePrivateKeyPEM(data []byte) (PrivateKey, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return PrivateKey{}, errors.New("no PEM private key found (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)")
		}
		if _, enc := block.Headers["Proc-Type"]; enc {
			return PrivateKey{}, errors.New("encrypted PEM private keys are not supported; decrypt it (openssl pkey -in KEY -out KEY.plain) and protect the file with its mode")
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return PrivateKey{}, errors.New("encrypted PKCS#8 private keys are not supported; decrypt it (openssl pkey -in KEY -out KEY.plain) and protect the file with its mode")
		default:
			continue
		}
		wipe(block.Bytes)
		if err != nil {
			return PrivateKey{}, fmt.Errorf("%s block: %w", block.Type, err)
		}
		return newPrivateKey(key)
	}
}

func newPrivateKey(key any) (PrivateKey, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return PrivateKey{}, fmt.Errorf("RSA key of %d bits is too short (at least 2048)", k.N.BitLen())
		}
		return PrivateKey{signer: k}, nil
	case *ecdsa.PrivateKey:
		if m, _ := curveMethod(k.Curve); m == 0 {
			return PrivateKey{}, fmt.Errorf("ECDSA curve %s is not supported (P-256, P-384, P-521)", k.Curve.Params().Name)
		}
		return PrivateKey{signer: k}, nil
	case ed25519.PrivateKey:
		return PrivateKey{signer: k}, nil
	}
	return PrivateKey{}, fmt.Errorf("unsupported private key type %T", key)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
