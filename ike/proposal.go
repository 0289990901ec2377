package ike

import (
	"fmt"
	"strings"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// suite is a negotiated set of transforms: one of each type.
type suite struct {
	encr    *transform.Encr
	keyBits uint16
	prf     *transform.PRF   // IKE only
	integ   *transform.Integ // nil for AEAD
	group   transform.Group  // IKE; ESP with PFS
	esn     bool             // ESP only
	number  uint8            // the peer's proposal number
	proto   wire.ProtocolID
	spi     []byte // the peer's SPI from its proposal (ESP)
}

// String prints the suite as swanctl --list-sas does, e.g.
// "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519".
func (s *suite) String() string {
	parts := []string{s.encr.String(s.keyBits)}
	if s.integ != nil {
		parts = append(parts, s.integ.Name)
	}
	if s.prf != nil {
		parts = append(parts, s.prf.Name)
	}
	if s.group != nil {
		parts = append(parts, s.group.Name())
	}
	if s.proto != wire.ProtoIKE {
		if s.esn {
			parts = append(parts, "EXT_SEQ")
		} else {
			parts = append(parts, "NO_EXT_SEQ")
		}
	}
	return strings.Join(parts, "/")
}

// toWire turns configured proposals into SA payload proposals, numbered
// from 1 (§3.3.1). withDH false drops DH transforms, as for the Child SA of
// IKE_AUTH, whose keys come from the IKE SA (§1.2).
func toWire(props []transform.Proposal, proto wire.ProtocolID, spi []byte, withDH bool) []wire.Proposal {
	out := make([]wire.Proposal, 0, len(props))
	for i, p := range props {
		wp := wire.Proposal{Number: uint8(i + 1), Protocol: proto, SPI: spi}
		for _, e := range p.Encr {
			wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformENCR, ID: e.ID, KeyLength: e.KeyBits})
		}
		for _, id := range p.PRF {
			wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformPRF, ID: id})
		}
		for _, id := range p.Integ {
			wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformINTEG, ID: id})
		}
		if withDH {
			for _, id := range p.DH {
				wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformDH, ID: id})
			}
		}
		if proto != wire.ProtoIKE {
			esn := p.ESN
			if len(esn) == 0 {
				esn = []uint16{transform.ESNNo}
			}
			for _, id := range esn {
				wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformESN, ID: id})
			}
		}
		out = append(out, wp)
	}
	return out
}

// offers reports whether the peer's proposal carries transform (t, id, keyBits).
func offers(p *wire.Proposal, t wire.TransformType, id, keyBits uint16) bool {
	for _, tr := range p.Transforms {
		if tr.Type == t && tr.ID == id && tr.KeyLength == keyBits {
			return true
		}
	}
	return false
}

// hasType reports whether the peer's proposal has any transform of type t
// other than the "none" ID 0.
func hasType(p *wire.Proposal, t wire.TransformType) bool {
	for _, tr := range p.Transforms {
		if tr.Type == t && tr.ID != 0 {
			return true
		}
	}
	return false
}

// selectProposal picks, by the responder's preference order (ours outer,
// the peer's inner), the first combination both sides accept (§2.7).
// withDH false ignores DH transforms (IKE_AUTH Child SA). It returns nil
// when there is none: NO_PROPOSAL_CHOSEN.
func selectProposal(ours []transform.Proposal, theirs []wire.Proposal, proto wire.ProtocolID, withDH bool) *suite {
	for _, o := range ours {
		for i := range theirs {
			if s := match(&o, &theirs[i], proto, withDH); s != nil {
				return s
			}
		}
	}
	return nil
}

func match(o *transform.Proposal, p *wire.Proposal, proto wire.ProtocolID, withDH bool) *suite {
	if p.Protocol != proto {
		return nil
	}
	for _, tr := range p.Transforms {
		if tr.UnknownAttrs { // §3.3.6: reject the proposal
			return nil
		}
	}
	s := &suite{number: p.Number, proto: proto, spi: p.SPI}
	for _, e := range o.Encr {
		if offers(p, wire.TransformENCR, e.ID, e.KeyBits) {
			s.encr, s.keyBits = transform.EncrByID(e.ID), e.KeyBits
			break
		}
	}
	if s.encr == nil {
		return nil
	}
	if proto == wire.ProtoIKE {
		for _, id := range o.PRF {
			if offers(p, wire.TransformPRF, id, 0) {
				s.prf = transform.PRFByID(id)
				break
			}
		}
		if s.prf == nil {
			return nil
		}
	}
	if s.encr.AEAD {
		// An AEAD proposal carries no integrity, or only "none" (RFC 5282 §8).
		if hasType(p, wire.TransformINTEG) {
			return nil
		}
	} else {
		for _, id := range o.Integ {
			if offers(p, wire.TransformINTEG, id, 0) {
				s.integ = transform.IntegByID(id)
				break
			}
		}
		if s.integ == nil {
			return nil
		}
	}
	if proto == wire.ProtoIKE || (withDH && len(o.DH) > 0) {
		for _, id := range o.DH {
			if offers(p, wire.TransformDH, id, 0) {
				s.group = transform.GroupByID(id)
				break
			}
		}
		if s.group == nil {
			return nil
		}
	} else if withDH && hasType(p, wire.TransformDH) {
		// The peer insists on PFS that this side was not configured for.
		if !offers(p, wire.TransformDH, 0, 0) {
			return nil
		}
	}
	if proto != wire.ProtoIKE {
		esn := o.ESN
		if len(esn) == 0 {
			esn = []uint16{transform.ESNNo}
		}
		found := false
		for _, id := range esn {
			if offers(p, wire.TransformESN, id, 0) {
				s.esn, found = id == transform.ESNYes, true
				break
			}
		}
		// A peer that sends no ESN transform at all means no ESN.
		if !found && (hasESN(p) || !containsID(esn, transform.ESNNo)) {
			return nil
		}
	}
	return s
}

