//go:build linux

package userspace

import (
	"net/netip"
	"sync"
	"time"
)

// Packets that meet a protect policy without an SA are held for a short
// while instead of dropped: the acquire they raise usually brings an SA
// within milliseconds, and a held TCP SYN then leaves at once instead of
// after the sender's one-second retransmission. The kernel's XFRM does the
// same with its larval states.
const (
	holdPerDst  = 4               // packets held per destination
	holdDsts    = 256             // destinations with held packets
	holdTimeout = 3 * time.Second // then they are dropped
)

// held is what waits for an SA, by destination.
type held struct {
	mu   sync.Mutex
	pkts map[netip.Addr]*heldQueue
}

type heldQueue struct {
	since time.Time
	pkts  [][]byte
}

// hold keeps a copy of pkt for dst; false when the queue is full (the
// packet is dropped).
func (b *Backend) hold(dst netip.Addr, pkt []byte) bool {
	now := time.Now()
	h := &b.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pkts == nil {
		h.pkts = map[netip.Addr]*heldQueue{}
	}
	q := h.pkts[dst]
	if q != nil && now.Sub(q.since) > holdTimeout {
		b.st.heldExpired.Add(uint64(len(q.pkts)))
		delete(h.pkts, dst)
		q = nil
	}
	if q == nil {
		if len(h.pkts) >= holdDsts {
			return false
		}
		q = &heldQueue{since: now}
		h.pkts[dst] = q
	}
	if len(q.pkts) >= holdPerDst {
		return false
	}
	q.pkts = append(q.pkts, append(make([]byte, 0, headRoom+len(pkt)+tailRoom), pkt...))
	b.st.held.Add(1)
	return true
}

// releaseHeld sends the held packets an SA now covers, and forgets those
// held too long. It runs after an outbound SA is installed, off the
// packet path.
func (b *Backend) releaseHeld() {
	now := time.Now()
	h := &b.held
	h.mu.Lock()
	queues := h.pkts
	h.pkts = nil
	h.mu.Unlock()
	if len(queues) == 0 {
		return
	}
	t := b.tables.Load()
	tx := newTxBatch(holdPerDst, false)
	var f flow
	var keep map[netip.Addr]*heldQueue
	for dst, q := range queues {
		if now.Sub(q.since) > holdTimeout {
			b.st.heldExpired.Add(uint64(len(q.pkts)))
			continue
		}
		var rest [][]byte
		for _, p := range q.pkts {
			if parseFlow(p, &f) != nil {
				continue
			}
			if s, _ := t.lookupOut(&f); s == nil {
				rest = append(rest, p) // still no SA for it
				continue
			}
			n := len(p)
			buf := make([]byte, headRoom+n+tailRoom)
			copy(buf[headRoom:], p)
			b.sealOne(t, &f, buf, n, tx)
			b.st.released.Add(1)
		}
		if errs := tx.flush(b.udp.rc); errs != 0 {
			b.st.sendErrors.Add(errs)
		}
		if len(rest) > 0 {
			if keep == nil {
				keep = map[netip.Addr]*heldQueue{}
			}
			keep[dst] = &heldQueue{since: q.since, pkts: rest}
		}
	}
	if keep == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pkts == nil {
		h.pkts = keep
		return
	}
	for dst, q := range keep { // packets held meanwhile go after the older ones
		if cur := h.pkts[dst]; cur != nil {
			q.pkts = append(q.pkts, cur.pkts...)
		}
		h.pkts[dst] = q
	}
}
