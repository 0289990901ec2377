package vici

import (
	"crypto"
	"crypto/sha1" // #nosec G505 -- key identifiers as strongSwan writes them (keyID)
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
)

// Credentials loaded over VICI (vici_cred.c): shared keys (load-shared,
// unload-shared, get-shared), certificates (load-cert) and private keys
// (load-key, unload-key, get-keys), and clear-creds. They live in memory
// only, as charon's; keys and secrets are wiped when unloaded.

func init() {
	commands["load-shared"] = loadShared
	commands["unload-shared"] = unloadShared
	commands["get-shared"] = func(c *client, _ *Message) *Message {
		return NewMessage().SetList("keys", c.s.store.sharedIDs())
	}
	commands["load-cert"] = loadCert
	commands["load-key"] = loadKey
	commands["unload-key"] = unloadKey
	commands["get-keys"] = func(c *client, _ *Message) *Message {
		return NewMessage().SetList("keys", c.s.store.keyIDs())
	}
	commands["clear-creds"] = clearCreds
	commands["flush-certs"] = func(*client, *Message) *Message { return reply(result{}) }
}

// sharedKey is an IKE pre-shared key and the identities it is for (none:
// any).
type sharedKey struct {
	secret []byte
	owners []ike.Identity
}

// privateKey is a loaded private key, kept as PEM for the cert method.
type privateKey struct {
	pem    []byte
	public crypto.PublicKey
}

// store holds what was loaded over VICI. mu guards everything; nothing
// calls out with it held.
type store struct {
	mu       sync.Mutex
	shared   map[string]*sharedKey
	sharedNo int // names unnamed shared keys
	certs    []*x509.Certificate
	keys     map[string]*privateKey // by key ID
	conns    map[string]*loadedConn
	order    []string // connection names in load order
}

func newStore() *store {
	return &store{shared: map[string]*sharedKey{}, keys: map[string]*privateKey{}, conns: map[string]*loadedConn{}}
}

// wipe forgets every secret.
func (st *store) wipe() {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, k := range st.shared {
		clear(k.secret)
	}
	for _, k := range st.keys {
		clear(k.pem)
	}
	st.shared, st.keys = map[string]*sharedKey{}, map[string]*privateKey{}
}

func (st *store) sharedIDs() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]string, 0, len(st.shared))
	for id := range st.shared {
		out = append(out, id)
	}
	return out
}

func (st *store) keyIDs() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]string, 0, len(st.keys))
	for id := range st.keys {
		out = append(out, id)
	}
	return out
}

func loadShared(c *client, req *Message) *Message {
	typ, _ := req.Get("type")
	if !strings.EqualFold(typ, "ike") {
		return reply(errorf("type: %q shared keys are not supported (iked uses IKE pre-shared keys only)", typ))
	}
	data, ok := req.Bytes("data")
	if !ok || len(data) == 0 {
		return reply(errorf("missing shared key data"))
	}
	owners, _ := req.List("owners")
	k := &sharedKey{secret: append([]byte(nil), data...)}
	clear(data)
	for _, o := range owners {
		if o == "%any" || o == "" {
			continue
		}
		id, err := ike.ParseIdentity(o)
		if err != nil {
			return reply(errorf("owners: %v", err))
		}
		k.owners = append(k.owners, id)
	}
	if _, err := psk.NewSecret(k.secret); err != nil {
		clear(k.secret)
		return reply(errorf("data: %v", err))
	}
	st := c.s.store
	st.mu.Lock()
	id, _ := req.Get("id")
	if id == "" {
		st.sharedNo++
		id = "shared-" + strconv.Itoa(st.sharedNo)
	}
	if old := st.shared[id]; old != nil {
		clear(old.secret)
	}
	st.shared[id] = k
	st.mu.Unlock()
	c.s.log.Info("vici loaded IKE shared key", "id", id, "owners", len(k.owners))
	return reply(result{})
}

func unloadShared(c *client, req *Message) *Message {
	id, _ := req.Get("id")
	if id == "" {
		return reply(errorf("unique identifier missing"))
	}
	st := c.s.store
	st.mu.Lock()
	k := st.shared[id]
	delete(st.shared, id)
	st.mu.Unlock()
	if k == nil {
		return reply(errorf("key with identifier '%s' not found", id))
	}
	clear(k.secret)
	return reply(result{})
}

