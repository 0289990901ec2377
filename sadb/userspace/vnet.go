package userspace

import "encoding/binary"

// vnetHdr is struct virtio_net_hdr (the legacy 10-octet form, in host byte
// order), which a TUN device opened with IFF_VNET_HDR puts before every
// packet in both directions. It is how the kernel hands over a TCP
// super-segment of up to 64 KiB to be cut at gsoSize (GSO), and how a
// coalesced one is handed back (the reverse, as GRO would have made it).
type vnetHdr struct {
	flags      uint8
	gsoType    uint8
	hdrLen     uint16
	gsoSize    uint16
	csumStart  uint16
	csumOffset uint16
}

const vnetHdrLen = 10

// Flags and GSO types of include/uapi/linux/virtio_net.h.
const (
	vnetFlagNeedsCsum = 1 // the checksum at csumStart+csumOffset is to be completed
	vnetGSONone       = 0
	vnetGSOTCPv4      = 1
	vnetGSOTCPv6      = 4
)

func (h *vnetHdr) decode(b []byte) {
	h.flags, h.gsoType = b[0], b[1]
	h.hdrLen = binary.NativeEndian.Uint16(b[2:])
	h.gsoSize = binary.NativeEndian.Uint16(b[4:])
	h.csumStart = binary.NativeEndian.Uint16(b[6:])
	h.csumOffset = binary.NativeEndian.Uint16(b[8:])
}

func (h *vnetHdr) encode(b []byte) {
	b[0], b[1] = h.flags, h.gsoType
	binary.NativeEndian.PutUint16(b[2:], h.hdrLen)
	binary.NativeEndian.PutUint16(b[4:], h.gsoSize)
	binary.NativeEndian.PutUint16(b[6:], h.csumStart)
	binary.NativeEndian.PutUint16(b[8:], h.csumOffset)
}
