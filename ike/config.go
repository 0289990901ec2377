// Package ike is the IKEv2 engine (RFC 7296): the per-IKE-SA state machine,
// the initiator and responder handshakes, informational exchanges,
// retransmission and cookies. It knows nothing of YAML, netlink or TUN
// devices: the daemon hands it connections, binds and an SA database.
package ike

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// Mode is the IPsec mode a connection negotiates for its Child SAs; it is
// the data plane's notion of mode.
type Mode = sadb.Mode

// Modes.
const (
	ModeTunnel    = sadb.Tunnel
	ModeTransport = sadb.Transport
)

// Connection is a configured peer: how to reach it, who it is, how to
// authenticate and what to protect.
type Connection struct {
	// Name is the connection's unique name.
	Name string
	// Local is the local IKE address; the zero Addr means any.
	Local netip.Addr
	// Remote is the peer's IKE endpoint; a zero Addr means any peer
	// (responder only).
	Remote netip.AddrPort
	// LocalID is sent as IDi/IDr; zero means the local IP address.
	LocalID Identity
	// RemoteID is the identity the peer must present; zero means any.
	RemoteID Identity
	// Auth proves this side's identity and verifies the peer's.
	Auth auth.Method
	// IKEProposals and ESPProposals are in preference order.
	IKEProposals []transform.Proposal
	ESPProposals []transform.Proposal
	// LocalTS and RemoteTS are the traffic selectors to protect; empty means
	// the IKE addresses themselves (host to host).
	LocalTS, RemoteTS []wire.TrafficSelector
	// Mode is the Child SA mode.
	Mode Mode
	// Initiate starts the connection when the engine starts.
	Initiate bool
	// RekeyTime is how long a Child SA lives before it is rekeyed (less a
	// random tenth); zero means never.
	RekeyTime time.Duration
	// IKERekeyTime is the same for the IKE SA.
	IKERekeyTime time.Duration
	// RekeyBytes is the traffic after which the data plane reports a soft
	// expiry and the Child SA is rekeyed; LifeBytes the hard limit at which
	// the data plane drops the SA. Zero means unlimited.
	RekeyBytes, LifeBytes uint64
	// ReauthTime is how long an IKE SA lives before it is replaced by a
	// fresh authentication (make-before-break: a new IKE SA and Child SAs,
	// then the old one is deleted); zero means never. Only a connection
	// with a remote address reauthenticates.
	ReauthTime time.Duration
	// DPDDelay is the idle time after which a liveness check is sent;
	// zero turns dead peer detection off (exhausted retransmissions of any
	// request still end the SA).
	DPDDelay time.Duration
	// DPDAction is what follows a dead peer.
	DPDAction DPDAction
	// ForceEncap makes the peer believe this side is behind a NAT (a
	// random NAT_DETECTION_SOURCE_IP hash, as strongSwan's encap=yes), so
	// that ESP goes inside UDP on port 4500 even without a NAT.
	ForceEncap bool
	// RequirePQ accepts only IKE SAs with a post-quantum key exchange
	// (ML-KEM, in IKE_SA_INIT or an additional key exchange): as
	// responder a peer that offers none is answered NO_PROPOSAL_CHOSEN, as
	// initiator an answer without one ends the handshake. Optional
	// exchanges (keN_none) are then chosen only where another exchange is
	// post-quantum. It guards against the downgrade of
	// draft-ietf-ipsecme-ikev2-mlkem §4 (docs/postquantum.md).
	RequirePQ bool
	// InterfaceID binds the Child SAs and their policies to the XFRM
	// interface with this if_id (route-based IPsec); zero means none.
	InterfaceID uint32
	// Childless is the connection's use of childless IKE SAs (RFC 6023,
	// childless.go); the zero value is ChildlessAllow.
	Childless Childless
}

// offersAddKE reports whether some proposal has additional key exchanges:
// the initiator then announces IKE_INTERMEDIATE (RFC 9370 §2.2.1).
func offersAddKE(props []transform.Proposal) bool {
	for i := range props {
		if props[i].HasAddKE() {
			return true
		}
	}
	return false
}

