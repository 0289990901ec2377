// Package config reads iked's YAML configuration file.
//
// The format is strict: unknown keys, duplicate keys, values of the wrong
// type and invalid values are all refused, and every error names the file
// and the line of the offending YAML node ("iked.yaml:12: …"), together with
// what was expected. Values are parsed here (addresses, identities,
// proposals, traffic selectors, auth methods), so a Config that loads is one
// the daemon can run. docs/configuration.md documents every key.
//
// The package imports the "psk" auth method so that Load works on its own;
// other auth methods register themselves with package auth when imported.
package config

import (
	"fmt"
	"io/fs"
	"net/netip"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/transform"
)

// Config is the daemon's whole configuration, parsed and validated, with
// defaults applied.
type Config struct {
	// File is the file name the configuration was read from, as given to
	// Load or Parse; it prefixes error messages.
	File string
	// Listen are the UDP addresses IKE binds (key "listen").
	Listen []netip.AddrPort
	// ControlSocket is the path of the control socket (key "control_socket").
	ControlSocket string
	// ViciSocket is the path of the VICI socket for strongSwan's swanctl
	// and VICI clients (key "vici_socket"); empty means off, the default.
	ViciSocket string
	// ControlSocketGroup is the group whose members may use the control
	// socket's read-only commands, as written (key "control_socket_group");
	// ControlSocketGID is its GID, -1 when none is configured.
	ControlSocketGroup string
	ControlSocketGID   int
	// ControlSocketMode is the socket's mode (key "control_socket_mode"):
	// ControlSocketPrivate, or ControlSocketGroupMode (the default with a
	// group).
	ControlSocketMode fs.FileMode
	// MetricsListen is the TCP address of the metrics endpoint, host:port;
	// empty means no metrics endpoint (key "metrics_listen").
	MetricsListen string
	// MetricsPerSALimit bounds the metrics' cardinality (key
	// "metrics_per_sa_limit"): the per-IKE-SA and per-Child-SA series are
	// exported while there are at most this many IKE SAs, else only the
	// per-connection ones; 0 turns the per-SA series off.
	MetricsPerSALimit int
	// Log configures logging (key "log").
	Log Log
	// Backend names the data-plane backend (key "backend", default
	// BackendAuto).
	Backend string
	// Userspace configures the userspace data plane.
	Userspace Userspace
	// KeyLog is the path of the opt-in key log; empty means off (key
	// "key_log"). It is carried as written.
	KeyLog string
	// IKE holds the engine's tunables (key "ike").
	IKE IKE
	// Connections are the configured connections, in file order.
	Connections []Connection
	// Authentication are the named authentication methods that policy
	// rules refer to (key "authentication"); AuthenticationNames lists
	// them in file order.
	Authentication      map[string]auth.Method
	AuthenticationNames []string
	// Policy is the assigned IPsec policy (keys "policy", "policies",
	// "filter_lists"); nil when none is assigned.
	Policy *policy.Policy
	// PolicyOptions are the policy section's other settings.
	PolicyOptions PolicyOptions
	// PolicySource, when set, says that the assigned policy comes from
	// the directory (policy.source: ldap): Policy is then nil until the
	// daemon has read it.
	PolicySource *PolicySource
	// Warnings are weaknesses of a configuration that loads, such as a
	// short PSK (security.go) or a legacy IKEv1 algorithm allowed by
	// allow_legacy (version.go); the daemon logs them.
	Warnings []Warning

	// secretLine is the line of the first inline PSK; 0 when none.
	secretLine int
}

// Log configures the daemon's logging.
type Log struct {
	// Format is "text", "json" or "journal" (LogFormatJournal).
	Format string
	// Level is "debug", "info", "warn" or "error".
	Level string
}

// IKE holds the IKE engine's tunables.
type IKE struct {
	// CookieThreshold is the number of half-open IKE SAs above which a
	// responder demands COOKIEs (RFC 7296 §2.6); 0 means always.
	CookieThreshold int
	// HalfOpenTimeout is how long a responder keeps an IKE SA whose
	// IKE_AUTH has not completed.
	HalfOpenTimeout time.Duration
	// RetransmitTimeout is the first retransmission timeout of a request.
	RetransmitTimeout time.Duration
	// RetransmitBase is the multiplier applied to the timeout after each
	// retransmission (exponential backoff).
	RetransmitBase float64
	// RetransmitTries is the number of retransmissions before an exchange
	// is given up.
	RetransmitTries int
	// Fragmentation announces and uses IKE fragmentation (RFC 7383); on by
	// default.
	Fragmentation bool
	// FragmentSize is the largest datagram (UDP payload) sent when
	// fragmenting; default 1232.
	FragmentSize int
	// NATKeepalive is the interval of NAT keepalives when this side is
	// behind a NAT (default 20s).
	NATKeepalive time.Duration
	// MaxMessageSize bounds the IKE messages processed (a datagram, or a
	// message reassembled from fragments); larger ones are dropped and
	// counted. Default 10000 octets.
	MaxMessageSize int
	// HalfOpenPerPeer bounds the half-open IKE SAs of one peer address
	// (default 5, as strongSwan's block_threshold; 0 = no limit).
	HalfOpenPerPeer int
	// AuthFailureLimit failed authentications of one peer address within
	// AuthFailureWindow block its new IKE SAs for AuthFailureWindow
	// (defaults 5 and 1m; a limit of 0 turns this off).
	AuthFailureLimit  int
	AuthFailureWindow time.Duration
}

