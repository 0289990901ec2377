package ikev1

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/transform"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// Vendor IDs iked sends and understands.
var (
	// vidNATT is RFC 3947's: MD5("RFC 3947").
	vidNATT = mustHex("4a131c81070358455c5728f20e95452f")
	// vidDPD is RFC 3706's, version 1.0.
	vidDPD = mustHex("afcad71368a1f1c96b8696fc77570100")
	// vidFrag is MD5("FRAGMENTATION"), the IKE fragmentation of Cisco,
	// strongSwan and Windows; Cisco appends four octets of flags.
	vidFrag = mustHex("4048b7d56ebce88525e7de7f00d6c2d3")
	// VendorIDGSSAPI announces Windows' GSS-API method (so that 65001 is
	// not read as XAUTHInitPreShared); the GSS-API method sends it.
	VendorIDGSSAPI = mustHex("621b04bb09882ac1e15935fefa24aeee")
)

// vendorIDs are what this side announces in Main Mode's first two
// messages.
func (e *Engine) vendorIDs() []isakmp.Payload {
	out := []isakmp.Payload{&isakmp.VendorID{Data: vidNATT}, &isakmp.VendorID{Data: vidDPD}}
	if !e.cfg.NoFragmentation {
		out = append(out, &isakmp.VendorID{Data: vidFrag})
	}
	return out
}

// noteVendorIDs records what the peer announced. Caller holds mu.
func (sa *isakmpSA) noteVendorIDs(ps []isakmp.Payload) {
	for _, p := range ps {
		v, ok := p.(*isakmp.VendorID)
		if !ok {
			continue
		}
		switch {
		case bytes.Equal(v.Data, vidNATT):
			sa.peerNATT = true
		case bytes.Equal(v.Data, vidDPD):
			sa.peerDPD = true
		case bytes.HasPrefix(v.Data, vidFrag):
			sa.peerFrag = !sa.eng.cfg.NoFragmentation
		default:
			if name := gssVendorName(v.Data); name != "" {
				sa.log(levelDebug, "peer announced itself", "vendor_id", name)
			}
		}
	}
}

// natdHash is a NAT-D payload's hash (RFC 3947 §3.2):
// HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash.
func natdHash(prf *transform.PRF, icky, rcky uint64, a netip.AddrPort) []byte {
	h := prf.NewHash()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], icky)
	binary.BigEndian.PutUint64(b[8:], rcky)
	h.Write(b[:])
	h.Write(a.Addr().Unmap().AsSlice())
	var p [2]byte
	binary.BigEndian.PutUint16(p[:], a.Port())
	h.Write(p[:])
	return h.Sum(nil)
}

// natdPayloads are this side's NAT-D payloads: the peer's address as we
// see it first, then our own (RFC 3947 §3.2). With ForceEncap our own is
// a random hash, so that the peer sees a NAT on our side (as strongSwan's
// encap=yes). Caller holds mu.
func (sa *isakmpSA) natdPayloads() []isakmp.Payload {
	prf := sa.suite.prf
	own := natdHash(prf, sa.icookie, sa.rcookie, sa.local)
	if sa.forceEncap() {
		own = make([]byte, len(own))
		_, _ = sa.eng.cfg.Rand.Read(own)
	}
	return []isakmp.Payload{
		&isakmp.NATD{Hash: natdHash(prf, sa.icookie, sa.rcookie, sa.remote)},
		&isakmp.NATD{Hash: own},
	}
}

func (sa *isakmpSA) forceEncap() bool {
	return sa.eng.cfg.ForceEncap || sa.conn != nil && sa.conn.ForceEncap
}

// detectNAT compares the peer's NAT-D payloads with the addresses as we
// see them (RFC 3947 §3.2): the first names us as the peer saw us, the
// others the peer as it sent. Caller holds mu.
func (sa *isakmpSA) detectNAT(ps []isakmp.Payload) {
	var hashes [][]byte
	for _, p := range ps {
		if n, ok := p.(*isakmp.NATD); ok {
			hashes = append(hashes, n.Hash)
		}
	}
	if len(hashes) < 2 {
		return
	}
	prf := sa.suite.prf
	sa.natLocal = !bytes.Equal(hashes[0], natdHash(prf, sa.icookie, sa.rcookie, sa.local))
	peer := natdHash(prf, sa.icookie, sa.rcookie, sa.remote)
	sa.natRemote = true
	for _, h := range hashes[1:] {
		if bytes.Equal(h, peer) {
			sa.natRemote = false
		}
	}
}

// useNATT reports whether this SA floats to the NAT-T port and
// encapsulates ESP: a NAT on either side, or a faked one (ForceEncap,
// whose NAT-D made the peer see one here). Caller holds mu.
func (sa *isakmpSA) useNATT() bool {
	return sa.peerNATT && (sa.natLocal || sa.natRemote || sa.forceEncap())
}

// floatToNATT moves the SA to port 4500 (RFC 3947 §4: from Main Mode's
// fifth message on). Caller holds mu.
func (sa *isakmpSA) floatToNATT() {
	if sa.encap {
		return
	}
	b := sa.eng.nattBindFor(sa.local.Addr())
	if b == nil {
		sa.log(levelWarn, "NAT detected but no NAT-T bind (port 4500) to float to; staying on port 500")
		return
	}
	sa.bind = b
	sa.local = netip.AddrPortFrom(sa.local.Addr(), b.LocalAddr().Port())
	if sa.initiator {
		sa.remote = netip.AddrPortFrom(sa.remote.Addr(), natTPort)
	}
	sa.encap = true
}
