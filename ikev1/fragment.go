package ikev1

import (
	"bytes"
	"net/netip"
	"sync"
	"time"

	"github.com/iked/iked/ikev1/isakmp"
)

// IKE fragmentation as Cisco, strongSwan and Windows speak it for IKEv1:
// the whole message, header included, is cut into pieces, each sent in
// its own datagram as the only payload (type 132) behind a copy of the
// header; the receiver joins the pieces of one fragment ID in order once
// it has the last one, and handles the result as if it had come whole.

// Bounds on reassembly: fragments are unauthenticated, so what they may
// hold is capped.
const (
	maxFragments     = 32
	maxReassembled   = 64 << 10
	maxReassemblies  = 256
	reassemblyExpiry = 30 * time.Second
)

// fragment cuts a message into fragments when the peer announced the
// capability and the message exceeds the fragment size. Caller holds mu.
func (sa *isakmpSA) fragment(pkt []byte) [][]byte {
	size := sa.eng.cfg.FragmentSize
	if !sa.peerFrag || len(pkt) <= size {
		return [][]byte{pkt}
	}
	// Room for the header, the generic payload header and the fragment
	// payload's own four octets.
	room := size - isakmp.HeaderLen - 8
	sa.fragID++
	var out [][]byte
	for i, off := 0, 0; off < len(pkt); i++ {
		end := min(off+room, len(pkt))
		f := &isakmp.Fragment{ID: sa.fragID, Number: uint8(i + 1), Last: end == len(pkt), Data: pkt[off:end]}
		h := isakmp.Header{ICookie: sa.icookie, RCookie: sa.rcookie, Version: isakmp.Version,
			Exchange: isakmp.Exchange(pkt[18]), MessageID: 0}
		m := isakmp.Message{Header: h, Payloads: []isakmp.Payload{f}}
		out = append(out, m.Marshal())
		off = end
	}
	return out
}

// reassembler joins fragments.
type reassembler struct {
	mu      sync.Mutex
	pending map[fragKey]*fragSet
}

type fragKey struct {
	peer    netip.AddrPort
	icookie uint64
	rcookie uint64
	id      uint16
}

type fragSet struct {
	parts   [maxFragments + 1][]byte
	last    uint8
	size    int
	created time.Time
}

func newReassembler() *reassembler { return &reassembler{pending: map[fragKey]*fragSet{}} }

// add records one fragment datagram and returns the whole message once
// every piece is there.
func (r *reassembler) add(from netip.AddrPort, hdr *isakmp.Header, pkt []byte) ([]byte, bool) {
	body, err := isakmp.ParseBody(hdr.Next, pkt[isakmp.HeaderLen:], false)
	if err != nil || len(body.Payloads) != 1 {
		return nil, false
	}
	f, ok := body.Payloads[0].(*isakmp.Fragment)
	if !ok || int(f.Number) > maxFragments {
		return nil, false
	}
	now := time.Now()
	key := fragKey{peer: from, icookie: hdr.ICookie, rcookie: hdr.RCookie, id: f.ID}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, s := range r.pending {
		if now.Sub(s.created) > reassemblyExpiry {
			delete(r.pending, k)
		}
	}
	s := r.pending[key]
	if s == nil {
		if len(r.pending) >= maxReassemblies {
			return nil, false
		}
		s = &fragSet{created: now}
		r.pending[key] = s
	}
	if s.parts[f.Number] != nil {
		return nil, false // a retransmitted fragment
	}
	if s.size+len(f.Data) > maxReassembled || (f.Last && s.last != 0) || (s.last != 0 && f.Number > s.last) {
		delete(r.pending, key)
		return nil, false
	}
	s.parts[f.Number] = bytes.Clone(f.Data)
	s.size += len(f.Data)
	if f.Last {
		s.last = f.Number
	}
	if s.last == 0 {
		return nil, false
	}
	var whole []byte
	for i := uint8(1); i <= s.last; i++ {
		if s.parts[i] == nil {
			return nil, false
		}
		whole = append(whole, s.parts[i]...)
	}
	delete(r.pending, key)
	return whole, true
}