// lookupPSK finds the shared key for a connection's identities as
// strongSwan ranks them: a key for both beats one for the peer, which
// beats one for us, which beats one for anyone.
func (st *store) lookupPSK(local, remote ike.Identity) ([]byte, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	best, bestScore := []byte(nil), -1
	for _, k := range st.shared {
		score := 0
		if len(k.owners) > 0 {
			var me, peer bool
			for _, o := range k.owners {
				me = me || sameIdentity(o, local)
				peer = peer || sameIdentity(o, remote)
			}
			switch {
			case me && peer:
				score = 3
			case peer:
				score = 2
			case me:
				score = 1
			default:
				continue
			}
		}
		if score > bestScore {
			best, bestScore = k.secret, score
		}
	}
	if best == nil {
		return nil, false
	}
	return append([]byte(nil), best...), true
}

func sameIdentity(a, b ike.Identity) bool {
	if a.IsZero() || b.IsZero() {
		return false
	}
	if a.Type == wire.IDDERASN1DN {
		return a.Matches(&wire.ID{IDType: b.Type, Data: b.Value})
	}
	return a.Type == b.Type && subtle.ConstantTimeCompare(a.Value, b.Value) == 1
}

// dynamicPSK authenticates with the shared key loaded over VICI that fits
// the connection's identities when a handshake starts, as charon looks its
// secrets up: a key loaded or replaced later is used from the next
// handshake on.
type dynamicPSK struct {
	st            *store
	local, remote ike.Identity
}

func (*dynamicPSK) Name() string { return "psk" }

func (*dynamicPSK) Accepts(m wire.AuthMethod) bool { return m == wire.AuthSharedKeyMIC }

func (d *dynamicPSK) NewSession(p *auth.Params) (auth.Session, error) {
	b, ok := d.st.lookupPSK(d.local, d.remote)
	if !ok {
		return nil, fmt.Errorf("no IKE shared key loaded for %s - %s", identity(d.local.String()), identity(d.remote.String()))
	}
	defer clear(b)
	s, err := psk.NewSecret(b)
	if err != nil {
		return nil, err
	}
	return psk.New(s).NewSession(p)
}

// Format keeps printing a connection from showing anything of its keys.
func (d *dynamicPSK) Format(f fmt.State, _ rune) {
	_, _ = f.Write([]byte("vici.dynamicPSK{[redacted]}"))
}

// parseCert reads a PEM or DER certificate.
func parseCert(data []byte) (*x509.Certificate, error) {
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q is not a CERTIFICATE", b.Type)
		}
		data = b.Bytes
	}
	return x509.ParseCertificate(data)
}

func loadCert(c *client, req *Message) *Message {
	typ, _ := req.Get("type")
	if typ != "" && !strings.EqualFold(typ, "X509") {
		return reply(errorf("type: %q certificates are not supported (X509 only)", typ))
	}
	flag, _ := req.Get("flag")
	switch strings.ToUpper(flag) {
	case "", "NONE", "CA":
	default:
		return reply(errorf("flag: %q is not supported (NONE or CA)", flag))
	}
	data, _ := req.Bytes("data")
	cert, err := parseCert(data)
	if err != nil {
		return reply(errorf("parsing X509 certificate failed: %v", err))
	}
	if strings.EqualFold(flag, "CA") && !(cert.IsCA && cert.BasicConstraintsValid) {
		return reply(errorf("certificate %s is not a CA certificate", dnString(cert)))
	}
	st := c.s.store
	st.mu.Lock()
	dup := false
	for _, x := range st.certs {
		dup = dup || x.Equal(cert)
	}
	if !dup {
		st.certs = append(st.certs, cert)
	}
	st.mu.Unlock()
	c.s.log.Info("vici loaded certificate", "subject", dnString(cert))
	c.s.rebuildConns()
	return reply(result{})
}

