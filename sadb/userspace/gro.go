package userspace

import (
	"bytes"
	"encoding/binary"
)

// groMax is the most a coalesced packet may hold: the IPv4 total length
// and the IPv6 payload length are 16 bits.
const groMax = 65535

// groSearch bounds how many earlier packets of a batch a TCP segment is
// compared with: bulk flows are few per batch, and the bound keeps a batch
// of many small flows linear.
const groSearch = 8

// groItem is one packet the coalescer will write: a packet as decrypted
// (in place in the receive buffer), or TCP segments of one flow joined
// behind the first one's headers in a buffer of the coalescer's.
type groItem struct {
	pkt     []byte
	tcp     bool // a TCP segment that later ones may join
	v6      bool
	closed  bool // no more segments may join (a short one or PSH came)
	ipLen   int
	hdrLen  int
	gsoSize int // payload of the first segment; all but the last have it
	segs    int
	nextSeq uint32
	buf     int // index+1 of the buffer holding pkt, 0 while in place
}

// coalescer joins consecutive TCP segments of a flow from one receive
// batch into super-segments that the TUN device takes whole (with a vnet
// header saying GSO TCPv4 or TCPv6), which saves the kernel a pass through
// its TCP receive path per segment, as GRO does for a NIC. Only segments
// Linux GRO would join are joined (tcp_gro_receive): the same addresses,
// ports, acknowledgement number, TCP options, IPv4 TOS, TTL and DF or IPv6
// class, flow label and hop limit; consecutive sequence numbers; ACK with
// at most PSH; every segment but the last of the same size; a valid TCP
// checksum, since the joined packet's is the kernel's to fill in.
type coalescer struct {
	items []groItem
	bufs  [][]byte
	used  int
}

func newCoalescer(items, bufs int) *coalescer {
	c := &coalescer{items: make([]groItem, 0, items), bufs: make([][]byte, bufs)}
	for i := range c.bufs {
		c.bufs[i] = make([]byte, groMax)
	}
	return c
}

// reset forgets the batch once it has been written.
func (c *coalescer) reset() {
	clear(c.items)
	c.items = c.items[:0]
	c.used = 0
}

// full says whether the batch must be written before more are added.
func (c *coalescer) full() bool { return len(c.items) == cap(c.items) }

// add adds a decrypted inner packet, which must stay unchanged until the
// batch is written; it is joined to an earlier segment if it can be. It
// returns false, adding nothing, when p could be joined but every buffer
// is taken: the batch is to be written and p added again, to start the
// next one.
func (c *coalescer) add(p []byte) bool {
	it := groItem{pkt: p}
	if tcpCandidate(p, &it) {
		lo := max(0, len(c.items)-groSearch)
		for i := len(c.items) - 1; i >= lo; i-- {
			switch c.join(&c.items[i], p, &it) {
			case joined:
				return true
			case starved:
				return false
			}
		}
	}
	c.items = append(c.items, it)
	return true
}

// What join did.
const (
	apart   = iota // p does not continue the item
	joined         // p was appended
	starved        // p continues the item, but no buffer is free to join them in
)

// tcpCandidate says whether p is a TCP segment with payload that may be
// joined to or joined by others, and fills in what it.
func tcpCandidate(p []byte, it *groItem) bool {
	if len(p) < 40 {
		return false
	}
	var acc uint64
	switch p[0] >> 4 {
	case 4:
		// No options, not a fragment, the length right, the header sound.
		if p[0] != 0x45 || p[9] != 6 || binary.BigEndian.Uint16(p[6:8])&0x3fff != 0 ||
			int(binary.BigEndian.Uint16(p[2:4])) != len(p) || csumFold(csumAdd(0, p[:20])) != 0xffff {
			return false
		}
		it.ipLen = 20
		acc = pseudoSum(p[12:16], p[16:20], 6, len(p)-20)
	case 6:
		if len(p) < 60 || p[6] != 6 || int(binary.BigEndian.Uint16(p[4:6]))+40 != len(p) {
			return false
		}
		it.ipLen, it.v6 = 40, true
		acc = pseudoSum(p[8:24], p[24:40], 6, len(p)-40)
	default:
		return false
	}
	th := p[it.ipLen:]
	doff := int(th[12]>>4) * 4
	it.hdrLen = it.ipLen + doff
	if doff < 20 || it.hdrLen >= len(p) || th[13]&^tcpPSH != tcpACK {
		return false
	}
	if csumFold(csumAdd(acc, th)) != 0xffff {
		return false // the kernel will refuse it; joined, it would not
	}
	it.tcp, it.segs = true, 1
	it.gsoSize = len(p) - it.hdrLen
	it.nextSeq = binary.BigEndian.Uint32(th[4:8]) + uint32(it.gsoSize)
	it.closed = th[13]&tcpPSH != 0
	return true
}

