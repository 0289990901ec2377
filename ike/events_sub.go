package ike

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// SA lifecycle events for control interfaces (VICI's ike-updown,
// child-updown, ike-rekey, child-rekey). The engine raises them with the
// SA's lock held, so a raise only takes a snapshot (when anyone listens)
// and queues it; one goroutine per engine delivers the queue to the
// subscribers in order, holding no SA lock. Subscribers must not block:
// a slow one delays the others' events, never a handshake.

// EventKind says what happened to an SA.
type EventKind uint8

// Event kinds.
const (
	// EventIKEUp: an IKE SA was established (not by a rekey).
	EventIKEUp EventKind = iota + 1
	// EventIKEDown: an established IKE SA was deleted (not after a rekey).
	EventIKEDown
	// EventIKERekey: an IKE SA was rekeyed; Old is the old SA, SA the new.
	EventIKERekey
	// EventChildUp: a Child SA was installed (not by a rekey).
	EventChildUp
	// EventChildDown: a Child SA was removed (not after a rekey).
	EventChildDown
	// EventChildRekey: a Child SA was rekeyed; OldChild is the old one,
	// Child the new.
	EventChildRekey
)

// SAEvent is one lifecycle event with snapshots taken when it happened.
type SAEvent struct {
	Kind EventKind
	// SA is the IKE SA concerned (the new one after a rekey) and Extra
	// what only control interfaces ask about it.
	SA    SAInfo
	Extra SAExtra
	// Old is the IKE SA replaced by an IKE SA rekey.
	Old      SAInfo
	OldExtra SAExtra
	// Child is the Child SA of a child event; OldChild the one a Child SA
	// rekey replaced.
	Child, OldChild ChildInfo
}

// SAExtra is what strongSwan-style tools show of an SA beyond SAInfo:
// when its timers fire and data-plane details. Zero times mean "never".
type SAExtra struct {
	// IKERekey and Reauth are when the IKE SA is rekeyed or
	// reauthenticated.
	IKERekey, Reauth time.Time
	// Encap is set when ESP travels in UDP (RFC 3948).
	Encap bool
	// Children holds, by inbound SPI (ChildInfo.SPIIn), when each Child SA
	// is rekeyed and its ReqID.
	Children map[string]ChildExtra
}

// ChildExtra is SAExtra's part for one Child SA.
type ChildExtra struct {
	Rekey time.Time
	ReqID uint32
}

// subscribers is the engine's subscriber list and event queue.
type subscribers struct {
	n      atomic.Int32 // len(subs), read without mu on the handshake path
	mu     sync.Mutex
	subs   map[int]func(SAEvent)
	nextID int
	queue  []SAEvent
	wake   chan struct{} // signals the delivering goroutine; nil when none runs
}

// Subscribe calls f with every SA event from now on, in order, from one
// goroutine that holds no engine lock; f must not block. The returned
// function ends the subscription.
func (e *Engine) Subscribe(f func(SAEvent)) (cancel func()) {
	s := &e.subs
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs == nil {
		s.subs = map[int]func(SAEvent){}
	}
	id := s.nextID
	s.nextID++
	s.subs[id] = f
	s.n.Store(int32(len(s.subs)))
	if s.wake == nil {
		s.wake = make(chan struct{}, 1)
		go s.deliver(s.wake)
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.subs, id)
		s.n.Store(int32(len(s.subs)))
		if len(s.subs) == 0 && s.wake != nil {
			close(s.wake)
			s.wake = nil
			s.queue = nil
		}
	}
}

// active reports whether anyone listens, so that raising costs nothing
// otherwise.
func (s *subscribers) active() bool { return s.n.Load() > 0 }

func (s *subscribers) raise(ev SAEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		return
	}
	s.queue = append(s.queue, ev)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deliver hands queued events to the subscribers until wake is closed.
func (s *subscribers) deliver(wake chan struct{}) {
	for range wake {
		for {
			s.mu.Lock()
			if s.wake != wake || len(s.queue) == 0 {
				s.mu.Unlock()
				break
			}
			ev := s.queue[0]
			s.queue[0] = SAEvent{}
			s.queue = s.queue[1:]
			fs := make([]func(SAEvent), 0, len(s.subs))
			for _, f := range s.subs {
				fs = append(fs, f)
			}
			s.mu.Unlock()
			for _, f := range fs {
				f(ev)
			}
		}
	}
}

// snapshotLocked is info() for a caller that holds mu.
func (sa *ikeSA) snapshotLocked() (SAInfo, SAExtra) {
	in := SAInfo{
		ID: sa.id(), SPIi: spiHex(sa.spii), SPIr: spiHex(sa.spir), State: sa.state.String(), Role: sa.role(),
		LocalAddr: sa.local.String(), RemoteAddr: sa.remote.String(),
		LocalID: sa.localID.String(), RemoteID: sa.remoteID.String(), Auth: sa.authName,
		NATLocal: sa.natLocal, NATRemote: sa.natRemote, Established: sa.established,
		Children: []ChildInfo{},
	}
	if sa.conn != nil {
		in.Connection = sa.conn.Name
	}
	if sa.suite != nil {
		in.Algorithms = sa.suite.String()
	}
	for _, c := range sa.children {
		in.Children = append(in.Children, c.info(sa.eng.cfg.SADB))
	}
	return in, sa.extraLocked()
}