// parseKey reads a private key: PEM, or DER as swanctl sends it (PKCS#1,
// SEC1 or PKCS#8, as type says).
func parseKey(typ string, data []byte) (*privateKey, error) {
	if b, _ := pem.Decode(data); b != nil {
		return keyFromDER(b.Type, b.Bytes)
	}
	switch strings.ToLower(typ) {
	case "rsa":
		return keyFromDER("RSA PRIVATE KEY", data)
	case "ecdsa":
		if k, err := keyFromDER("EC PRIVATE KEY", data); err == nil {
			return k, nil
		}
	}
	return keyFromDER("PRIVATE KEY", data)
}

func keyFromDER(blockType string, der []byte) (*privateKey, error) {
	var key any
	var err error
	switch blockType {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(der)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(der)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(der)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", blockType)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported key type")
	}
	return &privateKey{pem: pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), public: signer.Public()}, nil
}

// keyID is the hex SHA-1 of the public key's SubjectPublicKeyInfo.
func keyID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha1.Sum(der) // #nosec G401 -- strongSwan names keys by the SHA-1 of their SubjectPublicKeyInfo (list-certs keyid); an identifier, not a security function
	return hex.EncodeToString(sum[:])
}

func loadKey(c *client, req *Message) *Message {
	typ, _ := req.Get("type")
	data, _ := req.Bytes("data")
	k, err := parseKey(typ, data)
	clear(data)
	if err != nil {
		return reply(errorf("loading private key failed: %v", err))
	}
	id := keyID(k.public)
	st := c.s.store
	st.mu.Lock()
	if old := st.keys[id]; old != nil {
		clear(old.pem)
	}
	st.keys[id] = k
	st.mu.Unlock()
	c.s.log.Info("vici loaded private key", "id", id)
	c.s.rebuildConns()
	return reply(result{}).Set("id", id)
}

func unloadKey(c *client, req *Message) *Message {
	id, _ := req.Get("id")
	st := c.s.store
	st.mu.Lock()
	k := st.keys[id]
	delete(st.keys, id)
	st.mu.Unlock()
	if k == nil {
		return reply(errorf("key with id %s not found", id))
	}
	clear(k.pem)
	return reply(result{})
}

func clearCreds(c *client, _ *Message) *Message {
	st := c.s.store
	st.mu.Lock()
	for _, k := range st.shared {
		clear(k.secret)
	}
	for _, k := range st.keys {
		clear(k.pem)
	}
	st.shared, st.keys, st.certs = map[string]*sharedKey{}, map[string]*privateKey{}, nil
	st.mu.Unlock()
	return reply(result{})
}

// keyFor returns the PEM of the loaded private key of pub.
func (st *store) keyFor(pub crypto.PublicKey) ([]byte, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	k := st.keys[keyID(pub)]
	if k == nil {
		return nil, false
	}
	return append([]byte(nil), k.pem...), true
}

// caCerts returns the CA certificates loaded with load-cert.
func (st *store) caCerts() []*x509.Certificate {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []*x509.Certificate
	for _, c := range st.certs {
		if c.IsCA && c.BasicConstraintsValid {
			out = append(out, c)
		}
	}
	return out
}

// certEntry is a certificate list-certs shows.
type certEntry struct {
	cert   *x509.Certificate
	hasKey bool
}

// certificates are the certificates the daemon knows: those loaded over
// VICI and the own certificates of the connections' cert methods.
func (s *Server) certificates() []certEntry {
	var out []certEntry
	seen := func(c *x509.Certificate) bool {
		for _, e := range out {
			if e.cert.Equal(c) {
				return true
			}
		}
		return false
	}
	for _, conn := range s.cfg.Engine.Connections() {
		if m, ok := conn.Auth.(interface{ Certificate() *x509.Certificate }); ok {
			if c := m.Certificate(); c != nil && !seen(c) {
				out = append(out, certEntry{cert: c, hasKey: true})
			}
		}
	}
	st := s.store
	st.mu.Lock()
	certs := append([]*x509.Certificate(nil), st.certs...)
	st.mu.Unlock()
	for _, c := range certs {
		if !seen(c) {
			_, has := st.keyFor(c.PublicKey)
			out = append(out, certEntry{cert: c, hasKey: has})
		}
	}
	return out
}
