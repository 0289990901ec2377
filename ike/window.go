package ike

import (
	"slices"

	"github.com/iked/iked/ike/wire"
)

// Message ID windows (RFC 7296 §2.3). This side announces recvWindow with
// SET_WINDOW_SIZE in IKE_AUTH: the peer may then have that many requests
// outstanding, which are processed as they arrive and whose responses stay
// cached for retransmissions. The peer's announcement lets this side send
// that many requests before the first is answered.

// recvWindow is the window iked announces and accepts.
const recvWindow = 4

// maxSendWindow bounds how many requests this side keeps outstanding,
// whatever the peer announces.
const maxSendWindow = 16

// respCache holds the responses to the peer's requests within the window.
type respCache struct {
	// next is the lowest message ID not yet answered.
	next uint32
	// one is an unfragmented response, to request oneID, held in the
	// cache itself: an established SA usually holds just its IKE_AUTH
	// response, and at 100,000 SAs every object less per SA is less for
	// the garbage collector to visit. nil when none.
	oneID uint32
	one   []byte
	// more are the other responses by message ID, from next-window up,
	// including those answered out of order above next: a few at most,
	// so a slice (a map of one entry costs ten times its size).
	more []cachedResponse
}

// cachedResponse is the response to the request of message ID id.
type cachedResponse struct {
	id   uint32
	resp [][]byte
}

// lookup returns the cached response to request id, if any.
func (c *respCache) lookup(id uint32) ([][]byte, bool) {
	if c.one != nil && c.oneID == id {
		return [][]byte{c.one}, true
	}
	for _, r := range c.more {
		if r.id == id {
			return r.resp, true
		}
	}
	return nil, false
}

// has reports whether the response to request id is cached.
func (c *respCache) has(id uint32) bool {
	if c.one != nil && c.oneID == id {
		return true
	}
	return slices.ContainsFunc(c.more, func(r cachedResponse) bool { return r.id == id })
}

// classify says what to do with a request of message ID id: answer it
// again from the cache, process it, or drop it as outside the window.
func (c *respCache) classify(id uint32, window uint32) (cached [][]byte, process bool) {
	if r, ok := c.lookup(id); ok {
		return r, false
	}
	if id < c.next || id >= c.next+window {
		return nil, false
	}
	return nil, true
}

// store records the response to request id and slides the window.
func (c *respCache) store(id uint32, resp [][]byte, window uint32) {
	if c.one != nil && c.oneID == id {
		c.one = nil
	}
	c.more = slices.DeleteFunc(c.more, func(r cachedResponse) bool { return r.id == id })
	if len(resp) == 1 && c.one == nil {
		c.oneID, c.one = id, resp[0]
	} else {
		c.more = append(c.more, cachedResponse{id, resp})
	}
	for c.has(c.next) {
		c.next++
	}
	if c.one != nil && c.oneID+window < c.next {
		c.one = nil
	}
	c.more = slices.DeleteFunc(c.more, func(r cachedResponse) bool { return r.id+window < c.next })
	if len(c.more) == 0 {
		c.more = nil // an empty slice would still hold its array
	}
}

// windowNotify announces the window this side accepts.
func windowNotify() *wire.Notify {
	return &wire.Notify{Code: wire.NotifySetWindowSize, Data: []byte{0, 0, 0, recvWindow}}
}

// peerWindow reads the peer's SET_WINDOW_SIZE, 1 when absent.
func peerWindow(ps []wire.Payload) int {
	n := wire.FindNotify(ps, wire.NotifySetWindowSize)
	if n == nil || len(n.Data) != 4 {
		return 1
	}
	w := int(n.Data[0])<<24 | int(n.Data[1])<<16 | int(n.Data[2])<<8 | int(n.Data[3])
	return max(1, min(w, maxSendWindow))
}