// extraLocked reads the SA's timers. Caller holds mu, which guards the
// timer list; a timer's time is set before it is linked.
func (sa *ikeSA) extraLocked() SAExtra {
	x := SAExtra{Encap: sa.espInUDP(), Children: make(map[string]ChildExtra, len(sa.children))}
	for _, c := range sa.children {
		x.Children[spi32Hex(c.inbound.SPI)] = ChildExtra{ReqID: c.reqID}
	}
	if sa.timers == nil {
		return x // the timer epoch may not be set yet
	}
	epoch := sa.eng.timers.epoch
	for t := sa.timers; t != nil; t = t.next {
		at := epoch.Add(t.at)
		switch t.kind {
		case timerIKERekey:
			x.IKERekey = at
		case timerReauth:
			x.Reauth = at
		case timerChildRekey:
			if t.child != nil {
				k := spi32Hex(t.child.inbound.SPI)
				ce := x.Children[k]
				ce.Rekey = at
				x.Children[k] = ce
			}
		}
	}
	return x
}

func spi32Hex(spi uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[spi&0xf]
		spi >>= 4
	}
	return string(b[:])
}

// SAExtras returns SAExtra for every IKE SA, by SA ID.
func (e *Engine) SAExtras() map[string]SAExtra {
	sas := e.allSAs()
	out := make(map[string]SAExtra, len(sas))
	for _, sa := range sas {
		sa.mu.Lock()
		out[sa.id()] = sa.extraLocked()
		sa.mu.Unlock()
	}
	return out
}

// The raise points, called by the engine with sa.mu held.

// ikeUp: sa is established; its Child SAs made in IKE_AUTH come up with it.
func (s *subscribers) ikeUp(sa *ikeSA) {
	if !s.active() {
		return
	}
	in, x := sa.snapshotLocked()
	s.raise(SAEvent{Kind: EventIKEUp, SA: in, Extra: x})
	for _, c := range in.Children {
		s.raise(SAEvent{Kind: EventChildUp, SA: in, Extra: x, Child: c})
	}
}

// ikeDown: sa is being destroyed, its Child SAs already removed.
func (s *subscribers) ikeDown(sa *ikeSA) {
	if (sa.state != stateEstablished && sa.state != stateDeleting) || sa.rekeyedBy != nil || !s.active() {
		return
	}
	in, x := sa.snapshotLocked()
	s.raise(SAEvent{Kind: EventIKEDown, SA: in, Extra: x})
}

// ikeRekeying: sa is being replaced by a rekey; its snapshot, Child SAs
// still with it, waits in the handover for ikeRekeyed. Caller holds sa.mu.
func (s *subscribers) ikeRekeying(sa *ikeSA) *SAEvent {
	if !s.active() {
		return nil
	}
	old, ox := sa.snapshotLocked()
	return &SAEvent{Kind: EventIKERekey, Old: old, OldExtra: ox}
}

// ikeRekeyed: n took over the old SA of ev. Caller holds n.mu.
func (s *subscribers) ikeRekeyed(ev *SAEvent, n *ikeSA) {
	if ev == nil || !s.active() {
		return
	}
	ev.SA, ev.Extra = n.snapshotLocked()
	s.raise(*ev)
}

// childInstalled: c is installed; it replaces rekeys when that is set.
// Child SAs of an IKE SA not yet established come up with it (ikeUp).
func (s *subscribers) childInstalled(sa *ikeSA, c, rekeys *childSA) {
	if sa.state != stateEstablished || !s.active() {
		return
	}
	in, x := sa.snapshotLocked()
	ev := SAEvent{Kind: EventChildUp, SA: in, Extra: x, Child: c.info(sa.eng.cfg.SADB)}
	if rekeys != nil {
		ev.Kind, ev.OldChild = EventChildRekey, rekeys.info(sa.eng.cfg.SADB)
	}
	s.raise(ev)
}

// childDown: c is about to leave the data plane (its counters are still
// there). A Child SA replaced by a rekey goes silently.
func (s *subscribers) childDown(sa *ikeSA, c *childSA) {
	if (sa.state != stateEstablished && sa.state != stateDeleting) || c.rekeyedBy != nil || c.peerRekey != nil || !s.active() {
		return
	}
	in, x := sa.snapshotLocked()
	s.raise(SAEvent{Kind: EventChildDown, SA: in, Extra: x, Child: c.info(sa.eng.cfg.SADB)})
}

// TerminateChild deletes, with the peer, the Child SA of IKE SA id whose
// inbound SPI is spiIn (§1.4.1); the IKE SA stays.
func (e *Engine) TerminateChild(ctx context.Context, id string, spiIn uint32) error {
	for _, sa := range e.allSAs() {
		if sa.id() != id {
			continue
		}
		sa.mu.Lock()
		var c *childSA
		for _, x := range sa.children {
			if x.inbound.SPI == spiIn {
				c = x
			}
		}
		sa.mu.Unlock()
		if c == nil {
			return fmt.Errorf("%s has no Child SA with inbound SPI %08x", id, spiIn)
		}
		sa.deleteChild(ctx, c)
		return nil
	}
	return fmt.Errorf("no IKE SA %q", id)
}
