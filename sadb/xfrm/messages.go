package xfrm

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/iked/iked/sadb"
)

// request is one netlink request before framing: its type, flags and the
// body (the fixed structure followed by attributes).
type request struct {
	typ   uint16
	flags uint16
	body  []byte
}

// marshal frames the request with a netlink header.
func (r request) marshal(seq, pid uint32) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(r.body))
	ne.PutUint32(b[0:], uint32(nlmsgHdrLen+len(r.body)))
	ne.PutUint16(b[4:], r.typ)
	ne.PutUint16(b[6:], r.flags)
	ne.PutUint32(b[8:], seq)
	ne.PutUint32(b[12:], pid)
	return append(b, r.body...)
}

// appendAttr appends a netlink attribute, padded to 4 octets.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	n := 4 + len(data)
	var h [4]byte
	ne.PutUint16(h[0:], uint16(n))
	ne.PutUint16(h[2:], typ)
	b = append(b, h[:]...)
	b = append(b, data...)
	return append(b, make([]byte, align4(n)-n)...)
}

// parseAttrs splits attributes; malformed trailing bytes end the list.
func parseAttrs(b []byte) map[uint16][]byte {
	attrs := map[uint16][]byte{}
	for len(b) >= 4 {
		n := int(ne.Uint16(b[0:]))
		typ := ne.Uint16(b[2:]) & 0x3fff // drop NLA_F_NESTED, NLA_F_NET_BYTEORDER
		if n < 4 || n > len(b) {
			break
		}
		if _, dup := attrs[typ]; !dup {
			attrs[typ] = b[4:n]
		}
		if align4(n) >= len(b) {
			break
		}
		b = b[align4(n):]
	}
	return attrs
}

// algName is a NUL-padded char[64] algorithm name.
func algName(name string) []byte {
	b := make([]byte, algNameLen)
	copy(b, name)
	return b
}

// DefaultReplayWindow is the anti-replay window, in packets, of SAs whose
// ReplayWindow is 0 (strongSwan's default).
const DefaultReplayWindow = 32

// maxReplayWindow is the widest window the kernel takes: a bitmap of
// XFRMA_REPLAY_ESN_MAX/8/4 = 128 words.
const maxReplayWindow = 4096

// seconds rounds a lifetime up to whole seconds; zero stays zero (no limit).
func seconds(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + time.Second - 1) / time.Second)
}

// bytesLimit maps a byte limit to XFRM's, where XFRM_INF is none.
func bytesLimit(n uint64) uint64 {
	if n == 0 {
		return xfrmInf
	}
	return n
}

// saLifetime is the SA's lifetime with the ownership marker as its hard
// packet limit (see marker).
func saLifetime(l sadb.Lifetime, marker uint64) lifetime {
	lft := unlimited()
	lft.softBytes = bytesLimit(l.SoftBytes)
	lft.hardBytes = bytesLimit(l.HardBytes)
	lft.hardPackets = marker
	lft.softAdd = seconds(l.SoftTime)
	lft.hardAdd = seconds(l.HardTime)
	return lft
}

// hostSelector selects the traffic between two hosts, any protocol.
func hostSelector(src, dst netip.Addr) selector {
	bits := uint8(src.BitLen())
	return selector{saddr: addrBytes(src), daddr: addrBytes(dst), family: familyOf(src), prefixlenS: bits, prefixlenD: bits}
}

