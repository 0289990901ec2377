package sadb

import (
	"fmt"
	"net/netip"
	"time"
)

// Direction is the direction of a data-plane policy.
type Direction uint8

// Directions, as XFRM has them: traffic to this host, from it, and
// forwarded through it (tunnel gateways).
const (
	In Direction = iota
	Out
	Fwd
)

// String returns "in", "out" or "fwd".
func (d Direction) String() string {
	return [...]string{"in", "out", "fwd"}[d]
}

// Action is what a policy does with matching traffic.
type Action uint8

// Actions.
const (
	// Protect sends matching traffic through an SA (and, inbound, requires
	// that it arrived through one).
	Protect Action = iota
	// Pass lets matching traffic through in clear.
	Pass
	// Drop discards matching traffic.
	Drop
)

// String returns "protect", "pass" or "drop".
func (a Action) String() string {
	return [...]string{"protect", "pass", "drop"}[a]
}

// Level says whether protection is mandatory.
type Level uint8

// Levels.
const (
	// Required: traffic without an SA is dropped (and an acquire raised).
	Required Level = iota
	// Optional: traffic is protected when an SA exists and passes in clear
	// otherwise ("use" in XFRM; Windows' "request security").
	Optional
)

// Selector matches packets: addresses as prefixes, a protocol (0 = any)
// and ports (0 = any).
type Selector struct {
	Src, Dst         netip.Prefix
	Proto            uint8
	SrcPort, DstPort uint16
}

// String prints the selector as "10.1.0.0/24[tcp/80] -> 10.2.0.0/24".
func (s Selector) String() string {
	side := func(p netip.Prefix, port uint16) string {
		if port == 0 {
			return p.String()
		}
		return fmt.Sprintf("%s[%d]", p, port)
	}
	proto := ""
	if s.Proto != 0 {
		proto = fmt.Sprintf(" proto %d", s.Proto)
	}
	return side(s.Src, s.SrcPort) + " -> " + side(s.Dst, s.DstPort) + proto
}

// Policy is one data-plane policy.
type Policy struct {
	Selector  Selector
	Direction Direction
	Action    Action
	Level     Level
	// Priority orders overlapping policies: lower wins, as in XFRM.
	Priority uint32
	// For Protect: the SA template — protocol, mode, and for tunnel mode
	// the outer addresses. ReqID links the policy to the SAs of one Child
	// SA (the SAs carry the same ReqID).
	Protocol             Protocol
	Mode                 Mode
	TunnelSrc, TunnelDst netip.Addr
	ReqID                uint32
	// IfID is the XFRM interface ID (if_id) the policy applies to: only
	// traffic routed through that interface (out) or arriving through an
	// SA of it (in); 0 means traffic outside any interface.
	IfID uint32
}

// PolicyID identifies a policy within a backend: its selector, direction
// and interface ID (the kernel keeps policies of different interfaces
// apart even when their selectors are equal).
type PolicyID struct {
	Selector  Selector
	Direction Direction
	IfID      uint32
}

// ID returns the policy's identifier.
func (p *Policy) ID() PolicyID {
	return PolicyID{Selector: p.Selector, Direction: p.Direction, IfID: p.IfID}
}

// Lifetime bounds an SA's life; zero fields are unlimited. When a soft
// limit is reached the backend raises SoftExpire (the engine rekeys); at a
// hard limit it removes the SA and raises HardExpire.
type Lifetime struct {
	SoftBytes, HardBytes uint64
	SoftTime, HardTime   time.Duration
}

// EventKind is the kind of a data-plane event.
type EventKind uint8

// Event kinds.
const (
	// Acquire: traffic matched a Protect policy that has no SA.
	Acquire EventKind = iota
	// SoftExpire: an SA reached a soft lifetime limit.
	SoftExpire
	// HardExpire: an SA reached a hard lifetime limit and is gone.
	HardExpire
)

// String returns "acquire", "soft-expire" or "hard-expire".
func (k EventKind) String() string {
	return [...]string{"acquire", "soft-expire", "hard-expire"}[k]
}

// Event is something the data plane tells the engine.
type Event struct {
	Kind EventKind
	// Policy is the matched policy (Acquire).
	Policy PolicyID
	// Packet is the selector of the packet that triggered an Acquire: its
	// own addresses, protocol and ports (RFC 7296 §2.9 wants them as the
	// first traffic selectors).
	Packet Selector
	// SA is the expiring SA (SoftExpire, HardExpire).
	SA ID
	// ReqID links the event to a Child SA.
	ReqID uint32
}

// PolicyBackend is a Backend that also holds policies and reports events.
// The memory, xfrm and userspace backends implement it; the engine uses it
// when the backend does.
type PolicyBackend interface {
	Backend
	// AddPolicy installs p; an existing policy with the same ID is replaced.
	AddPolicy(p *Policy) error
	// DeletePolicy removes a policy; a missing one is an error satisfying
	// errors.Is(err, ErrNotFound).
	DeletePolicy(id PolicyID) error
	// Events delivers acquire and expire events until Close.
	Events() <-chan Event
}
