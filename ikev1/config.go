package ikev1

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	"github.com/iked/iked/ipsec"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// Connection is a configured IKEv1 peer: how to reach it, who it is, how
// to authenticate and what to protect.
type Connection struct {
	// Name is the connection's unique name.
	Name string
	// Local is the local IKE address; the zero Addr means any.
	Local netip.Addr
	// Remote is the peer's IKE endpoint; a zero Addr means any peer
	// (responder only).
	Remote netip.AddrPort
	// LocalID is sent in Main Mode's ID payload; zero means the local IP
	// address (or the certificate's subject with signatures).
	LocalID Identity
	// RemoteID is the identity the peer must present; zero means any.
	RemoteID Identity
	// Auth proves this side's identity and verifies the peer's: a
	// PresharedKeyer, or a HashSigner with a ChainVerifier (auth/psk and
	// auth/cert implement them), or any value a registered MainModeAuth
	// accepts.
	Auth any
	// IKEProposals are the Main Mode proposals and ESPProposals the Quick
	// Mode ones, in preference order; a DH group in an ESP proposal asks
	// for PFS.
	IKEProposals []transform.Proposal
	ESPProposals []transform.Proposal
	// AllowLegacy permits the legacy algorithms (3DES, SHA-1, MODP-1024)
	// in the proposals; without it a connection naming one is refused.
	AllowLegacy bool
	// LocalTS and RemoteTS are the traffic selectors to protect (IDci and
	// IDcr); empty means the IKE addresses themselves (host to host).
	LocalTS, RemoteTS []ipsec.TrafficSelector
	// Mode is the IPsec SAs' mode.
	Mode sadb.Mode
	// Initiate starts the connection when the engine starts.
	Initiate bool
	// IKELifetime is how long an ISAKMP SA lives before it is replaced by
	// a new Main Mode (less a random tenth); its hard lifetime, the one
	// proposed to the peer, is a tenth longer. Default DefaultIKELifetime.
	IKELifetime time.Duration
	// Lifetime is the same for IPsec SAs (Quick Mode). Default
	// DefaultLifetime.
	Lifetime time.Duration
	// RekeyBytes and LifeBytes are the IPsec SAs' soft and hard byte
	// limits; zero means unlimited.
	RekeyBytes, LifeBytes uint64
	// DPDDelay is the idle time after which an R-U-THERE is sent (RFC
	// 3706); zero turns dead peer detection off.
	DPDDelay time.Duration
	// DPDAction is what follows a dead peer.
	DPDAction DPDAction
	// ForceEncap makes the peer believe this side is behind a NAT (a
	// random NAT-D hash), so that ESP goes inside UDP on port 4500.
	ForceEncap bool
	// QuickModeLimit is how many Quick Modes this side starts on one
	// ISAKMP SA before the next needs a new Main Mode (Windows' "generate
	// a new key after every N sessions"; 1 is master key PFS); zero for no
	// limit.
	QuickModeLimit int
}

// Defaults of the lifetimes: strongSwan's and Windows' (main mode 480
// minutes is Windows'; strongSwan rekeys ISAKMP SAs after 4 hours).
const (
	DefaultIKELifetime = 4 * time.Hour
	DefaultLifetime    = time.Hour
)

// DPDAction is what the engine does when a peer stops answering.
type DPDAction uint8

// DPD actions.
const (
	// DPDClear removes the SAs.
	DPDClear DPDAction = iota
	// DPDRestart removes them and initiates the connection again.
	DPDRestart
	// DPDHold removes them and initiates again once traffic asks for it.
	DPDHold
)

// String returns "clear", "restart" or "hold".
func (a DPDAction) String() string {
	switch a {
	case DPDRestart:
		return "restart"
	case DPDHold:
		return "hold"
	}
	return "clear"
}

