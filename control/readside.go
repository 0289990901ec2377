package control

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// More of swanctl's read side (--list-conns, --list-certs, --stats) and
// the finer controls (a Child SA terminated alone, the Child SAs of a
// connection rekeyed), answered through optional Handler interfaces so
// that a Handler without them answers "not supported".
const (
	// CommandListConns lists the configured connections with their state
	// (Request.Conn narrows to one).
	CommandListConns = "list-conns"
	// CommandListCerts lists the loaded certificates, their expiry and
	// the connections that use them (Request.Conn narrows to one
	// connection's).
	CommandListCerts = "list-certs"
	// CommandStats reports the daemon's counters, uptime and workers.
	CommandStats = "stats"
)

// ReadSide is implemented by a Handler that answers list-conns,
// list-certs and stats.
type ReadSide interface {
	ListConns() []ConnectionInfo
	ListCerts() []CertificateInfo
	Stats() Stats
}

// ChildTerminator is implemented by a Handler that deletes one Child SA:
// "terminate" with Request.Child.
type ChildTerminator interface {
	// TerminateChild deletes, with the peer, the Child SA whose inbound
	// SPI is spi, of the IKE SA with ID target or of connection target's
	// IKE SAs, and returns its IKE SA's ID.
	TerminateChild(ctx context.Context, target string, spi uint32) (string, error)
}

// ChildrenRekeyer is implemented by a Handler that rekeys every Child SA
// of an IKE SA or connection: "rekey" with Request.Children.
type ChildrenRekeyer interface {
	// RekeyChildren rekeys them and returns the inbound SPIs of the new
	// Child SAs.
	RekeyChildren(ctx context.Context, target string) ([]string, error)
}

// ConnectionInfo is one configured connection and its state, answered to
// "list-conns".
type ConnectionInfo struct {
	ConnectionStatus
	// State is "up" (an established IKE SA), "connecting" (IKE SAs, none
	// established yet) or "down".
	State string `json:"state"`
	// ChildSAs counts the connection's installed Child SAs.
	ChildSAs int `json:"child_sas"`
	// LocalTS and RemoteTS are the configured traffic selectors ("dynamic":
	// the IKE addresses).
	LocalTS  []string `json:"local_ts"`
	RemoteTS []string `json:"remote_ts"`
	// RekeyTime, IKERekeyTime, ReauthTime and DPDDelay are in seconds, 0
	// when off; DPDAction is clear, restart or hold.
	RekeyTime    int64  `json:"rekey_time"`
	IKERekeyTime int64  `json:"ike_rekey_time"`
	ReauthTime   int64  `json:"reauth_time"`
	DPDDelay     int64  `json:"dpd_delay"`
	DPDAction    string `json:"dpd_action"`
	// Source is where the connection comes from: "file", "policy" (the
	// assigned IPsec policy's) or "vici" (loaded with swanctl).
	Source string `json:"source"`
}

// CertificateInfo is one loaded certificate, answered to "list-certs".
type CertificateInfo struct {
	// Kind is "end_entity" (this side's own, with its private key),
	// "intermediate" or "ca".
	Kind    string `json:"kind"`
	Subject string `json:"subject"`
	Issuer  string `json:"issuer"`
	// Serial is the serial number as colon-separated hex octets.
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// AltNames are the subjectAltNames: DNS names, e-mail addresses, IP
	// addresses.
	AltNames []string `json:"alt_names,omitempty"`
	// Key is the public key's algorithm and size, e.g. "ECDSA P-256".
	Key string `json:"key"`
	// Connections name the connections whose authentication uses it.
	Connections []string `json:"connections"`
}