// newSA builds the XFRM_MSG_NEWSA request that installs sa. Its body holds
// the keys: the caller clears it after use; no other copy is left.
func newSA(sa *sadb.SA, marker uint64, defaultWindow uint32) (request, error) {
	if !sa.Src.IsValid() || !sa.Dst.IsValid() || sa.Src.Is4() != sa.Dst.Is4() {
		return request{}, fmt.Errorf("xfrm: SA addresses %s -> %s", sa.Src, sa.Dst)
	}
	if sa.Protocol != sadb.ESP && sa.Protocol != sadb.AH {
		return request{}, fmt.Errorf("xfrm: SA protocol %s", sa.Protocol)
	}
	if sa.SPI == 0 {
		return request{}, errors.New("xfrm: SA with SPI 0")
	}
	family := familyOf(sa.Dst)
	window := sa.ReplayWindow
	if window == 0 {
		window = defaultWindow
	}
	if window > maxReplayWindow {
		return request{}, fmt.Errorf("xfrm: replay window %d above the kernel's %d", window, maxReplayWindow)
	}
	// Room for every attribute, so that appending never moves (and
	// leaves behind) a copy of the keys.
	info := make([]byte, sizeUsersaInfo, sizeUsersaInfo+512+sizeReplayESN+4*int((window+31)/32))
	var sel selector
	var flags uint8
	mode := uint8(modeTunnel)
	if sa.Mode == sadb.Transport {
		// The SA carries only the two hosts' traffic; protocol and ports
		// stay with the policies, as strongSwan does, so that one SA
		// serves every policy of its Child SA.
		mode = modeTransport
		sel = hostSelector(sa.Src, sa.Dst)
	} else {
		// A tunnel SA's selector stays empty, of no family: the policies
		// select its traffic, which may be of the other family.
		flags |= stateAFUnspec
	}
	sel.put(info[saOffSel:])
	daddr := addrBytes(sa.Dst)
	copy(info[saOffID:], daddr[:])
	info[saOffID+16] = byte(sa.SPI >> 24)
	info[saOffID+17] = byte(sa.SPI >> 16)
	info[saOffID+18] = byte(sa.SPI >> 8)
	info[saOffID+19] = byte(sa.SPI)
	info[saOffID+20] = uint8(sa.Protocol)
	saddr := addrBytes(sa.Src)
	copy(info[saOffSaddr:], saddr[:])
	lft := saLifetime(sa.Lifetime, marker)
	lft.put(info[saOffLft:])
	ne.PutUint32(info[saOffReqID:], sa.ReqID)
	ne.PutUint16(info[saOffFamily:], family)
	info[saOffMode] = mode

	// The legacy replay state holds 32 packets in a u8 field; a wider
	// window, or ESN, needs struct xfrm_replay_state_esn, and then the
	// kernel wants the legacy field zero.
	useESNAttr := sa.ESN || window > 32
	if !useESNAttr {
		info[saOffReplayW] = uint8(window)
	}
	if sa.ESN {
		flags |= stateESN
	}
	info[saOffFlags] = flags
	b := info

	switch sa.Protocol {
	case sadb.ESP:
		alg, err := encrFor(sa.EncrID, sa.EncrKeyBits, sa.EncrKey)
		if err != nil {
			return request{}, err
		}
		if alg.aead {
			if sa.IntegID != 0 {
				return request{}, fmt.Errorf("xfrm: %s takes no integrity transform (got %d)", alg.name, sa.IntegID)
			}
			a := make([]byte, sizeAlgoAEAD, sizeAlgoAEAD+len(sa.EncrKey))
			copy(a, algName(alg.name))
			ne.PutUint32(a[64:], uint32(len(sa.EncrKey)*8))
			ne.PutUint32(a[68:], alg.icv)
			a = append(a, sa.EncrKey...)
			b = appendAttr(b, attrAlgAEAD, a)
			clear(a)
		} else {
			a := make([]byte, sizeAlgo, sizeAlgo+len(sa.EncrKey))
			copy(a, algName(alg.name))
			ne.PutUint32(a[64:], uint32(len(sa.EncrKey)*8))
			a = append(a, sa.EncrKey...)
			b = appendAttr(b, attrAlgCrypt, a)
			clear(a)
			if sa.IntegID != 0 {
				auth, err := integAttr(sa)
				if err != nil {
					return request{}, err
				}
				b = appendAttr(b, attrAlgAuthTrunc, auth)
				clear(auth)
			}
		}
	case sadb.AH:
		if sa.EncrID != 0 {
			return request{}, fmt.Errorf("xfrm: AH SA with encryption transform %d", sa.EncrID)
		}
		if sa.IntegID == 0 {
			return request{}, errors.New("xfrm: AH SA without an integrity transform")
		}
		auth, err := integAttr(sa)
		if err != nil {
			return request{}, err
		}
		b = appendAttr(b, attrAlgAuthTrunc, auth)
		clear(auth)
	}

	if sa.EncapSrcPort != 0 || sa.EncapDstPort != 0 {
		if sa.Protocol != sadb.ESP {
			return request{}, errors.New("xfrm: UDP encapsulation of an AH SA")
		}
		e := make([]byte, sizeEncapTmpl)
		ne.PutUint16(e[0:], encapESPInUDP)
		e[2], e[3] = byte(sa.EncapSrcPort>>8), byte(sa.EncapSrcPort)
		e[4], e[5] = byte(sa.EncapDstPort>>8), byte(sa.EncapDstPort)
		b = appendAttr(b, attrEncap, e)
	}
	if useESNAttr {
		b = appendAttr(b, attrReplayESN, replayESN(window))
	}
	if sa.IfID != 0 {
		b = appendAttr(b, attrIfID, u32(sa.IfID))
	}
	return request{typ: msgNewSA, flags: nlmFRequest | nlmFAck, body: b}, nil
}