func hasESN(p *wire.Proposal) bool {
	for _, tr := range p.Transforms {
		if tr.Type == wire.TransformESN {
			return true
		}
	}
	return false
}

func containsID(ids []uint16, id uint16) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// wire returns the suite as the single proposal a responder returns (§3.3:
// one transform of each type, the initiator's proposal number).
func (s *suite) wire(spi []byte) wire.SA {
	p := wire.Proposal{Number: s.number, Protocol: s.proto, SPI: spi}
	p.Transforms = append(p.Transforms, wire.Transform{Type: wire.TransformENCR, ID: s.encr.ID, KeyLength: s.keyBits})
	if s.prf != nil {
		p.Transforms = append(p.Transforms, wire.Transform{Type: wire.TransformPRF, ID: s.prf.ID})
	}
	if s.integ != nil {
		p.Transforms = append(p.Transforms, wire.Transform{Type: wire.TransformINTEG, ID: s.integ.ID})
	}
	if s.group != nil {
		p.Transforms = append(p.Transforms, wire.Transform{Type: wire.TransformDH, ID: s.group.ID()})
	}
	if s.proto != wire.ProtoIKE {
		id := transform.ESNNo
		if s.esn {
			id = transform.ESNYes
		}
		p.Transforms = append(p.Transforms, wire.Transform{Type: wire.TransformESN, ID: id})
	}
	return wire.SA{Proposals: []wire.Proposal{p}}
}

// acceptChosen checks a responder's answer (§2.7): exactly one proposal,
// one transform of each needed type, each something we offered. It
// returns the suite, or nil when the peer chose something we never offered.
func acceptChosen(ours []transform.Proposal, sa *wire.SA, proto wire.ProtocolID, withDH bool) *suite {
	if sa == nil || len(sa.Proposals) != 1 {
		return nil
	}
	chosen := sa.Proposals[0]
	counts := map[wire.TransformType]int{}
	for _, tr := range chosen.Transforms {
		counts[tr.Type]++
	}
	for _, n := range counts {
		if n != 1 {
			return nil
		}
	}
	idx := int(chosen.Number) - 1
	if idx < 0 || idx >= len(ours) {
		return nil
	}
	return match(&ours[idx], &chosen, proto, withDH)
}

// noProposal is the error of a refused SA offer, naming both sides as
// charon logs them: "no acceptable IKE proposal: offered
// AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048, configured
// AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519" (proposals of one side
// joined by " | "). withDH false leaves the configured DH groups out, as
// the Child SA of IKE_AUTH negotiates none (§1.2).
func noProposal(kind string, offered []wire.Proposal, configured []transform.Proposal, withDH bool) error {
	return fmt.Errorf("no acceptable %s proposal: offered %s, configured %s", kind, describeOffer(offered), describeConfigured(configured, withDH))
}

// describeOffer names the peer's proposals' transforms as strongSwan
// does (offeredProposal), joined by " | ".
func describeOffer(props []wire.Proposal) string {
	parts := make([]string, 0, len(props))
	for _, p := range props {
		parts = append(parts, offeredProposal(p).String())
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, " | ")
}

// offeredProposal is a peer's proposal as a transform.Proposal, for logs:
// IDs iked does not know print as numbers (ENCR_99), and a NONE integrity
// or DH transform is left out, as strongSwan leaves it out.
func offeredProposal(p wire.Proposal) transform.Proposal {
	var tp transform.Proposal
	for _, t := range p.Transforms {
		switch t.Type {
		case wire.TransformENCR:
			tp.Encr = append(tp.Encr, transform.EncrChoice{ID: t.ID, KeyBits: t.KeyLength})
		case wire.TransformPRF:
			tp.PRF = append(tp.PRF, t.ID)
		case wire.TransformINTEG:
			if t.ID != transform.IntegNone {
				tp.Integ = append(tp.Integ, t.ID)
			}
		case wire.TransformDH:
			if t.ID != transform.DHNone {
				tp.DH = append(tp.DH, t.ID)
			}
		case wire.TransformESN:
			tp.ESN = append(tp.ESN, t.ID)
		}
	}
	return tp
}

// describeConfigured names configured proposals as describeOffer does.
func describeConfigured(props []transform.Proposal, withDH bool) string {
	parts := make([]string, 0, len(props))
	for _, p := range props {
		if !withDH {
			p.DH = nil
		}
		parts = append(parts, p.String())
	}
	return strings.Join(parts, " | ")
}
