// Package control implements iked's control protocol: a unix stream socket
// on which a client (ikectl) sends one JSON Request line and receives one
// JSON Response line, after which the daemon closes the connection; or,
// for the streams "log" and "monitor" (stream.go), a first Response line
// followed by one Event line per log record or SA event until the client
// hangs up.
//
// The socket is created with mode 0600, so only the daemon's user (root)
// can use it. A request looks like
//
//	{"command":"initiate","connection":"site-a"}
//
// and its response like
//
//	{"sas":[{"id":"ike-1","connection":"site-a",...}]}
//
// or, on failure, {"error":"..."}.
package control

import (
	"context"
	"encoding/json"
	"net/netip"
	"time"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/policy/agent"
)

// Commands understood by the daemon, as Request.Command.
const (
	// CommandSAs lists the IKE SAs and their Child SAs.
	CommandSAs = "sas"
	// CommandInitiate establishes the connection named in
	// Request.Connection and answers with the resulting SAs.
	CommandInitiate = "initiate"
	// CommandTerminate deletes the IKE SAs selected by Request.Target, a
	// connection name or an SA ID ("ike-<n>"), or, with Request.Child,
	// only that Child SA of it.
	CommandTerminate = "terminate"
	// CommandStatus reports the daemon's status.
	CommandStatus = "status"
	// CommandRekey rekeys the IKE SA named by Request.Target (or every
	// established IKE SA of the connection it names), or, with
	// Request.Child, that Child SA of it, or with Request.Children all
	// its Child SAs.
	CommandRekey = "rekey"
	// CommandPolicy shows the assigned IPsec policy and its rules.
	CommandPolicy = "policy"
	// CommandPeers tells, for the peer address in Request.Target (with
	// Request.Protocol and Request.Port narrowing the traffic), or for
	// every peer known when Target is empty, whether traffic is secured,
	// in clear (and why) or blocked.
	CommandPeers = "peers"
	// CommandPolicySource tells where the assigned policy came from (the
	// directory or the cache) and when it was last read.
	CommandPolicySource = "policy-source"
	// CommandPolicyExport writes the assigned policy as MS-GPIPSEC LDIF,
	// under the base DN in Request.Target (default the directory's).
	CommandPolicyExport = "policy-export"
)

// DefaultSocket is where iked creates its control socket unless configured
// otherwise, and where ikectl looks for it.
const DefaultSocket = "/run/iked/iked.sock"

// MaxRequestSize is the largest request line, newline included, the server
// accepts.
const MaxRequestSize = 64 << 10

// Request is one client request.
type Request struct {
	// Command is one of the Command constants.
	Command string `json:"command"`
	// Connection names the connection for "initiate".
	Connection string `json:"connection,omitempty"`
	// New asks "initiate" for a new IKE SA even when the connection is up
	// already; without it an established connection is reported as it is.
	New bool `json:"new,omitempty"`
	// Target selects what "terminate" deletes: a connection name (all its
	// IKE SAs) or an IKE SA ID.
	Target string `json:"target,omitempty"`
	// Child is the inbound SPI (8 hex digits) of the Child SA "rekey"
	// rekeys or "terminate" deletes; empty means the IKE SA.
	Child string `json:"child,omitempty"`
	// Children asks "rekey" for every Child SA of Target (an IKE SA ID or
	// a connection name) instead of the IKE SAs.
	Children bool `json:"children,omitempty"`
	// Protocol ("tcp", "udp", "icmp", a number) and Port narrow the
	// traffic "peers" asks about; empty and 0 mean any.
	Protocol string `json:"protocol,omitempty"`
	Port     uint16 `json:"port,omitempty"`
	// Level is the lowest level "log" streams: debug, info (the
	// default), warn or error.
	Level string `json:"level,omitempty"`
	// Conn narrows "list-certs" to the certificates of one connection,
	// and "list-conns" to one connection.
	Conn string `json:"conn,omitempty"`
}

// Response is the daemon's answer to a Request. Error is set if and only if
// the request failed; otherwise the field for the command is set.
type Response struct {
	// Error describes why the request failed.
	Error string `json:"error,omitempty"`
	// SAs answers "sas" and "initiate".
	SAs []ike.SAInfo `json:"sas,omitempty"`
	// Status answers "status".
	Status *Status `json:"status,omitempty"`
	// Terminated answers "terminate": the number of IKE SAs deleted.
	Terminated int `json:"terminated,omitempty"`
	// Rekeyed answers "rekey": the ID of the IKE SA now carrying the
	// connection (a new one after an IKE SA rekey); for a connection name,
	// the IDs of its new IKE SAs, joined by ", ".
	Rekeyed string `json:"rekeyed,omitempty"`
	// Policy answers "policy".
	Policy *agent.PolicyInfo `json:"policy,omitempty"`
	// Peers answers "peers".
	Peers []agent.PeerStatus `json:"peers,omitempty"`
	// PolicySource answers "policy-source" (adsource.Status as JSON).
	PolicySource json.RawMessage `json:"policy_source,omitempty"`
	// Export answers "policy-export": the LDIF, and what it cannot carry.
	Export *PolicyExport `json:"export,omitempty"`
	// Reload answers "reload".
	Reload *ReloadResult `json:"reload,omitempty"`
	// Conns answers "list-conns", Certs "list-certs", Stats "stats".
	Conns []ConnectionInfo  `json:"conns,omitempty"`
	Certs []CertificateInfo `json:"certs,omitempty"`
	Stats *Stats            `json:"stats,omitempty"`
	// TerminatedChild answers "terminate" of one Child SA: its IKE SA's
	// ID; RekeyedChildren answers "rekey" with Children: the new Child
	// SAs' inbound SPIs.
	TerminatedChild string   `json:"terminated_child,omitempty"`
	RekeyedChildren []string `json:"rekeyed_children,omitempty"`
	// Stream is the first line of a stream ("log", "monitor"): the
	// command accepted; Event lines follow.
	Stream string `json:"stream,omitempty"`
}

