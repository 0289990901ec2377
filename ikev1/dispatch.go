package ikev1

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"

	"github.com/iked/iked/transport"
)

// An ISAKMP SA's messages are handled in the order they arrived, as one
// reader would handle them, while different SAs' messages are handled in
// parallel. IKEv1 needs it: its Informational exchanges are not
// acknowledged, so nothing repairs a Delete handled before the message
// the peer sent ahead of it. A peer deleting an ISAKMP SA sends the
// Deletes of its IPsec SAs first; a peer that completed a Quick Mode
// sends its HASH(3) before it may delete the ISAKMP SA. Handled out of
// order, the IPsec SAs would be handed over to another ISAKMP SA instead
// of deleted, or never installed here while the peer keeps them.
//
// The readers of a bind take turns to read (reading is cheap), and queue
// each datagram in the inbox of its initiator cookie, which names the
// ISAKMP SA on both sides. The reader that finds an inbox empty handles
// it until it is empty again; the others go back to reading.

// maxInbox bounds the datagrams waiting for one ISAKMP SA: beyond it they
// are dropped, as a full socket buffer would drop them.
const maxInbox = 256

type received struct {
	b    transport.Bind
	from netip.AddrPort
	pkt  []byte
}

// inboxes are the queues of the ISAKMP SAs whose messages are being
// handled, by initiator cookie. Its lock is a leaf.
type inboxes struct {
	mu    sync.Mutex
	boxes map[uint64][]received
}

// put queues r under key and reports whether the caller is to handle the
// queue (it was empty), or false when it queued r for another reader or
// dropped it.
func (x *inboxes) put(key uint64, r received) (handle, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.boxes == nil {
		x.boxes = map[uint64][]received{}
	}
	q, busy := x.boxes[key]
	if busy && len(q) >= maxInbox {
		return false, false
	}
	if busy {
		// Another reader handles it, after this one has read into
		// the buffer again: it needs its own copy. An idle inbox's
		// datagram is handled by this reader before it reads again.
		r.pkt = bytes.Clone(r.pkt)
	}
	x.boxes[key] = append(q, r)
	return !busy, true
}

// next returns the next datagram queued under key; when there is none it
// removes the queue, so that the next datagram's reader handles it.
func (x *inboxes) next(key uint64) (received, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	q := x.boxes[key]
	if len(q) == 0 {
		delete(x.boxes, key)
		return received{}, false
	}
	r := q[0]
	q[0] = received{}
	x.boxes[key] = q[1:]
	return r, true
}

// inboxKey is the initiator cookie of a datagram (0 for one too short to
// have one: handlePacket counts it as malformed).
func inboxKey(pkt []byte) uint64 {
	if len(pkt) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(pkt)
}

// dispatch queues a datagram just read (in arrival order: the caller
// holds its bind's read turn) and tells whether the caller handles its
// SA's queue.
func (e *Engine) dispatch(b transport.Bind, from netip.AddrPort, pkt []byte) (key uint64, handle bool) {
	key = inboxKey(pkt)
	handle, ok := e.inboxes.put(key, received{b: b, from: from, pkt: pkt})
	if !ok {
		e.stats.drop(DropRateLimited)
	}
	return key, handle
}

// drain handles the datagrams queued under key until there are none.
func (e *Engine) drain(key uint64) {
	for {
		r, ok := e.inboxes.next(key)
		if !ok {
			return
		}
		e.handlePacket(r.b, r.from, r.pkt)
	}
}
