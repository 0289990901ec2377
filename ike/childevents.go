package ike

import (
	"net/netip"

	"github.com/iked/iked/sadb"

	"github.com/iked/iked/ike/wire"
)

// ChildObserver hears of every Child SA as the data plane gets it and
// loses it: what an updown script acts on. The engine calls it when its
// Config.Observer implements it too. Its methods are called with the IKE
// SA's lock held, in order for one IKE SA; they must not block or call
// back into the engine.
//
// A rekeyed Child SA comes up under the ReqID of the one it replaces
// before that one goes down, so an observer that counts Child SAs per
// ReqID sees a rekey as no change; a reauthentication brings up a new
// ReqID before the old one goes down.
type ChildObserver interface {
	ChildSAUp(ev ChildSAEvent)
	ChildSADown(ev ChildSAEvent)
}

// ChildSAEvent describes a Child SA that came up or went down.
type ChildSAEvent struct {
	// Connection names the connection; IKESA is the IKE SA's ID ("ike-3").
	Connection string
	IKESA      string
	// Initiator: this side initiated the IKE SA.
	Initiator bool
	// ReqID ties the Child SA to its policies; a rekey keeps it.
	ReqID uint32
	// Local and Remote are the IKE SA's endpoints; Encap says ESP goes in
	// UDP between them (RFC 3948).
	Local, Remote netip.AddrPort
	Encap         bool
	// LocalID and RemoteID are the authenticated identities ("type:value").
	LocalID, RemoteID string
	// Mode is the Child SA's mode; SPIIn and SPIOut its SPIs.
	Mode          Mode
	SPIIn, SPIOut uint32
	// LocalTS and RemoteTS are the negotiated traffic selectors.
	LocalTS, RemoteTS []wire.TrafficSelector
	// BytesIn, BytesOut, PacketsIn and PacketsOut are, in ChildSADown,
	// the data plane's final counters of the Child SA (read just before
	// it leaves the data plane; 0 when the data plane had removed it
	// already), so that totals survive rekeys. 0 in ChildSAUp.
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
}

// childObserver returns the Observer's ChildObserver side, or nil.
func (e *Engine) childObserver() ChildObserver {
	o, _ := e.cfg.Observer.(ChildObserver)
	return o
}

// childEvent describes c of sa. Caller holds sa.mu.
func (sa *ikeSA) childEvent(c *childSA) ChildSAEvent {
	ev := ChildSAEvent{
		IKESA: sa.id(), Initiator: sa.initiator, ReqID: c.reqID, Local: sa.local, Remote: sa.remote, Encap: sa.espInUDP(),
		LocalID: sa.localID.String(), RemoteID: sa.remoteID.String(), Mode: c.mode,
		SPIIn: c.inbound.SPI, SPIOut: c.outbound.SPI, LocalTS: c.localTS, RemoteTS: c.remoteTS,
	}
	if sa.conn != nil {
		ev.Connection = sa.conn.Name
	}
	return ev
}

// childUp tells the ChildObserver c is installed. Caller holds sa.mu.
func (sa *ikeSA) childUp(c *childSA) {
	if o := sa.eng.childObserver(); o != nil {
		o.ChildSAUp(sa.childEvent(c))
	}
}

// childDown tells the ChildObserver c is removed. Caller holds sa.mu.
func (sa *ikeSA) childDown(c *childSA) {
	if o := sa.eng.childObserver(); o != nil {
		ev := sa.childEvent(c)
		db := sa.eng.cfg.SADB
		if ctr, err := db.Counters(c.inbound.ID()); err == nil {
			ev.BytesIn, ev.PacketsIn = ctr.Bytes, ctr.Packets
		}
		if ctr, ok := c.outCounters(db); ok {
			ev.BytesOut, ev.PacketsOut = ctr.Bytes, ctr.Packets
		}
		o.ChildSADown(ev)
	}
}

// outCounters reads the outbound SA's counters from the data plane, or
// the last ones read when deleteChild removed it ahead of the inbound SA.
// Caller holds the IKE SA's mu.
func (c *childSA) outCounters(db *sadb.DB) (sadb.Counters, bool) {
	if c.outFinal != nil {
		return *c.outFinal, true
	}
	ctr, err := db.Counters(c.outbound.ID())
	return ctr, err == nil
}
