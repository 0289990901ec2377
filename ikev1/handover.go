package ikev1

import (
	"fmt"
	"sync"
	"time"
)

// An IPsec SA does not belong to the ISAKMP SA that negotiated it (RFC
// 2409 §5.5): when an ISAKMP SA goes, its IPsec SAs move to another one
// with the peer (retire). Each side picks that successor by itself, so
// the two may file an IPsec SA under different ISAKMP SAs: a responder
// answering several of the peer's connections with one of its own cannot
// tell which of the peer's new SAs replaced the old one. What follows
// keeps the two sides' data planes equal all the same:
//
//   - A Delete naming an IPsec SA the ISAKMP SA carrying it does not hold
//     is looked for among the other SAs with the same peer address and
//     identity (deleteElsewhere): the peer proved that identity, which
//     negotiated the IPsec SA, whichever ISAKMP SA it speaks through.
//   - An IPsec SA is between two ISAKMP SAs for a moment while handed
//     over (it leaves the old one's lock before it enters the new one's).
//     A Delete not found anywhere is remembered for a while (peerDeletes)
//     before the search, and adopt checks that record under the new SA's
//     lock, so that whichever comes second sees the other.
//   - An ISAKMP SA with a Quick Mode that the peer may have completed
//     (linger) is retired only once that Quick Mode ends: a Delete of the
//     ISAKMP SA can overtake the Quick Mode's third message (several
//     readers, or the network, reorder), and the peer keeps the IPsec SA
//     it made.

// peerDeleteMemory is how long a Delete for an IPsec SA no ISAKMP SA held
// is remembered: longer than any handover takes, which is the time
// between two lock acquisitions.
const peerDeleteMemory = time.Minute

// peerDeletes are the SPIs of IPsec SAs the peer deleted while no ISAKMP
// SA here held them. Its lock is a leaf.
type peerDeletes struct {
	mu   sync.Mutex
	spis map[uint32]time.Time
}

func (d *peerDeletes) add(spi uint32, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.spis == nil {
		d.spis = map[uint32]time.Time{}
	}
	for s, t := range d.spis {
		if now.Sub(t) > peerDeleteMemory {
			delete(d.spis, s)
		}
	}
	d.spis[spi] = now
}

// take reports whether spi was deleted by the peer, and forgets it.
func (d *peerDeletes) take(spi uint32) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.spis[spi]
	delete(d.spis, spi)
	return ok
}

// deleteElsewhere acts on the peer's Delete of the IPsec SA whose SPI
// (the peer's inbound, or ours) is spi, carried by from, which does not
// hold it. Called without locks.
func (e *Engine) deleteElsewhere(from *isakmpSA, spi uint32) {
	e.peerDeletes.add(spi, e.cfg.Now())
	for _, o := range e.siblingsOf(from) {
		o.mu.Lock()
		c := o.childByPeerSPI(spi)
		if c == nil {
			c = o.childByOwnSPI(spi)
		}
		if c != nil {
			e.peerDeletes.take(spi)
			c.deleting = true
			c.stopTimers()
			o.removeChild(c)
			o.log(levelInfo, "peer deleted IPsec SA through another ISAKMP SA", "via", from.id(),
				"spi_in", fmt.Sprintf("%08x", c.inbound.SPI), "spi_out", fmt.Sprintf("%08x", c.outbound.SPI))
			o.later(func() { e.removeIPsecs([]*ipsecSA{c}) })
			o.unlock()
			return
		}
		o.unlock()
	}
	from.mu.Lock()
	from.log(levelInfo, "Delete for an unknown IPsec SA: kept for a handover under way, else ignored", "spi", fmt.Sprintf("%08x", spi))
	from.unlock()
}

