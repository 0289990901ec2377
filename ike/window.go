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
	// answered are responses by message ID, from next-window up, including
	// those answered out of order above next. A few at most, so a slice:
	// an established SA usually holds one (its IKE_AUTH response), and a
	// map of one entry costs ten times its size at 100,000 SAs.
	answered []cachedResponse
}

// cachedResponse is the response to the request of message ID id.
type cachedResponse struct {
	id   uint32
	resp [][]byte
}

// lookup returns the cached response to request id, if any.
func (c *respCache) lookup(id uint32) ([][]byte, bool) {
	for _, r := range c.answered {
		if r.id == id {
			return r.resp, true
		}
	}
	return nil, false
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
	replaced := false
	for i := range c.answered {
		if c.answered[i].id == id {
			c.answered[i].resp, replaced = resp, true
		}
	}
	if !replaced {
		c.answered = append(c.answered, cachedResponse{id, resp})
	}
	for {
		if _, ok := c.lookup(c.next); !ok {
			break
		}
		c.next++
	}
	c.answered = slices.DeleteFunc(c.answered, func(r cachedResponse) bool { return r.id+window < c.next })
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
