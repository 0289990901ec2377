// Package auth is the seam between the IKE engine and the ways a peer
// proves who it is in IKE_AUTH (RFC 7296 §2.15): pre-shared keys, X.509
// signatures, Kerberos. The engine computes the signed octets and carries
// payloads; an auth method decides what goes into AUTH (and any companion
// payloads such as CERT, CERTREQ or a Kerberos token) and whether the peer's
// AUTH is good.
//
// A Method is configured once per connection; for every handshake the engine
// asks it for a Session, which may keep state between the two halves of the
// exchange (a Kerberos subkey made when proving is needed when verifying the
// response; a responder learns the subkey while verifying and uses it to
// prove).
package auth

import (
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// Params is what the engine knows about the handshake. An initiator opens
// its Session before IKE_SA_INIT (so that SAInitPayloads can go into the
// request); the engine fills in what IKE_SA_INIT settles (PRF, SPIr,
// PeerInit, addresses after a NAT-T move) before it calls Prove or Verify.
// A responder opens its sessions once IKE_SA_INIT is answered, with
// everything but LocalID set.
type Params struct {
	// Initiator is true when the local side is the IKE SA's initiator.
	Initiator bool
	// PRF is the negotiated pseudo-random function; nil before IKE_SA_INIT
	// completes.
	PRF *transform.PRF
	// SPIi and SPIr are the IKE SA's SPIs; SPIr is zero until known.
	SPIi, SPIr uint64
	// LocalAddr and PeerAddr are the IKE endpoints.
	LocalAddr, PeerAddr netip.AddrPort
	// LocalID is the identity this side sends; set before Prove.
	LocalID *wire.ID
	// PeerInit holds the peer's IKE_SA_INIT payloads once received: the
	// request for a responder, the response for an initiator (for CERTREQ,
	// SIGNATURE_HASH_ALGORITHMS, or a notify announcing a method).
	PeerInit []wire.Payload
}

// Retrier is implemented by sessions whose failure may be cured by trying
// again with fresh credentials, such as a Kerberos ticket the KDC has since
// replaced. When the responder answers IKE_AUTH with AUTHENTICATION_FAILED,
// the initiating engine asks RetryAfter with the notifies of that answer
// and, when it returns true, starts one new IKE SA.
type Retrier interface {
	RetryAfter(notifies []*wire.Notify) bool
}

// ProvenIdentity is implemented by methods whose credentials prove one
// identity (a certificate's subject or subjectAltName): a connection
// without a configured local identity sends that one.
type ProvenIdentity interface {
	ProvenIdentity() *wire.ID
}

// PrincipalIdentity is implemented by methods whose peer checks a principal
// rather than an address (Kerberos): the IKE identity that names this
// host's principal ("fqdn:HOST" for host/HOST), which connections made by
// a policy agent send instead of the IP address.
type PrincipalIdentity interface {
	PrincipalIdentity() string
}

// Method is a configured authentication method (one per connection and
// direction). Implementations must be safe for concurrent use.
type Method interface {
	// Name is the config and log name: "psk", "cert", "kerberos".
	Name() string
	// Accepts reports whether this method verifies an AUTH payload of method m.
	Accepts(m wire.AuthMethod) bool
	// NewSession starts the method's part in one handshake.
	NewSession(p *Params) (Session, error)
}

// Session is a Method's part in one IKE SA handshake. The engine calls, in
// order: SAInitPayloads (for the message this side sends in IKE_SA_INIT),
// then as initiator Prove then Verify, and as responder Verify then Prove.
// A session is used by one goroutine at a time.
//
// The responder calls Verify and Prove with the IKE SA's lock held (the
// initiator without): they must not call into the engine, must take only
// the method's own locks, and must not wait on the network. What needs the
// network (a Kerberos ticket from the KDC) belongs in Method.NewSession,
// which is called with no lock held.
type Session interface {
	// SAInitPayloads returns payloads to add to this side's IKE_SA_INIT
	// message, e.g. CERTREQ from a responder or a notify announcing support.
	SAInitPayloads() []wire.Payload
	// Prove returns the AUTH payload over signedOctets (this side's
	// InitiatorSignedOctets or ResponderSignedOctets, §2.15) and any
	// companion payloads (CERT, CERTREQ, tokens), AUTH last. peer is the
	// last message received from the peer (its IKE_SA_INIT response for an
	// initiator, its IKE_AUTH request for a responder).
	Prove(signedOctets []byte, peer []wire.Payload) ([]wire.Payload, error)
	// Verify checks the peer's AUTH over the peer's signed octets. peer
	// holds all payloads of the peer's IKE_AUTH message, including IDi/IDr,
	// CERT and AUTH. It returns a *Failure when authentication fails.
	Verify(signedOctets []byte, peer []wire.Payload) error
	// Close wipes the session's secrets.
	Close()
}

// Failure is a failed authentication: the engine answers it with
// AUTHENTICATION_FAILED (§2.21.2) and logs Reason. Notifies are extra
// payloads to send with it (e.g. a Kerberos error code).
type Failure struct {
	Reason   string
	Notifies []*wire.Notify
}

// Error implements error.
func (f *Failure) Error() string { return "authentication failed: " + f.Reason }

// Failf returns a *Failure with a formatted reason.
func Failf(format string, args ...any) *Failure {
	return &Failure{Reason: fmt.Sprintf(format, args...)}
}

// Factory builds a Method from its configuration. decode fills a struct
// of the method's own with the configuration section strictly, returning
// errors that carry the file and line; baseDir resolves relative paths.
type Factory func(decode func(into any) error, baseDir string) (Method, error)

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a method available to configuration under name. It panics
// when name is registered twice, as that is a programming error.
func Register(name string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("auth: method registered twice: " + name)
	}
	registry[name] = f
}

// Lookup returns the factory registered under name.
func Lookup(name string) (Factory, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Names lists the registered method names, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