// integAttr is the XFRMA_ALG_AUTH_TRUNC of sa's integrity transform.
func integAttr(sa *sadb.SA) ([]byte, error) {
	alg, err := integFor(sa.IntegID, sa.IntegKey)
	if err != nil {
		return nil, err
	}
	a := make([]byte, sizeAlgoAuth, sizeAlgoAuth+len(sa.IntegKey))
	copy(a, algName(alg.name))
	ne.PutUint32(a[64:], alg.keyBits)
	ne.PutUint32(a[68:], alg.trunc)
	return append(a, sa.IntegKey...), nil
}

// replayESN is struct xfrm_replay_state_esn for a window, with an empty bitmap.
func replayESN(window uint32) []byte {
	words := (window + 31) / 32
	r := make([]byte, sizeReplayESN+4*int(words))
	ne.PutUint32(r[0:], words)   // bmp_len
	ne.PutUint32(r[20:], window) // replay_window
	return r
}

// usersaID is struct xfrm_usersa_id.
func usersaID(id sadb.ID) ([]byte, error) {
	if !id.Dst.IsValid() {
		return nil, errors.New("xfrm: SA ID without destination")
	}
	b := make([]byte, sizeUsersaID)
	d := addrBytes(id.Dst)
	copy(b, d[:])
	b[16], b[17], b[18], b[19] = byte(id.SPI>>24), byte(id.SPI>>16), byte(id.SPI>>8), byte(id.SPI)
	ne.PutUint16(b[20:], familyOf(id.Dst))
	b[22] = uint8(id.Protocol)
	return b, nil
}

// saIDRequest is XFRM_MSG_GETSA or XFRM_MSG_DELSA of one SA.
func saIDRequest(typ uint16, id sadb.ID) (request, error) {
	b, err := usersaID(id)
	if err != nil {
		return request{}, err
	}
	flags := uint16(nlmFRequest)
	if typ != msgGetSA {
		flags |= nlmFAck
	}
	return request{typ: typ, flags: flags, body: b}, nil
}