// siblingsOf returns the other SAs with sa's peer, established or being
// deleted: same remote address and identity, any connection. Called
// without locks.
func (e *Engine) siblingsOf(sa *isakmpSA) []*isakmpSA {
	sa.mu.Lock()
	remote, id := sa.remote.Addr(), sa.remoteID
	sa.mu.Unlock()
	var out []*isakmpSA
	for _, o := range e.allSAs() {
		if o == sa {
			continue
		}
		o.mu.Lock()
		same := (o.state == stateEstablished || o.state == stateDeleting) && o.remote.Addr() == remote && o.remoteID.matches(id)
		o.mu.Unlock()
		if same {
			out = append(out, o)
		}
	}
	return out
}

// newestPeerOf returns the most recently established of sa's peers (see
// peersOf), or nil: after a phase 1 rekey, the SA that replaced sa.
// Called without locks.
func (e *Engine) newestPeerOf(sa *isakmpSA) *isakmpSA {
	var best *isakmpSA
	var bestAt time.Time
	for _, o := range e.peersOf(sa) {
		o.mu.Lock()
		at := o.established
		o.mu.Unlock()
		if best == nil || at.After(bestAt) {
			best, bestAt = o, at
		}
	}
	return best
}

// adopt takes over the IPsec SAs of from, a retired ISAKMP SA, except
// those the peer deleted while they were handed over. When sa died
// meanwhile they go on to the newest SA left with the peer, or, when
// there is none, out of the data plane. Called without locks.
func (sa *isakmpSA) adopt(from *isakmpSA, children []*ipsecSA) {
	sa.mu.Lock()
	defer sa.unlock()
	if sa.dead {
		sa.later(func() {
			if next := sa.eng.newestPeerOf(from); next != nil {
				next.adopt(from, children)
				return
			}
			sa.eng.removeIPsecs(children)
		})
		return
	}
	var gone []*ipsecSA
	for _, c := range children {
		if sa.eng.peerDeletes.take(c.outbound.SPI) || sa.eng.peerDeletes.take(c.inbound.SPI) {
			c.deleting = true
			gone = append(gone, c)
			sa.log(levelInfo, "peer deleted IPsec SA while it was handed over", "spi_in", fmt.Sprintf("%08x", c.inbound.SPI),
				"spi_out", fmt.Sprintf("%08x", c.outbound.SPI))
			continue
		}
		sa.ipsecs = append(sa.ipsecs, c)
		if c.deleteOnAdopt != "" {
			reason := c.deleteOnAdopt
			c.deleteOnAdopt = ""
			sa.deleteIPsec(c, reason)
			continue
		}
		sa.startIPsecTimers(c)
	}
	if len(gone) > 0 {
		sa.later(func() { sa.eng.removeIPsecs(gone) })
	}
	sa.log(levelInfo, "took over the IPsec SAs of a retired ISAKMP SA", "from", from.id(), "count", len(children)-len(gone))
}

// quickModesPending reports whether a Quick Mode on the SA is between
// its first and last message, or installing: the peer may complete it, or
// may have. Caller holds mu.
func (sa *isakmpSA) quickModesPending() bool {
	for _, qm := range sa.qms {
		if qm.busy || qm.next != 0 {
			return true
		}
	}
	return false
}

// linger defers then, the SA's retirement, until its pending Quick Modes
// have ended (completed or failed: each is bounded by its
// retransmissions). Meanwhile the SA is deleting: it starts and accepts
// no new exchange. It reports whether it deferred. Caller holds mu.
func (sa *isakmpSA) linger(then func()) bool {
	if !sa.quickModesPending() {
		return false
	}
	if sa.state == stateEstablished {
		sa.state = stateDeleting
	}
	if sa.retireWhenDone == nil { // the first reason to retire stands
		sa.retireWhenDone = then
		sa.log(levelDebug, "ISAKMP SA retires once its Quick Modes end")
	}
	return true
}

// quickModeEnded runs a deferred retirement once the last pending Quick
// Mode has ended. Caller holds mu.
func (sa *isakmpSA) quickModeEnded() {
	if f := sa.retireWhenDone; f != nil && !sa.quickModesPending() {
		sa.retireWhenDone = nil
		sa.later(f)
	}
}