// PolicyExport is the assigned policy as MS-GPIPSEC objects.
type PolicyExport struct {
	LDIF  string   `json:"ldif"`
	Notes []string `json:"notes,omitempty"`
}

// PolicySourceHandler is implemented by a Handler whose policy can come
// from a directory; the server answers "policy-source" and
// "policy-export" through it.
type PolicySourceHandler interface {
	PolicySource() (json.RawMessage, error)
	PolicyExport(baseDN string) (*PolicyExport, error)
}

// Status is the daemon's overall state, answered to "status".
type Status struct {
	// Version is the daemon's version string.
	Version string `json:"version"`
	// Commit is the VCS revision the daemon was built from ("-dirty" for a
	// modified tree), GoVersion the Go toolchain.
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version,omitempty"`
	// PID is the daemon's process ID.
	PID int `json:"pid"`
	// Started is when the daemon started.
	Started time.Time `json:"started"`
	// ConfigFile is the path of the configuration file in use.
	ConfigFile string `json:"config_file"`
	// Listen are the addresses (address:port) the daemon receives IKE on.
	Listen []string `json:"listen"`
	// Backend names the data plane the Child SAs are installed in.
	Backend string `json:"backend"`
	// Connections are the configured connections.
	Connections []ConnectionStatus `json:"connections"`
	// IKESAs counts all IKE SAs, ChildSAs all installed Child SAs.
	IKESAs   int `json:"ike_sas"`
	ChildSAs int `json:"child_sas"`
	// HalfOpen counts responder IKE SAs between IKE_SA_INIT and IKE_AUTH.
	HalfOpen int `json:"half_open"`
}

// ConnectionStatus describes one configured connection.
type ConnectionStatus struct {
	// Name is the connection's name.
	Name string `json:"name"`
	// Local and Remote are the configured IKE endpoints.
	Local  string `json:"local"`
	Remote string `json:"remote"`
	// LocalID and RemoteID are the configured identities ("type:value").
	LocalID  string `json:"local_id"`
	RemoteID string `json:"remote_id"`
	// Auth is the authentication method ("psk").
	Auth string `json:"auth"`
	// IKEProposals and ESPProposals are the configured proposals.
	IKEProposals string `json:"ike_proposals"`
	ESPProposals string `json:"esp_proposals"`
	// Mode is the Child SA mode ("tunnel" or "transport").
	Mode string `json:"mode"`
	// StartAction is what the daemon does with the connection at startup.
	StartAction string `json:"start_action"`
	// IKESAs counts the connection's current IKE SAs.
	IKESAs int `json:"ike_sas"`
}

// Handler executes control requests; the daemon's engine implements it.
// Its methods are called concurrently from the server's goroutines.
type Handler interface {
	// SAs returns a snapshot of all IKE SAs.
	SAs() []ike.SAInfo
	// Initiate brings the named connection up and returns its SAs: an
	// established connection keeps its IKE SA unless fresh asks for a new
	// one. It should return when ctx is cancelled.
	Initiate(ctx context.Context, connection string, fresh bool) ([]ike.SAInfo, error)
	// ExchangeTimeout is how long the longest request (an initiation to a
	// silent peer) may take: the engine's own retransmission budget, so
	// that the engine, not the control socket's deadline, ends it and says
	// what happened.
	ExchangeTimeout() time.Duration
	// Terminate deletes the IKE SAs matching target (a connection name or
	// an SA ID) and returns how many it deleted.
	Terminate(ctx context.Context, target string) (int, error)
	// Status returns the daemon's status.
	Status() Status
	// Rekey rekeys an IKE SA (childSPI zero) or one of its Child SAs,
	// identified by its inbound SPI, and returns the IKE SA's ID after it.
	Rekey(ctx context.Context, target string, childSPI uint32) (string, error)
	// Policy describes the assigned policy; an error when none is.
	Policy() (*agent.PolicyInfo, error)
	// Peers tells what happens to traffic with peer (protocol and port 0
	// for any), or with every known peer when peer is invalid.
	Peers(peer netip.Addr, protocol uint8, port uint16) ([]agent.PeerStatus, error)
}