// Connection is one configured connection: an IKE SA with a peer and the
// Child SA negotiated with it.
type Connection struct {
	// Name is the connection's name, its key under "connections".
	Name string
	// Line is the line of the name in the configuration file.
	Line int
	// Local is the local IKE address; the zero Addr means any.
	Local netip.Addr
	// Remote is the peer's IKE endpoint; a zero (invalid) Remote.Addr()
	// means any peer ("%any", responder only).
	Remote netip.AddrPort
	// LocalID is the identity sent to the peer. When "local_id" is not
	// configured it is the IP identity of Local, or the zero Identity when
	// Local is any (the engine then uses the IKE SA's local address).
	LocalID ike.Identity
	// RemoteID is the identity the peer must present; the zero Identity
	// accepts any.
	RemoteID ike.Identity
	// Auth is the authentication method, built by the factory registered
	// with package auth under AuthName.
	Auth auth.Method
	// AuthName is the auth method's name, e.g. "psk".
	AuthName string
	// IKEProposals are the IKE SA proposals, in preference order.
	IKEProposals []transform.Proposal
	// ESPProposals are the Child SA (ESP) proposals, in preference order.
	ESPProposals []transform.Proposal
	// IKEProposalStrings are IKEProposals as written (or the defaults).
	IKEProposalStrings []string
	// ESPProposalStrings are ESPProposals as written (or the defaults).
	ESPProposalStrings []string
	// LocalTS are the local traffic selectors; empty means the default,
	// a host selector for the IKE SA's local address, filled by the engine.
	LocalTS []wire.TrafficSelector
	// RemoteTS are the remote traffic selectors; empty means the default,
	// a host selector for the peer's address, filled by the engine.
	RemoteTS []wire.TrafficSelector
	// Mode is ModeTunnel or ModeTransport.
	Mode string
	// StartAction is StartNone or StartInitiate.
	StartAction string
	// RekeyTime and IKERekeyTime are the Child SA and IKE SA lifetimes
	// before a rekey (keys "rekey_time", "ike_rekey_time"; 0 = never).
	RekeyTime, IKERekeyTime time.Duration
	// ReauthTime is the interval of reauthentication (key "reauth_time",
	// default 0 = never).
	ReauthTime time.Duration
	// RekeyBytes and LifeBytes are the Child SA's soft (rekey) and hard
	// byte limits (keys "rekey_bytes", "life_bytes"; 0 = unlimited).
	RekeyBytes, LifeBytes uint64
	// DPDDelay is the idle time before a liveness check (key "dpd_delay";
	// 0 = off); DPDAction is "clear", "restart" or "hold" (key
	// "dpd_action"; default restart for start_action initiate, else clear).
	DPDDelay  time.Duration
	DPDAction string
	// RequirePQ (key "require_pq") accepts only IKE SAs with a
	// post-quantum key exchange (ML-KEM): see ike.Connection.RequirePQ and
	// docs/postquantum.md.
	RequirePQ bool
	// ForceEncap pretends this side is behind a NAT so that ESP travels in
	// UDP on port 4500 (key "force_encap", default false).
	ForceEncap bool
	// RemoteHost is the peer's DNS name when "remote" names one; the
	// daemon resolves it at each initiation, with Remote's port. Remote's
	// address is then invalid: as a responder the connection accepts the
	// peer at any address, like %any, its remote_id and authentication
	// deciding.
	RemoteHost string
	// Updown is the connection's updown script (keys "updown",
	// "updown_timeout"); Script empty means none.
	Updown Updown
	// Fingerprint hashes the connection's settings that its SAs were
	// negotiated with (all but start_action and the updown keys): a reload
	// compares them to tell a changed connection from an unchanged one.
	Fingerprint [32]byte
	// Interface is the interface ID (if_id) of the XFRM interface the
	// Child SAs are bound to, for route-based IPsec (key "interface"; 0,
	// the default, means policy-based).
	Interface uint32
	// Version is the key exchange the connection speaks (key "version",
	// as strongSwan's swanctl names it; Windows calls it the key module):
	// VersionIKEv2 (default), VersionIKEv1, or VersionAuto (answer
	// whichever the peer speaks; initiate IKEv2 and fall back to IKEv1).
	Version string
	// IKEv1Proposals and IKEv1ESPProposals are the Main Mode and Quick
	// Mode proposals of an ikev1 or auto connection: ike_proposals and
	// esp_proposals read with IKEv1's algorithm set, or its defaults.
	IKEv1Proposals, IKEv1ESPProposals             []transform.Proposal
	IKEv1ProposalStrings, IKEv1ESPProposalStrings []string
	// AllowLegacy permits the legacy IKEv1 algorithms 3DES, SHA-1 and
	// MODP-1024 (key "allow_legacy", default false): without it a
	// proposal naming one is refused; with it, each use is warned about.
	AllowLegacy bool
	// Childless is the use of childless IKE SAs (RFC 6023; key
	// "childless", strongSwan's option): ChildlessAllow (default),
	// ChildlessNever, ChildlessPrefer or ChildlessForce.
	Childless string
}