// toSelector converts a sadb.Selector.
func toSelector(s sadb.Selector) (selector, error) {
	if !s.Src.IsValid() || !s.Dst.IsValid() || s.Src.Addr().Is4() != s.Dst.Addr().Is4() {
		return selector{}, fmt.Errorf("xfrm: selector %s: want two prefixes of one family", s)
	}
	sel := selector{
		saddr:      addrBytes(s.Src.Addr()),
		daddr:      addrBytes(s.Dst.Addr()),
		family:     familyOf(s.Src.Addr()),
		prefixlenS: uint8(s.Src.Bits()),
		prefixlenD: uint8(s.Dst.Bits()),
		proto:      s.Proto,
		sport:      s.SrcPort,
		dport:      s.DstPort,
	}
	if s.SrcPort != 0 {
		sel.sportMask = 0xffff
	}
	if s.DstPort != 0 {
		sel.dportMask = 0xffff
	}
	return sel, nil
}

// fromSelector converts a kernel selector; one of no family has zero prefixes.
func fromSelector(s selector) sadb.Selector {
	out := sadb.Selector{Proto: s.proto}
	if src := addrFrom(s.saddr[:], s.family); src.IsValid() {
		out.Src = netip.PrefixFrom(src, int(s.prefixlenS))
		out.Dst = netip.PrefixFrom(addrFrom(s.daddr[:], s.family), int(s.prefixlenD))
	}
	if s.sportMask != 0 {
		out.SrcPort = s.sport
	}
	if s.dportMask != 0 {
		out.DstPort = s.dport
	}
	return out
}

var kernelDir = [...]uint8{sadb.In: dirIn, sadb.Out: dirOut, sadb.Fwd: dirFwd}

// fromKernelDir maps XFRM_POLICY_IN/OUT/FWD to a sadb.Direction.
func fromKernelDir(d uint8) (sadb.Direction, bool) {
	switch d {
	case dirIn:
		return sadb.In, true
	case dirOut:
		return sadb.Out, true
	case dirFwd:
		return sadb.Fwd, true
	}
	return 0, false
}

// newPolicy builds the XFRM_MSG_NEWPOLICY (or, update, XFRM_MSG_UPDPOLICY)
// request that installs p.
func newPolicy(p *sadb.Policy, marker uint64, update bool) (request, error) {
	sel, err := toSelector(p.Selector)
	if err != nil {
		return request{}, err
	}
	if int(p.Direction) >= len(kernelDir) {
		return request{}, fmt.Errorf("xfrm: policy direction %d", p.Direction)
	}
	info := make([]byte, sizePolicyInfo)
	sel.put(info[polOffSel:])
	lft := unlimited()
	lft.hardPackets = marker
	lft.put(info[polOffLft:])
	ne.PutUint32(info[polOffPriority:], p.Priority)
	info[polOffDir] = kernelDir[p.Direction]
	b := info
	switch p.Action {
	case sadb.Protect:
		info[polOffAction] = actionAllow
		t, err := userTmpl(p, sel.family)
		if err != nil {
			return request{}, err
		}
		b = appendAttr(b, attrTmpl, t)
	case sadb.Pass:
		info[polOffAction] = actionAllow
	case sadb.Drop:
		info[polOffAction] = actionBlock
	default:
		return request{}, fmt.Errorf("xfrm: policy action %d", p.Action)
	}
	if p.IfID != 0 {
		b = appendAttr(b, attrIfID, u32(p.IfID))
	}
	typ := uint16(msgNewPolicy)
	if update {
		typ = msgUpdPolicy
	}
	return request{typ: typ, flags: nlmFRequest | nlmFAck, body: b}, nil
}

