package xfrm

// The kernel's XFRM netlink ABI (include/uapi/linux/xfrm.h) as byte
// layouts. Netlink integers are in host order (binary.NativeEndian); ports
// and SPIs are in network order, as the kernel keeps them. Sizes and
// offsets are those of the 64-bit ABIs (amd64, arm64, riscv64, ppc64le,
// s390x), where __u64 is 8-aligned: a 32-bit process on a 64-bit kernel
// needs the kernel's XFRM compat layer, which this package does not
// target.

import (
	"encoding/binary"
	"net/netip"
)

var ne = binary.NativeEndian

// Netlink message header and flags (linux/netlink.h).
const (
	nlmsgHdrLen = 16

	nlmNoop    = 0x1
	nlmError   = 0x2
	nlmDone    = 0x3
	nlmOverrun = 0x4

	nlmFRequest = 0x1
	nlmFMulti   = 0x2
	nlmFAck     = 0x4
	nlmFRoot    = 0x100
	nlmFMatch   = 0x200
	nlmFDump    = nlmFRoot | nlmFMatch
	nlmFCapped  = 0x100 // in an NLMSG_ERROR: the request was not echoed
	nlmFAckTLVs = 0x200 // in an NLMSG_ERROR: extended-ack attributes follow

	nlmsgerrAttrMsg = 1 // NLMSGERR_ATTR_MSG: the kernel's error string
)

// XFRM message types (XFRM_MSG_*).
const (
	msgNewSA        = 0x10
	msgDelSA        = 0x11
	msgGetSA        = 0x12
	msgNewPolicy    = 0x13
	msgDelPolicy    = 0x14
	msgGetPolicy    = 0x15
	msgAcquire      = 0x17
	msgExpire       = 0x18
	msgUpdPolicy    = 0x19
	msgPolicyExpire = 0x1b
)

// XFRM attribute types (XFRMA_*).
const (
	attrAlgAuth      = 1
	attrAlgCrypt     = 2
	attrEncap        = 4
	attrTmpl         = 5
	attrPolicyType   = 16
	attrAlgAEAD      = 18
	attrAlgAuthTrunc = 20
	attrMark         = 21
	attrReplayESN    = 23
	attrIfID         = 31
)

// Multicast groups (XFRMNLGRP_*), numbered from 1.
const (
	grpAcquire = 1
	grpExpire  = 2
)

// Constants of the structures.
const (
	afInet  = 2
	afInet6 = 10

	modeTransport = 0
	modeTunnel    = 1

	dirIn  = 0
	dirOut = 1
	dirFwd = 2

	actionAllow = 0
	actionBlock = 1

	stateAFUnspec = 32  // XFRM_STATE_AF_UNSPEC: inner family may differ from outer
	stateESN      = 128 // XFRM_STATE_ESN

	encapESPInUDP = 2 // UDP_ENCAP_ESPINUDP (RFC 3948)

	xfrmInf = ^uint64(0) // XFRM_INF: no limit
)

// Structure sizes.
const (
	sizeSelector   = 56  // struct xfrm_selector
	sizeLftCfg     = 64  // struct xfrm_lifetime_cfg
	sizeUsersaInfo = 224 // struct xfrm_usersa_info
	sizeUsersaID   = 24  // struct xfrm_usersa_id
	sizePolicyInfo = 168 // struct xfrm_userpolicy_info
	sizePolicyID   = 64  // struct xfrm_userpolicy_id
	sizeUserTmpl   = 64  // struct xfrm_user_tmpl
	sizeEncapTmpl  = 24  // struct xfrm_encap_tmpl
	sizeAlgo       = 68  // struct xfrm_algo without its key
	sizeAlgoAuth   = 72  // struct xfrm_algo_auth without its key
	sizeAlgoAEAD   = 72  // struct xfrm_algo_aead without its key
	sizeReplayESN  = 24  // struct xfrm_replay_state_esn without its bitmap
	sizeAcquire    = 280 // struct xfrm_user_acquire
	sizeExpire     = 232 // struct xfrm_user_expire
	algNameLen     = 64
)