// Values of Connection.Childless.
const (
	// ChildlessAllow accepts a childless IKE_AUTH as responder (and
	// announces it); as initiator the Child SA goes into IKE_AUTH.
	ChildlessAllow = "allow"
	// ChildlessNever refuses a childless IKE_AUTH and does not announce
	// support.
	ChildlessNever = "never"
	// ChildlessPrefer initiates the IKE SA without a Child SA when the
	// responder announced support; the Child SA follows on demand.
	ChildlessPrefer = "prefer"
	// ChildlessForce always initiates the IKE SA without a Child SA and,
	// as responder, refuses an IKE_AUTH that carries one.
	ChildlessForce = "force"
)

// Values of Connection.Version.
const (
	VersionIKEv2 = "ikev2"
	VersionIKEv1 = "ikev1"
	VersionAuto  = "auto"
)

// SpeaksIKEv2 and SpeaksIKEv1 report which engines serve the connection.
func (c *Connection) SpeaksIKEv2() bool { return c.Version != VersionIKEv1 }

// SpeaksIKEv1 reports whether the IKEv1 engine serves the connection.
func (c *Connection) SpeaksIKEv1() bool { return c.Version == VersionIKEv1 || c.Version == VersionAuto }

// RemoteIsAny reports whether the connection accepts any peer address
// ("remote: %any"); a remote given as a DNS name is not %any.
func (c *Connection) RemoteIsAny() bool { return !c.Remote.Addr().IsValid() && c.RemoteHost == "" }

// Connection returns the connection named name, or nil.
func (c *Config) Connection(name string) *Connection {
	for i := range c.Connections {
		if c.Connections[i].Name == name {
			return &c.Connections[i]
		}
	}
	return nil
}

// Values of Connection.Mode.
const (
	// ModeTunnel is ESP tunnel mode, the default.
	ModeTunnel = "tunnel"
	// ModeTransport is ESP transport mode (RFC 7296 §1.3.1, USE_TRANSPORT_MODE).
	ModeTransport = "transport"
)

// Values of Connection.StartAction.
const (
	// StartNone waits for the peer (or the control socket) to start the
	// connection; the default.
	StartNone = "none"
	// StartInitiate initiates the connection when the daemon starts.
	StartInitiate = "initiate"
)

// Data-plane backends (key "backend").
const (
	// BackendAuto picks xfrm when the kernel can hold ESP SAs, else
	// userspace, and logs why.
	BackendAuto = "auto"
	// BackendMemory keeps SAs in memory and moves no packets (tests,
	// unprivileged runs).
	BackendMemory = "memory"
	// BackendUserspace is iked's own ESP over a TUN device.
	BackendUserspace = "userspace"
	// BackendXFRM is the Linux kernel through XFRM netlink.
	BackendXFRM = "xfrm"
)

// Userspace configures the userspace data plane (key "userspace").
type Userspace struct {
	// TUN is the TUN device name (default iked0).
	TUN string
	// MTU of the TUN device (default 1400).
	MTU int
	// Addresses are put on the TUN device: this host's inner addresses.
	Addresses []netip.Prefix
	// ReplayWindow is the anti-replay window in packets (default 1024).
	ReplayWindow uint32
	// RawIPv4 allows ESP without UDP encapsulation, and AH, over raw IPv4
	// sockets.
	RawIPv4 bool
	// NoOffload ("offload: false") turns off the TUN and UDP offloads
	// (segmentation, coalescing, UDP GSO and GRO), which are on where the
	// kernel has them; packets on the wire are the same either way.
	NoOffload bool
}

