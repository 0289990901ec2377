package userspace

import (
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/iked/iked/sadb"
)

// Config configures a Backend. Zero fields take the defaults.
type Config struct {
	// TUN is the name of the TUN device to create (default "iked0").
	TUN string
	// MTU of the TUN device (default 1400: a 1500-octet path less the
	// worst-case ESP-in-UDP overhead over IPv4).
	MTU int
	// Listen is the UDP address of ESP-in-UDP and of IKE on the NAT-T port
	// (default 0.0.0.0:4500; [::]:4500 is a dual-stack socket).
	Listen netip.AddrPort
	// Addresses are assigned to the TUN device (inner addresses, virtual IPs).
	Addresses []netip.Prefix
	// ReplayWindow is the window of SAs that ask for none (default 1024).
	ReplayWindow uint32
	// RawIPv4 opens raw IPv4 sockets for ESP without UDP encapsulation and
	// for AH; without it such SAs are refused.
	RawIPv4 bool
	// Batch is the number of packets read and written per system call
	// (default 32).
	Batch int
	// SteerMark and SteerTable, when both are set, steer marked packets
	// into the TUN device: the backend adds the rule "fwmark SteerMark
	// lookup SteerTable" (IPv4 and IPv6) and a default route through the
	// device in SteerTable, and removes them at Close. A policy layer
	// (package policy/nft) marks the traffic that must be secured; that is
	// how host-to-host SAs, whose peer is also the IKE peer, get their
	// traffic without a destination route that would capture IKE too.
	SteerMark, SteerTable uint32
	// NoOffload turns off the offloads the backend otherwise uses where the
	// kernel has them: TCP segmentation offload and checksum offload on the
	// TUN device (IFF_VNET_HDR), the coalescing of received TCP segments
	// written to it, and UDP GSO and GRO on the socket. None of them changes
	// what goes on the wire: every ESP packet still carries one inner
	// packet of at most MTU octets.
	NoOffload bool
	// AcquireInterval is the least time between two Acquire events of one
	// policy for one destination (default 1s).
	AcquireInterval time.Duration
	// ExpireCheck is the period of the lifetime checks (default 1s).
	ExpireCheck time.Duration
	// Logger receives the backend's few log lines (default: discarded).
	Logger *slog.Logger
}

// DefaultPort is the NAT-T port, shared by IKE and ESP-in-UDP.
const DefaultPort = 4500

func (c *Config) setDefaults() {
	if c.TUN == "" {
		c.TUN = "iked0"
	}
	if c.MTU == 0 {
		c.MTU = 1400
	}
	if !c.Listen.IsValid() {
		c.Listen = netip.AddrPortFrom(netip.IPv4Unspecified(), DefaultPort)
	}
	if c.Batch <= 0 {
		c.Batch = 32
	}
	if c.AcquireInterval == 0 {
		c.AcquireInterval = time.Second
	}
	if c.ExpireCheck == 0 {
		c.ExpireCheck = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats are the backend's packet counters.
type Stats struct {
	// TUNRead and TUNWritten count inner packets from and to the TUN device.
	TUNRead, TUNWritten uint64
	// Sent and Received count ESP and AH packets.
	Sent, Received uint64
	// IKEReceived counts IKE messages handed to IKEBind; IKEDropped those
	// dropped because its queue was full.
	IKEReceived, IKEDropped uint64
	// Keepalives counts NAT keepalives (RFC 3948 §2.3), ignored.
	Keepalives uint64
	// NoSA counts inbound packets for an unknown SPI.
	NoSA uint64
	// NoRoute counts outbound packets that matched no policy and no SA.
	NoRoute uint64
	// PolicyDrops counts packets dropped by a Drop or Pass policy (a TUN
	// cannot pass clear traffic), a Protect policy without SA, or, inbound,
	// inner packets outside the SA's traffic selectors.
	PolicyDrops uint64
	// Acquires counts Acquire events raised. Held counts packets kept
	// while an acquire is answered; Released those sent once an SA came,
	// HeldExpired those dropped after waiting too long.
	Acquires, Held, Released, HeldExpired uint64
	// Replay, Auth and Malformed count inbound packets refused by the
	// anti-replay window, the integrity check, or parsing.
	Replay, Auth, Malformed uint64
	// Offload counts TCP super-segments read from the TUN device and cut
	// into packets; Coalesced the received TCP segments written to it
	// joined behind another.
	Offload, Coalesced uint64
	// SendErrors and TUNWriteErrors count failed writes; SeqExhausted
	// packets not sent because the SA ran out of sequence numbers.
	SendErrors, TUNWriteErrors, SeqExhausted uint64
	// EventsDropped counts events lost because nobody read Events.
	EventsDropped uint64
}

type stats struct {
	tunRead, tunWritten, sent, received, ikeReceived, ikeDropped, keepalives,
	noSA, noRoute, policyDrops, acquires, held, released, heldExpired, replay, auth, malformed, offload, coalesced,
	sendErrors, tunWriteErrors, seqExhausted, eventsDropped atomic.Uint64
}

func (s *stats) snapshot() Stats {
	return Stats{
		TUNRead: s.tunRead.Load(), TUNWritten: s.tunWritten.Load(),
		Sent: s.sent.Load(), Received: s.received.Load(),
		IKEReceived: s.ikeReceived.Load(), IKEDropped: s.ikeDropped.Load(),
		Keepalives: s.keepalives.Load(), NoSA: s.noSA.Load(), NoRoute: s.noRoute.Load(),
		PolicyDrops: s.policyDrops.Load(), Acquires: s.acquires.Load(),
		Held: s.held.Load(), Released: s.released.Load(), HeldExpired: s.heldExpired.Load(),
		Replay: s.replay.Load(), Auth: s.auth.Load(), Malformed: s.malformed.Load(),
		Offload: s.offload.Load(), Coalesced: s.coalesced.Load(),
		SendErrors: s.sendErrors.Load(), TUNWriteErrors: s.tunWriteErrors.Load(),
		SeqExhausted: s.seqExhausted.Load(), EventsDropped: s.eventsDropped.Load(),
	}
}

// SAStats are one SA's counters: its traffic (inner octets and packets, as
// sadb.Counters reports) and the packets it refused.
type SAStats struct {
	Bytes, Packets uint64
	// Replay and Auth count inbound packets refused by the window or the
	// integrity check; PolicyDrops inner packets outside the selectors.
	Replay, Auth, PolicyDrops uint64
}

// dataPlaneStats sums Stats up for sadb.StatsReporter.
func (s Stats) dataPlaneStats() sadb.DataPlaneStats {
	return sadb.DataPlaneStats{
		Sent: s.Sent, Received: s.Received,
		Dropped: map[string]uint64{
			"replay": s.Replay, "integrity": s.Auth, "unknown_spi": s.NoSA, "malformed": s.Malformed,
			"policy": s.PolicyDrops, "no_route": s.NoRoute, "send_error": s.SendErrors + s.TUNWriteErrors + s.SeqExhausted,
			"acquire_timeout": s.HeldExpired,
		},
		Events: map[string]uint64{
			"tso_segmented": s.Offload, "gro_coalesced": s.Coalesced,
			"acquire_held": s.Held, "acquire_released": s.Released,
		},
	}
}