// Stats are the daemon's counters, answered to "stats" (the numbers
// /metrics serves, for a look without Prometheus).
type Stats struct {
	// Started is when the daemon started.
	Started time.Time `json:"started"`
	// Goroutines stand for charon's worker threads; HeapBytes is the Go
	// heap in use.
	Goroutines int    `json:"goroutines"`
	HeapBytes  uint64 `json:"heap_bytes"`
	// IKESAs counts the IKE SAs by state; HalfOpen the responder's
	// half-open ones; ChildSAs the installed Child SAs.
	IKESAs   map[string]int `json:"ike_sas"`
	HalfOpen int            `json:"half_open"`
	ChildSAs int            `json:"child_sas"`
	// HandshakesCompleted by role, HandshakesFailed by reason.
	HandshakesCompleted map[string]uint64 `json:"handshakes_completed"`
	HandshakesFailed    map[string]uint64 `json:"handshakes_failed"`
	// Rekeys by type (child, ike, reauth).
	Rekeys map[string]uint64 `json:"rekeys"`
	// PacketsReceived, PacketsSent and PacketsDropped (by reason) count
	// IKE datagrams.
	PacketsReceived uint64            `json:"packets_received"`
	PacketsSent     uint64            `json:"packets_sent"`
	PacketsDropped  map[string]uint64 `json:"packets_dropped"`
	// Retransmissions this side sent; RetransmitsAnswered, the peers'.
	Retransmissions     uint64 `json:"retransmissions"`
	RetransmitsAnswered uint64 `json:"retransmits_answered"`
	// NotifiesSent counts error notifies sent, by type.
	NotifiesSent map[string]uint64 `json:"notifies_sent"`
}

// readSide answers list-conns, list-certs and stats.
func (s *Server) readSide(req Request) Response {
	rs, ok := s.h.(ReadSide)
	if !ok {
		return Response{Error: "this daemon cannot answer " + req.Command}
	}
	switch req.Command {
	case CommandListConns:
		conns := rs.ListConns()
		if req.Conn != "" {
			conns = slices.DeleteFunc(conns, func(c ConnectionInfo) bool { return c.Name != req.Conn })
			if len(conns) == 0 {
				return Response{Error: fmt.Sprintf("no connection named %q", req.Conn)}
			}
		}
		return Response{Conns: conns}
	case CommandListCerts:
		certs := rs.ListCerts()
		if req.Conn != "" {
			certs = slices.DeleteFunc(certs, func(c CertificateInfo) bool { return !slices.Contains(c.Connections, req.Conn) })
		}
		return Response{Certs: certs}
	}
	st := rs.Stats()
	return Response{Stats: &st}
}

// parseSPI reads a Child SA's inbound SPI, 8 hex digits.
func parseSPI(cmd, s string) (uint32, error) {
	spi, err := strconv.ParseUint(s, 16, 32)
	if err != nil || spi == 0 {
		return 0, fmt.Errorf("%s: %q is not a Child SA SPI (8 hex digits)", cmd, s)
	}
	return uint32(spi), nil
}

// terminateChild answers "terminate" of one Child SA.
func (s *Server) terminateChild(ctx context.Context, req Request) Response {
	ct, ok := s.h.(ChildTerminator)
	if !ok {
		return Response{Error: "this daemon cannot terminate a Child SA alone"}
	}
	spi, err := parseSPI("terminate", req.Child)
	if err != nil {
		return Response{Error: err.Error()}
	}
	id, err := ct.TerminateChild(ctx, req.Target, spi)
	if err != nil {
		return Response{Error: err.Error()}
	}
	return Response{TerminatedChild: id}
}

// rekeyChildren answers "rekey" with Children.
func (s *Server) rekeyChildren(ctx context.Context, req Request) Response {
	cr, ok := s.h.(ChildrenRekeyer)
	if !ok {
		return Response{Error: "this daemon cannot rekey Child SAs by IKE SA or connection"}
	}
	if req.Child != "" {
		return Response{Error: "rekey: give a Child SA's SPI or ask for all Child SAs, not both"}
	}
	spis, err := cr.RekeyChildren(ctx, req.Target)
	if err != nil {
		return Response{Error: err.Error(), RekeyedChildren: spis}
	}
	return Response{RekeyedChildren: spis}
}