// Config is the engine's configuration. Zero values take the defaults
// documented on each field, except CookieThreshold, where zero is a
// meaningful setting (a cookie on every request).
type Config struct {
	// Connections are the configured peers.
	Connections []*Connection
	// SADB receives negotiated Child SAs. Required.
	SADB *sadb.DB
	// CookieThreshold is the number of half-open IKE SAs at which the
	// responder starts to demand a COOKIE (RFC 7296 §2.6). Zero means
	// always demand one; negative means never. It is taken as given: the
	// daemon's configuration defaults to DefaultCookieThreshold.
	CookieThreshold int
	// HalfOpenTimeout bounds how long a responder keeps an IKE SA that has
	// not completed IKE_AUTH. Default 30s.
	HalfOpenTimeout time.Duration
	// HalfOpenPerPeer bounds the half-open responder IKE SAs of one peer
	// address; 0 means no limit. AuthFailureLimit AUTHENTICATION_FAILED
	// answers to one address within AuthFailureWindow block its
	// IKE_SA_INIT requests for AuthFailureWindow; 0 turns that off.
	// See authlimit.go.
	HalfOpenPerPeer   int
	AuthFailureLimit  int
	AuthFailureWindow time.Duration
	// RetransmitTimeout is the first retransmission timeout; each next one
	// is multiplied by RetransmitBase; after RetransmitTries retransmissions
	// the exchange fails. Defaults 2s, 1.8, 5.
	RetransmitTimeout time.Duration
	RetransmitBase    float64
	RetransmitTries   int
	// NATKeepalive is the interval of NAT keepalives sent by a host
	// behind a NAT; default 20s (RFC 3948 §4).
	NATKeepalive time.Duration
	// ForceEncap applies Connection.ForceEncap to every connection: for a
	// data plane that only speaks ESP-in-UDP (the userspace one, like
	// strongSwan's kernel-libipsec).
	ForceEncap bool
	// NoFragmentation turns IKE fragmentation (RFC 7383) off: it is not
	// announced, and large messages rely on IP fragmentation.
	NoFragmentation bool
	// FragmentSize is the largest datagram (UDP payload) sent when a
	// message is fragmented; default DefaultFragmentSize.
	FragmentSize int
	// MaxMessageSize bounds the IKE messages processed: a larger datagram,
	// or a message whose fragments reassemble to more, is dropped and
	// counted (DropOversize) before anything else is done with it. Default
	// DefaultMaxMessageSize, as charon's max_packet.
	MaxMessageSize int
	// Readers is the number of goroutines reading each bind; default GOMAXPROCS.
	Readers int
	// Logger receives one line per SA event; default slog.Default().
	Logger *slog.Logger
	// Rand is the source of nonces, SPIs, IVs and DH keys; default crypto/rand.
	Rand io.Reader
	// Now is the clock; default time.Now. Golden transcripts fix it.
	Now func() time.Time
	// Observer, when set, hears of acquires, Child SA policies and failed
	// handshakes: the policy layer's view of the engine.
	Observer Observer
	// KeyLog, when set, receives IKE and Child SA keys in the form
	// Wireshark's IKEv2 and ESP decryption tables take. Off by default:
	// keys are secrets.
	KeyLog io.Writer
}

// DefaultMaxMessageSize is the default bound of the IKE messages processed
// (Config.MaxMessageSize): ample for certificate chains, and what charon
// accepts by default.
const DefaultMaxMessageSize = 10000

// DefaultCookieThreshold is the half-open count at which cookies are
// demanded unless configured otherwise.
const DefaultCookieThreshold = 10

func (c *Config) applyDefaults() {
	if c.HalfOpenTimeout == 0 {
		c.HalfOpenTimeout = 30 * time.Second
	}
	if c.RetransmitTimeout == 0 {
		c.RetransmitTimeout = 2 * time.Second
	}
	if c.RetransmitBase == 0 {
		c.RetransmitBase = 1.8
	}
	if c.RetransmitTries == 0 {
		c.RetransmitTries = 5
	}
	if c.NATKeepalive == 0 {
		c.NATKeepalive = natKeepaliveInterval
	}
	if c.FragmentSize == 0 {
		c.FragmentSize = DefaultFragmentSize
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

func validateConnection(c *Connection) error {
	switch {
	case c.Name == "":
		return fmt.Errorf("connection without a name")
	case c.Auth == nil:
		return fmt.Errorf("connection %s: no auth method", c.Name)
	case len(c.IKEProposals) == 0:
		return fmt.Errorf("connection %s: no IKE proposals", c.Name)
	case len(c.ESPProposals) == 0:
		return fmt.Errorf("connection %s: no ESP proposals", c.Name)
	}
	return nil
}
