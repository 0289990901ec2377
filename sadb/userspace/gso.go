package userspace

import (
	"encoding/binary"
	"errors"
)

// TCP header flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpPSH = 0x08
	tcpACK = 0x10
	tcpURG = 0x20
	tcpECE = 0x40
	tcpCWR = 0x80
)

// errBadOffload is what the TUN reader counts as malformed: a vnet header
// or GSO packet that does not describe a packet this splitter can cut.
var errBadOffload = errors.New("bad vnet header or GSO packet")

// completeChecksum finishes the checksum the kernel left partial
// (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field at csumStart+csumOffset holds
// the pseudo-header sum, and the sum runs from csumStart to the end.
func completeChecksum(pkt []byte, h *vnetHdr) error {
	start, field := int(h.csumStart), int(h.csumStart)+int(h.csumOffset)
	if start >= len(pkt) || field+2 > len(pkt) {
		return errBadOffload
	}
	c := ^csumFold(csumAdd(0, pkt[start:]))
	if c == 0 {
		c = 0xffff // UDP sends 0 as all ones (RFC 768); TCP reads both alike
	}
	binary.BigEndian.PutUint16(pkt[field:], c)
	return nil
}

// segmenter cuts a TCP super-segment (the kernel's TSO output) into the
// segments the kernel would have sent: every one a copy of the IP and TCP
// headers with its share of the payload, the IPv4 total length, ID and
// header checksum, the IPv6 payload length, the TCP sequence number,
// flags and checksum made right for it.
type segmenter struct {
	pkt    []byte
	ipLen  int // IP header
	hdrLen int // IP and TCP headers
	mss    int
	v6     bool
	off    int // of the next segment's payload in pkt
	i      int // the next segment's index
	seq    uint32
	id     uint16
}

// init checks pkt against its vnet header h; a segment (headers and
// payload) must not exceed maxSeg octets.
func (s *segmenter) init(pkt []byte, h *vnetHdr, maxSeg int) error {
	*s = segmenter{pkt: pkt, mss: int(h.gsoSize)}
	if len(pkt) < 1 || s.mss == 0 || h.flags&vnetFlagNeedsCsum == 0 {
		return errBadOffload
	}
	switch h.gsoType {
	case vnetGSOTCPv4:
		if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 6 {
			return errBadOffload
		}
		s.ipLen = int(pkt[0]&0xf) * 4
		if s.ipLen < 20 || binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 { // MF or a fragment offset
			return errBadOffload
		}
		s.id = binary.BigEndian.Uint16(pkt[4:6])
	case vnetGSOTCPv6:
		// Extension headers are not walked: the kernel's TCP puts none.
		if len(pkt) < 40 || pkt[0]>>4 != 6 || pkt[6] != 6 {
			return errBadOffload
		}
		s.ipLen, s.v6 = 40, true
	default:
		return errBadOffload
	}
	if int(h.csumStart) != s.ipLen || h.csumOffset != 16 || len(pkt) < s.ipLen+20 {
		return errBadOffload
	}
	doff := int(pkt[s.ipLen+12]>>4) * 4
	s.hdrLen = s.ipLen + doff
	if doff < 20 || len(pkt) < s.hdrLen || s.hdrLen+s.mss > maxSeg {
		return errBadOffload
	}
	s.off = s.hdrLen
	s.seq = binary.BigEndian.Uint32(pkt[s.ipLen+4:])
	return nil
}

// done says whether every segment has been made. A super-segment without
// payload makes one segment, its headers.
func (s *segmenter) done() bool { return s.off >= len(s.pkt) && s.i > 0 }

// segments is how many segments the packet makes.
func (s *segmenter) segments() int {
	n := (len(s.pkt) - s.hdrLen + s.mss - 1) / s.mss
	return max(n, 1)
}

// next writes the next segment into dst, which must hold hdrLen+mss
// octets, and returns its length.
func (s *segmenter) next(dst []byte) int {
	n := min(s.mss, len(s.pkt)-s.off)
	copy(dst, s.pkt[:s.hdrLen])
	copy(dst[s.hdrLen:], s.pkt[s.off:s.off+n])
	total := s.hdrLen + n
	seg := dst[:total]
	last := s.off+n >= len(s.pkt)
	if s.v6 {
		binary.BigEndian.PutUint16(seg[4:6], uint16(total-40))
	} else {
		binary.BigEndian.PutUint16(seg[2:4], uint16(total))
		binary.BigEndian.PutUint16(seg[4:6], s.id+uint16(s.i))
		ipv4HeaderChecksum(seg[:s.ipLen])
	}
	th := seg[s.ipLen:]
	binary.BigEndian.PutUint32(th[4:8], s.seq+uint32(s.off-s.hdrLen))
	if !last {
		th[13] &^= tcpFIN | tcpPSH // they belong to the last segment
	}
	if s.i > 0 {
		th[13] &^= tcpCWR // it belongs to the first
	}
	th[16], th[17] = 0, 0
	var acc uint64
	if s.v6 {
		acc = pseudoSum(seg[8:24], seg[24:40], 6, len(th))
	} else {
		acc = pseudoSum(seg[12:16], seg[16:20], 6, len(th))
	}
	binary.BigEndian.PutUint16(th[16:18], ^csumFold(csumAdd(acc, th)))
	s.off += n
	s.i++
	return total
}