// Offsets inside struct xfrm_usersa_info.
const (
	saOffSel     = 0
	saOffID      = 56 // xfrm_id: daddr[16], spi (be32) at +16, proto at +20
	saOffSaddr   = 80
	saOffLft     = 96
	saOffCurlft  = 160 // xfrm_lifetime_cur: bytes, packets, add_time, use_time
	saOffSeq     = 204
	saOffReqID   = 208
	saOffFamily  = 212
	saOffMode    = 214
	saOffReplayW = 215
	saOffFlags   = 216
)

// Offsets inside struct xfrm_userpolicy_info.
const (
	polOffSel      = 0
	polOffLft      = 56
	polOffPriority = 152
	polOffIndex    = 156
	polOffDir      = 160
	polOffAction   = 161
	polOffFlags    = 162
	polOffShare    = 163
)

// selector is struct xfrm_selector, decoded.
type selector struct {
	daddr, saddr                       [16]byte
	dport, dportMask, sport, sportMask uint16
	family                             uint16
	prefixlenD, prefixlenS, proto      uint8
	ifindex                            int32
	user                               uint32
}

func (s *selector) put(b []byte) {
	copy(b[0:16], s.daddr[:])
	copy(b[16:32], s.saddr[:])
	binary.BigEndian.PutUint16(b[32:], s.dport)
	binary.BigEndian.PutUint16(b[34:], s.dportMask)
	binary.BigEndian.PutUint16(b[36:], s.sport)
	binary.BigEndian.PutUint16(b[38:], s.sportMask)
	ne.PutUint16(b[40:], s.family)
	b[42] = s.prefixlenD
	b[43] = s.prefixlenS
	b[44] = s.proto
	ne.PutUint32(b[48:], uint32(s.ifindex))
	ne.PutUint32(b[52:], s.user)
}

func getSelector(b []byte) selector {
	var s selector
	copy(s.daddr[:], b[0:16])
	copy(s.saddr[:], b[16:32])
	s.dport = binary.BigEndian.Uint16(b[32:])
	s.dportMask = binary.BigEndian.Uint16(b[34:])
	s.sport = binary.BigEndian.Uint16(b[36:])
	s.sportMask = binary.BigEndian.Uint16(b[38:])
	s.family = ne.Uint16(b[40:])
	s.prefixlenD = b[42]
	s.prefixlenS = b[43]
	s.proto = b[44]
	s.ifindex = int32(ne.Uint32(b[48:]))
	s.user = ne.Uint32(b[52:])
	return s
}

// lifetime is struct xfrm_lifetime_cfg.
type lifetime struct {
	softBytes, hardBytes, softPackets, hardPackets uint64
	softAdd, hardAdd, softUse, hardUse             uint64
}

// unlimited is a lifetime without limits.
func unlimited() lifetime {
	return lifetime{softBytes: xfrmInf, hardBytes: xfrmInf, softPackets: xfrmInf, hardPackets: xfrmInf}
}

func (l *lifetime) put(b []byte) {
	for i, v := range []uint64{l.softBytes, l.hardBytes, l.softPackets, l.hardPackets, l.softAdd, l.hardAdd, l.softUse, l.hardUse} {
		ne.PutUint64(b[8*i:], v)
	}
}

func getLifetime(b []byte) lifetime {
	u := func(i int) uint64 { return ne.Uint64(b[8*i:]) }
	return lifetime{u(0), u(1), u(2), u(3), u(4), u(5), u(6), u(7)}
}

// addrBytes is an xfrm_address_t: 4 octets of IPv4 or 16 of IPv6, zero-filled.
func addrBytes(a netip.Addr) [16]byte {
	var x [16]byte
	if a.Is4() {
		v := a.As4()
		copy(x[:], v[:])
	} else if a.IsValid() {
		x = a.As16()
	}
	return x
}

// addrFrom decodes an xfrm_address_t of the family.
func addrFrom(b []byte, family uint16) netip.Addr {
	switch family {
	case afInet:
		return netip.AddrFrom4([4]byte(b[:4]))
	case afInet6:
		return netip.AddrFrom16([16]byte(b[:16]))
	}
	return netip.Addr{}
}

// familyOf is the AF_ constant of an address (0 when invalid).
func familyOf(a netip.Addr) uint16 {
	switch {
	case a.Is4():
		return afInet
	case a.IsValid():
		return afInet6
	}
	return 0
}

// align4 rounds n up to the netlink alignment.
func align4(n int) int { return (n + 3) &^ 3 }