// userTmpl is the struct xfrm_user_tmpl of a Protect policy.
func userTmpl(p *sadb.Policy, selFamily uint16) ([]byte, error) {
	if p.Protocol != sadb.ESP && p.Protocol != sadb.AH {
		return nil, fmt.Errorf("xfrm: policy protocol %s", p.Protocol)
	}
	t := make([]byte, sizeUserTmpl)
	family := selFamily
	mode := uint8(modeTransport)
	if p.Mode == sadb.Tunnel {
		if !p.TunnelSrc.IsValid() || !p.TunnelDst.IsValid() || p.TunnelSrc.Is4() != p.TunnelDst.Is4() {
			return nil, fmt.Errorf("xfrm: tunnel policy with outer addresses %s -> %s", p.TunnelSrc, p.TunnelDst)
		}
		mode = modeTunnel
		family = familyOf(p.TunnelDst)
		d, s := addrBytes(p.TunnelDst), addrBytes(p.TunnelSrc)
		copy(t[0:16], d[:])  // id.daddr
		copy(t[28:44], s[:]) // saddr
	}
	t[20] = uint8(p.Protocol) // id.proto; id.spi stays 0: any SA
	ne.PutUint16(t[24:], family)
	ne.PutUint32(t[44:], p.ReqID)
	t[48] = mode
	// t[49] share: XFRM_SHARE_ANY
	if p.Level == sadb.Optional {
		t[50] = 1 // optional: "level use"
	}
	ne.PutUint32(t[52:], ^uint32(0)) // aalgos: any
	ne.PutUint32(t[56:], ^uint32(0)) // ealgos
	ne.PutUint32(t[60:], ^uint32(0)) // calgos
	return t, nil
}

// policyIDRequest is XFRM_MSG_GETPOLICY or XFRM_MSG_DELPOLICY by selector
// and direction, or by index when index is nonzero.
func policyIDRequest(typ uint16, id sadb.PolicyID, index uint32) (request, error) {
	b := make([]byte, sizePolicyID)
	if index == 0 {
		sel, err := toSelector(id.Selector)
		if err != nil {
			return request{}, err
		}
		sel.put(b)
	}
	if int(id.Direction) >= len(kernelDir) {
		return request{}, fmt.Errorf("xfrm: policy direction %d", id.Direction)
	}
	ne.PutUint32(b[56:], index)
	b[60] = kernelDir[id.Direction]
	if id.IfID != 0 {
		// The kernel finds a policy, by selector or by index, only with
		// the interface ID it was added with.
		b = appendAttr(b, attrIfID, u32(id.IfID))
	}
	flags := uint16(nlmFRequest)
	if typ != msgGetPolicy {
		flags |= nlmFAck
	}
	return request{typ: typ, flags: flags, body: b}, nil
}

// dumpRequest asks for every SA (msgGetSA) or policy (msgGetPolicy).
func dumpRequest(typ uint16) request {
	return request{typ: typ, flags: nlmFRequest | nlmFDump}
}

// stateInfo is what the backend reads of a struct xfrm_usersa_info.
type stateInfo struct {
	id       sadb.ID
	reqID    uint32
	lft      lifetime
	counters sadb.Counters
}

// parseState decodes an xfrm_usersa_info (XFRM_MSG_NEWSA, a dump entry).
func parseState(b []byte) (stateInfo, error) {
	if len(b) < sizeUsersaInfo {
		return stateInfo{}, fmt.Errorf("xfrm: short xfrm_usersa_info (%d octets)", len(b))
	}
	family := ne.Uint16(b[saOffFamily:])
	spi := uint32(b[saOffID+16])<<24 | uint32(b[saOffID+17])<<16 | uint32(b[saOffID+18])<<8 | uint32(b[saOffID+19])
	return stateInfo{
		id:    sadb.ID{Dst: addrFrom(b[saOffID:], family), Protocol: sadb.Protocol(b[saOffID+20]), SPI: spi},
		reqID: ne.Uint32(b[saOffReqID:]),
		lft:   getLifetime(b[saOffLft:]),
		counters: sadb.Counters{
			Bytes:   ne.Uint64(b[saOffCurlft:]),
			Packets: ne.Uint64(b[saOffCurlft+8:]),
		},
	}, nil
}

// policyInfo is what the backend reads of a struct xfrm_userpolicy_info.
type policyInfo struct {
	id    sadb.PolicyID
	dir   uint8
	index uint32
	lft   lifetime
}