// join appends the segment p (described by in) to to if it continues it.
func (c *coalescer) join(to *groItem, p []byte, in *groItem) int {
	if !to.tcp || to.closed || to.v6 != in.v6 || to.hdrLen != in.hdrLen || in.gsoSize > to.gsoSize ||
		len(to.pkt)+in.gsoSize > groMax {
		return apart
	}
	q := to.pkt
	th, qh := p[in.ipLen:], q[to.ipLen:]
	if binary.BigEndian.Uint32(th[4:8]) != to.nextSeq ||
		!bytes.Equal(th[0:4], qh[0:4]) || // ports
		!bytes.Equal(th[8:12], qh[8:12]) || // acknowledgement
		!bytes.Equal(th[20:in.hdrLen-in.ipLen], qh[20:to.hdrLen-to.ipLen]) { // options
		return apart
	}
	if in.v6 {
		if !bytes.Equal(p[0:4], q[0:4]) || p[7] != q[7] || !bytes.Equal(p[8:40], q[8:40]) {
			return apart
		}
	} else if p[1] != q[1] || p[8] != q[8] || p[6]&0x40 != q[6]&0x40 || !bytes.Equal(p[12:20], q[12:20]) {
		return apart
	}
	if to.buf == 0 {
		if c.used == len(c.bufs) {
			if len(c.bufs) == 0 {
				return apart // joining is off
			}
			return starved
		}
		b := c.bufs[c.used]
		c.used++
		to.buf = c.used
		to.pkt = b[:copy(b, q)]
		q = to.pkt
		qh = q[to.ipLen:]
	}
	n := len(q)
	to.pkt = q[:n+in.gsoSize]
	copy(to.pkt[n:], p[in.hdrLen:])
	copy(qh[14:16], th[14:16]) // the latest window
	qh[13] |= th[13] & tcpPSH
	to.segs++
	to.nextSeq += uint32(in.gsoSize)
	to.closed = in.closed || in.gsoSize < to.gsoSize
	return joined
}

// finish fixes the headers of a joined item and returns the vnet header
// to write before it: GSO with the checksum to complete, so the kernel
// takes the checksum as sound, as for a packet GRO made.
func (it *groItem) finish() vnetHdr {
	if it.segs < 2 {
		return vnetHdr{}
	}
	p := it.pkt
	var acc uint64
	if it.v6 {
		binary.BigEndian.PutUint16(p[4:6], uint16(len(p)-40))
		acc = pseudoSum(p[8:24], p[24:40], 6, len(p)-40)
	} else {
		binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
		ipv4HeaderChecksum(p[:20])
		acc = pseudoSum(p[12:16], p[16:20], 6, len(p)-20)
	}
	// CHECKSUM_PARTIAL: the field holds the pseudo-header sum, uncomplemented.
	binary.BigEndian.PutUint16(p[it.ipLen+16:], csumFold(acc))
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, hdrLen: uint16(it.hdrLen),
		gsoSize: uint16(it.gsoSize), csumStart: uint16(it.ipLen), csumOffset: 16}
	if it.v6 {
		h.gsoType = vnetGSOTCPv6
	}
	return h
}