// Defaults applied by Parse.
const (
	// DefaultControlSocket is the default of "control_socket".
	DefaultControlSocket = "/run/iked/iked.sock"
	// DefaultLogFormat is the default of "log.format".
	DefaultLogFormat = "text"
	// DefaultLogLevel is the default of "log.level".
	DefaultLogLevel = "info"
	// DefaultCookieThreshold is the default of "ike.cookie_threshold".
	DefaultCookieThreshold = 10
	// DefaultHalfOpenTimeout is the default of "ike.half_open_timeout".
	DefaultHalfOpenTimeout = 30 * time.Second
	// DefaultRetransmitTimeout is the default of "ike.retransmit_timeout".
	DefaultRetransmitTimeout = 2 * time.Second
	// DefaultRetransmitBase is the default of "ike.retransmit_base".
	DefaultRetransmitBase = 1.8
	// DefaultRetransmitTries is the default of "ike.retransmit_tries".
	DefaultRetransmitTries = 5
	// DefaultNATKeepalive is the default of "ike.nat_keepalive" (RFC 3948 §4).
	DefaultNATKeepalive = 20 * time.Second
	// DefaultHalfOpenPerPeer is the default of "ike.half_open_per_peer".
	DefaultHalfOpenPerPeer = 5
	// DefaultAuthFailureLimit and DefaultAuthFailureWindow are the
	// defaults of "ike.auth_failure_limit" and "ike.auth_failure_window".
	DefaultAuthFailureLimit  = 5
	DefaultAuthFailureWindow = time.Minute
	// DefaultRekeyTime is the default Child SA lifetime before a rekey:
	// an hour, as strongSwan and Windows' quick mode.
	DefaultRekeyTime = time.Hour
	// DefaultIKERekeyTime is the default IKE SA lifetime before a rekey.
	DefaultIKERekeyTime = 4 * time.Hour
	// DefaultDPDDelay is the default idle time before a liveness check.
	DefaultDPDDelay = 30 * time.Second
	// DefaultFragmentSize is the default of "ike.fragment_size": the IPv6
	// minimum MTU less the IPv6 and UDP headers.
	DefaultFragmentSize = 1232
	// DefaultMaxMessageSize is the default of "ike.max_message_size".
	DefaultMaxMessageSize = 10000
	// DefaultMetricsPerSALimit is the default of "metrics_per_sa_limit".
	DefaultMetricsPerSALimit = 1000
	// DefaultIKEPort is the port of a remote address written without one.
	DefaultIKEPort = 500
)

// DefaultListen returns the default of "listen": IKE's ports 500 and 4500
// on all IPv4 and IPv6 addresses.
func DefaultListen() []netip.AddrPort {
	return []netip.AddrPort{
		netip.MustParseAddrPort("0.0.0.0:500"),
		netip.MustParseAddrPort("0.0.0.0:4500"),
		netip.MustParseAddrPort("[::]:500"),
		netip.MustParseAddrPort("[::]:4500"),
	}
}

// DefaultIKEProposals returns the default of a connection's
// "ike_proposals".
func DefaultIKEProposals() []string {
	return []string{"aes256gcm16-prfsha256-x25519", "aes256-sha256-modp2048"}
}

// DefaultESPProposals returns the default of a connection's
// "esp_proposals".
func DefaultESPProposals() []string {
	return []string{"aes256gcm16", "aes256-sha256"}
}

// DefaultIKEv1Proposals returns the default Main Mode proposals of an
// ikev1 or auto connection: no legacy algorithm.
func DefaultIKEv1Proposals() []string {
	return []string{"aes256-sha256-modp2048", "aes128-sha256-modp2048", "aes256-sha256-ecp256"}
}

// DefaultIKEv1ESPProposals returns the default Quick Mode proposals.
func DefaultIKEv1ESPProposals() []string {
	return []string{"aes256-sha256", "aes128-sha256"}
}

// Error is a configuration error at a line of a file. Parse and Load
// return one *Error, or several joined with errors.Join (use errors.As to
// get the first).
type Error struct {
	// File is the file name as given to Load or Parse.
	File string
	// Line is the 1-based line of the offending YAML node; 0 when unknown.
	Line int
	// Msg says what is wrong and what was expected.
	Msg string
}

// Error formats the error as "FILE:LINE: message".
func (e *Error) Error() string {
	if e.Line <= 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}