// parsePolicyMsg decodes a policy message (XFRM_MSG_NEWPOLICY, a dump
// entry): the xfrm_userpolicy_info and its interface ID attribute.
func parsePolicyMsg(b []byte) (policyInfo, error) {
	p, err := parsePolicy(b)
	if err != nil {
		return p, err
	}
	p.id.IfID = ifIDAttr(parseAttrs(b[sizePolicyInfo:]))
	return p, nil
}

// ifIDAttr is the XFRMA_IF_ID among attrs, 0 when absent.
func ifIDAttr(attrs map[uint16][]byte) uint32 {
	if v, ok := attrs[attrIfID]; ok && len(v) >= 4 {
		return ne.Uint32(v)
	}
	return 0
}

// u32 is a netlink u32 attribute's value.
func u32(v uint32) []byte {
	b := make([]byte, 4)
	ne.PutUint32(b, v)
	return b
}

// parsePolicy decodes an xfrm_userpolicy_info.
func parsePolicy(b []byte) (policyInfo, error) {
	if len(b) < sizePolicyInfo {
		return policyInfo{}, fmt.Errorf("xfrm: short xfrm_userpolicy_info (%d octets)", len(b))
	}
	p := policyInfo{
		dir:   b[polOffDir],
		index: ne.Uint32(b[polOffIndex:]),
		lft:   getLifetime(b[polOffLft:]),
	}
	p.id.Selector = fromSelector(getSelector(b[polOffSel:]))
	p.id.Direction, _ = fromKernelDir(p.dir)
	return p, nil
}

// parseAcquire turns an XFRM_MSG_ACQUIRE body into an event; ours is false
// when the policy that raised it does not carry marker.
func parseAcquire(b []byte, marker uint64) (ev sadb.Event, ours bool, err error) {
	if len(b) < sizeAcquire {
		return sadb.Event{}, false, fmt.Errorf("xfrm: short xfrm_user_acquire (%d octets)", len(b))
	}
	pol, err := parsePolicy(b[96:])
	if err != nil {
		return sadb.Event{}, false, err
	}
	proto := b[20] // id.proto
	ev = sadb.Event{Kind: sadb.Acquire, Policy: pol.id, Packet: fromSelector(getSelector(b[40:]))}
	attrs := parseAttrs(b[sizeAcquire:])
	ev.Policy.IfID = ifIDAttr(attrs)
	// The policy's templates follow as XFRMA_TMPL; the reqid is that of
	// the template the kernel looked for an SA of.
	if t, ok := attrs[attrTmpl]; ok {
		for ; len(t) >= sizeUserTmpl; t = t[sizeUserTmpl:] {
			if t[20] == proto {
				ev.ReqID = ne.Uint32(t[44:])
				break
			}
		}
	}
	return ev, pol.lft.hardPackets == marker, nil
}

// parseExpire turns an XFRM_MSG_EXPIRE body into an event; ours is false
// when the SA does not carry marker.
func parseExpire(b []byte, marker uint64) (ev sadb.Event, ours bool, err error) {
	if len(b) < sizeExpire {
		return sadb.Event{}, false, fmt.Errorf("xfrm: short xfrm_user_expire (%d octets)", len(b))
	}
	st, err := parseState(b)
	if err != nil {
		return sadb.Event{}, false, err
	}
	kind := sadb.SoftExpire
	if b[sizeUsersaInfo] != 0 {
		kind = sadb.HardExpire
	}
	return sadb.Event{Kind: kind, SA: st.id, ReqID: st.reqID}, st.lft.hardPackets == marker, nil
}

// socketPolicy is the xfrm_userpolicy_info of a per-socket bypass: any
// traffic of the family, allowed, no template, no marker (it dies with
// its socket).
func socketPolicy(family uint16, dir uint8) []byte {
	b := make([]byte, sizePolicyInfo)
	sel := selector{family: family}
	sel.put(b[polOffSel:])
	lft := unlimited()
	lft.put(b[polOffLft:])
	b[polOffDir] = dir
	b[polOffAction] = actionAllow
	return b
}
