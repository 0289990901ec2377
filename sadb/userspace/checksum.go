package userspace

import (
	"encoding/binary"
	"math/bits"
)

// The Internet checksum (RFC 1071) of the segmentation and coalescing
// paths: every TCP segment they make or accept is summed once, so the sum
// runs eight octets per step with end-around carries (RFC 1071 §2(A), the
// sum is independent of the word size) instead of two.

// csumAdd returns the ones' complement sum of b added to acc, unfolded.
func csumAdd(acc uint64, b []byte) uint64 {
	var carry uint64
	for len(b) >= 32 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[0:8]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[8:16]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[16:24]), carry)
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b[24:32]), carry)
		b = b[32:]
	}
	for len(b) >= 8 {
		acc, carry = bits.Add64(acc, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	acc, carry = bits.Add64(acc, carry, 0)
	acc += carry // cannot carry again: acc wrapped to 0
	if len(b) >= 4 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint32(b)), 0)
		acc += carry
		b = b[4:]
	}
	if len(b) >= 2 {
		acc, carry = bits.Add64(acc, uint64(binary.BigEndian.Uint16(b)), 0)
		acc += carry
		b = b[2:]
	}
	if len(b) == 1 {
		acc, carry = bits.Add64(acc, uint64(b[0])<<8, 0)
		acc += carry
	}
	return acc
}

// csumFold folds an unfolded sum to 16 bits (not complemented).
func csumFold(acc uint64) uint16 {
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>32 + acc&0xffffffff
	acc = acc>>16 + acc&0xffff
	acc = acc>>16 + acc&0xffff
	return uint16(acc)
}

// pseudoSum is the unfolded sum of the IPv4 or IPv6 pseudo-header (RFC 793
// §3.1, RFC 8200 §8.1) of an upper-layer packet of length n.
func pseudoSum(src, dst []byte, proto uint8, n int) uint64 {
	acc := csumAdd(0, src)
	acc = csumAdd(acc, dst)
	return acc + uint64(proto) + uint64(n)
}

// ipv4HeaderChecksum sets the header checksum of the IPv4 header h.
func ipv4HeaderChecksum(h []byte) {
	h[10], h[11] = 0, 0
	binary.BigEndian.PutUint16(h[10:12], ^csumFold(csumAdd(0, h)))
}
