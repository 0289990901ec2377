// Package psk authenticates IKE peers with a pre-shared key (RFC 7296 §2.15,
// Auth Method 2, "Shared Key Message Integrity Code").
package psk

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
)

// keyPad is the fixed string of §2.15 that turns the shared secret into
// the key of the MIC.
const keyPad = "Key Pad for IKEv2"

// minSecretLen is the shortest secret accepted. §2.15 warns that a PSK is
// only as strong as its entropy; strongSwan accepts anything, but a secret
// of a few characters is almost always a mistake worth refusing.
const minSecretLen = 8

// Secret is a pre-shared key. It never prints its contents.
type Secret struct{ b []byte }

// String implements fmt.Stringer without revealing the secret.
func (Secret) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer without revealing the secret.
func (Secret) GoString() string { return "psk.Secret{[redacted]}" }

// Format implements fmt.Formatter: whatever the verb, the secret shows as
// [redacted], also inside structs where fmt would not call String.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[redacted]") }

// Wipe overwrites the secret.
func (s *Secret) Wipe() {
	for i := range s.b {
		s.b[i] = 0
	}
	s.b = nil
}

// NewSecret copies b into a Secret.
func NewSecret(b []byte) (Secret, error) {
	if len(b) < minSecretLen {
		return Secret{}, fmt.Errorf("pre-shared key too short: %d octets, need at least %d", len(b), minSecretLen)
	}
	return Secret{b: append([]byte(nil), b...)}, nil
}

// Method authenticates with one pre-shared key, in both directions.
type Method struct {
	secret Secret
}

// Format implements fmt.Formatter so that printing a Method, for example
// inside a logged configuration, never shows the key: fmt does not call
// the methods of unexported fields such as the secret.
func (Method) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "psk.Method{[redacted]}") }

// New returns a PSK method for secret.
func New(secret Secret) *Method { return &Method{secret: secret} }

// Options is the configuration section of the "psk" method: the key inline
// (Secret) or in a file (File, its content with a trailing newline removed);
// exactly one of them.
type Options struct {
	Secret string `yaml:"secret"`
	File   string `yaml:"file"`
}

func init() {
	auth.Register("psk", func(decode func(any) error, baseDir string) (auth.Method, error) {
		var o Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return FromOptions(o, baseDir)
	})
}

// FromOptions builds a Method from its configuration.
func FromOptions(o Options, baseDir string) (*Method, error) {
	switch {
	case o.Secret != "" && o.File != "":
		return nil, errors.New("psk: give either secret or file, not both")
	case o.Secret != "":
		s, err := NewSecret([]byte(o.Secret))
		if err != nil {
			return nil, err
		}
		return New(s), nil
	case o.File != "":
		path := o.File
		if !filepath.IsAbs(path) {
			path = filepath.Join(baseDir, path)
		}
		b, err := os.ReadFile(path) // #nosec G304 -- the configured PSK file (config checks its mode first)
		if err != nil {
			return nil, fmt.Errorf("psk: %w", err)
		}
		trimmed := strings.TrimRight(string(b), "\r\n")
		s, err := NewSecret([]byte(trimmed))
		for i := range b {
			b[i] = 0
		}
		if err != nil {
			return nil, fmt.Errorf("psk: %s: %w", path, err)
		}
		return New(s), nil
	default:
		return nil, errors.New("psk: a secret or a file is required")
	}
}

// Name implements auth.Method.
func (*Method) Name() string { return "psk" }

// PresharedKey implements auth.PresharedKeyer: IKEv1 keys SKEYID with the
// key itself (RFC 2409 §5.4). It returns a copy; the caller wipes it.
func (m *Method) PresharedKey() []byte { return append([]byte(nil), m.secret.b...) }

var _ auth.PresharedKeyer = (*Method)(nil)

// Accepts implements auth.Method.
func (*Method) Accepts(m wire.AuthMethod) bool { return m == wire.AuthSharedKeyMIC }

// NewSession implements auth.Method.
func (m *Method) NewSession(p *auth.Params) (auth.Session, error) {
	return &session{params: p, secret: m.secret.b}, nil
}

type session struct {
	params *auth.Params
	secret []byte
	key    []byte // prf(secret, keyPad), made at first use
}

// Format implements fmt.Formatter: the derived key never prints.
func (session) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "psk.session{[redacted]}") }

// mic computes AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"),
// <SignedOctets>) (§2.15). The inner prf is the same for both directions,
// so it is computed once per handshake, once the PRF is negotiated.
func (s *session) mic(signedOctets []byte) ([]byte, error) {
	if s.params.PRF == nil {
		return nil, errors.New("psk: no PRF negotiated")
	}
	if s.key == nil {
		s.key = s.params.PRF.Sum(nil, s.secret, []byte(keyPad))
	}
	return s.params.PRF.Sum(nil, s.key, signedOctets), nil
}

func (*session) SAInitPayloads() []wire.Payload { return nil }

func (s *session) Prove(signedOctets []byte, _ []wire.Payload) ([]wire.Payload, error) {
	mic, err := s.mic(signedOctets)
	if err != nil {
		return nil, err
	}
	return []wire.Payload{&wire.Auth{Method: wire.AuthSharedKeyMIC, Data: mic}}, nil
}

func (s *session) Verify(signedOctets []byte, peer []wire.Payload) error {
	a, _ := wire.Find(peer, wire.PayloadAUTH).(*wire.Auth)
	if a == nil {
		return auth.Failf("no AUTH payload")
	}
	if a.Method != wire.AuthSharedKeyMIC {
		return auth.Failf("peer used auth method %d, expected shared key MIC (2)", a.Method)
	}
	want, err := s.mic(signedOctets)
	if err != nil {
		return err
	}
	// hmac.Equal compares in constant time.
	if !hmac.Equal(a.Data, want) {
		return auth.Failf("pre-shared key MIC mismatch (the peers' keys differ)")
	}
	return nil
}

func (s *session) Close() {
	for i := range s.key {
		s.key[i] = 0
	}
}