// Config is the engine's configuration. Zero values take the defaults
// documented on each field.
type Config struct {
	// Connections are the configured peers.
	Connections []*Connection
	// SADB receives negotiated IPsec SAs. Required.
	SADB *sadb.DB
	// HalfOpenTimeout bounds how long a Main Mode may take. Default 30s.
	HalfOpenTimeout time.Duration
	// RetransmitTimeout is the first retransmission timeout; each next one
	// is multiplied by RetransmitBase; after RetransmitTries the exchange
	// fails. Defaults 2s, 1.8, 5.
	RetransmitTimeout time.Duration
	RetransmitBase    float64
	RetransmitTries   int
	// NATKeepalive is the interval of NAT keepalives sent by a host
	// behind a NAT; default 20s (RFC 3948 §4).
	NATKeepalive time.Duration
	// ForceEncap applies Connection.ForceEncap to every connection: for a
	// data plane that only speaks ESP-in-UDP.
	ForceEncap bool
	// NoFragmentation turns IKE fragmentation off: it is not announced,
	// and large messages rely on IP fragmentation.
	NoFragmentation bool
	// FragmentSize is the largest datagram (UDP payload) sent when a
	// message is fragmented; default 1232.
	FragmentSize int
	// Readers is the number of goroutines reading each bind and handling
	// what they read; default 2. They read in turn, and one ISAKMP SA's
	// messages are handled by one of them at a time, in arrival order.
	Readers int
	// ReqIDBase is where the engine's ReqIDs (which link IPsec SAs to
	// their data-plane policies) start; default 1<<30, far from the
	// IKEv2 engine's, which counts from 1 in the same data plane.
	ReqIDBase uint32
	// Logger receives one line per SA event; default slog.Default().
	Logger *slog.Logger
	// Rand is the source of cookies, nonces, IVs and DH keys; default
	// crypto/rand.
	Rand io.Reader
	// Now is the clock; default time.Now.
	Now func() time.Time
	// KeyLog, when set, receives ISAKMP and IPsec SA keys in the form
	// Wireshark's IKEv1 and ESP decryption tables take. Off by default:
	// keys are secrets.
	KeyLog io.Writer
	// Auths are extra Main Mode authentication methods, keyed by their
	// attribute value (e.g. GSS-API's 65001), beside the built-in
	// pre-shared keys and signatures.
	Auths []MainModeAuth
	// Observer, when set, hears of IPsec SAs' data-plane policies and of
	// failed Main Modes (a policy layer: see Observer).
	Observer Observer
}

// DefaultFragmentSize is the default largest datagram of a fragmented
// message: the IPv6 minimum MTU less the IPv6 and UDP headers.
const DefaultFragmentSize = 1232

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
		c.NATKeepalive = 20 * time.Second
	}
	if c.FragmentSize == 0 {
		c.FragmentSize = DefaultFragmentSize
	}
	if c.Readers <= 0 {
		c.Readers = 2
	}
	if c.ReqIDBase == 0 {
		c.ReqIDBase = 1 << 30
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ValidateConnection checks what the engine needs of a connection: a name,
// credentials, proposals it can speak, and no legacy algorithm unless
// allowed.
func ValidateConnection(c *Connection) error {
	switch {
	case c.Name == "":
		return errors.New("connection without a name")
	case c.Auth == nil:
		return fmt.Errorf("connection %s: no auth method", c.Name)
	case len(c.IKEProposals) == 0:
		return fmt.Errorf("connection %s: no IKE proposals", c.Name)
	case len(c.ESPProposals) == 0:
		return fmt.Errorf("connection %s: no ESP proposals", c.Name)
	}
	for _, p := range c.IKEProposals {
		if _, err := phase1Transforms(p, 0, 0); err != nil {
			return fmt.Errorf("connection %s: IKE proposal %s: %w", c.Name, p, err)
		}
	}
	for _, p := range c.ESPProposals {
		if _, err := phase2Transforms(p, ModeAttrs{}, 0); err != nil {
			return fmt.Errorf("connection %s: ESP proposal %s: %w", c.Name, p, err)
		}
	}
	if !c.AllowLegacy {
		for _, ps := range [][]transform.Proposal{c.IKEProposals, c.ESPProposals} {
			for _, p := range ps {
				if l := p.LegacyAlgorithms(); len(l) > 0 {
					return fmt.Errorf("connection %s: proposal %s uses the legacy %v: allow them explicitly (allow_legacy)", c.Name, p, l)
				}
			}
		}
	}
	return nil
}

// LegacyAlgorithms lists the legacy algorithms the connection's proposals
// name, for a warning.
func (c *Connection) LegacyAlgorithms() []string {
	var out []string
	seen := map[string]bool{}
	for _, ps := range [][]transform.Proposal{c.IKEProposals, c.ESPProposals} {
		for _, p := range ps {
			for _, a := range p.LegacyAlgorithms() {
				if !seen[a] {
					seen[a] = true
					out = append(out, a)
				}
			}
		}
	}
	return out
}

func (c *Connection) ikeLifetime() time.Duration {
	if c.IKELifetime > 0 {
		return c.IKELifetime
	}
	return DefaultIKELifetime
}

func (c *Connection) lifetime() time.Duration {
	if c.Lifetime > 0 {
		return c.Lifetime
	}
	return DefaultLifetime
}
