package ike

import (
	"fmt"
	"slices"
	"strings"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// suite is a negotiated set of transforms: one of each type. (The fields
// are ordered so that the small ones share one word: an ESP suite is held
// per Child SA.)
type suite struct {
	encr    *transform.Encr
	prf     *transform.PRF   // IKE only
	integ   *transform.Integ // nil for AEAD
	group   transform.Group  // IKE; ESP with PFS
	spi     []byte           // the peer's SPI from its proposal (ESP)
	keyBits uint16
	esn     bool  // ESP only
	number  uint8 // the peer's proposal number
	proto   wire.ProtocolID
	// addKE are the additional key exchanges (RFC 9370), by type: the
	// method of ADDKE1 to ADDKE7, DHNone where none was negotiated.
	addKE [transform.MaxAddKE]uint16
}

// adds returns the additional key exchange methods in the order they run
// (ADDKE1 first, RFC 9370 §2.2.2), without the ones not negotiated.
func (s *suite) adds() []transform.Group {
	var out []transform.Group
	for _, id := range s.addKE {
		if id != transform.DHNone {
			out = append(out, transform.GroupByID(id))
		}
	}
	return out
}

// hasAddKE reports whether additional key exchanges were negotiated.
func (s *suite) hasAddKE() bool { return s.addKE != [transform.MaxAddKE]uint16{} }

// postQuantum reports whether one of the suite's key exchanges resists a
// quantum computer (ML-KEM), the test of require_pq.
func (s *suite) postQuantum() bool {
	if s.group != nil && transform.IsPostQuantum(s.group.ID()) {
		return true
	}
	for _, id := range s.addKE {
		if transform.IsPostQuantum(id) {
			return true
		}
	}
	return false
}

// failurePQRequired is the handshake-failure label of a peer refused by
// require_pq.
const failurePQRequired = "pq_required"

// proposal returns the suite as a proposal of one choice per type.
func (s *suite) proposal() transform.Proposal {
	p := transform.Proposal{Encr: []transform.EncrChoice{{ID: s.encr.ID, KeyBits: s.keyBits}}}
	if s.prf != nil {
		p.PRF = []uint16{s.prf.ID}
	}
	if s.integ != nil {
		p.Integ = []uint16{s.integ.ID}
	}
	if s.group != nil {
		p.DH = []uint16{s.group.ID()}
	}
	for i, id := range s.addKE {
		if id != transform.DHNone {
			p.AddKE[i] = []uint16{id}
		}
	}
	if s.proto != wire.ProtoIKE {
		p.ESN = []uint16{transform.ESNNo}
		if s.esn {
			p.ESN = []uint16{transform.ESNYes}
		}
	}
	return p
}

// keywords is the suite in proposal syntax, e.g.
// "aes256gcm16-prfsha384-x25519-ke1_mlkem768" (ikectl, JSON, metrics).
func (s *suite) keywords() string { return s.proposal().Keywords() }

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
	for i, id := range s.addKE {
		if id != transform.DHNone {
			parts = append(parts, transform.AddKEName(i+1, id))
		}
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
//
// A proposal whose additional key exchanges are all optional (each type
// allows none) goes out twice: as configured, and right after it without
// any ADDKE transform. A responder that predates RFC 9370 (strongSwan 5.9)
// must refuse a proposal with transform types it does not know (RFC 7296
// §3.3.6); it takes the second, and the optional exchanges fall back to
// none in one round trip. A responder that knows them prefers the first.
// wireProposal maps a chosen number back.
func toWire(props []transform.Proposal, proto wire.ProtocolID, spi []byte, withDH bool) []wire.Proposal {
	out := make([]wire.Proposal, 0, len(props))
	for _, p := range props {
		wp := wire.Proposal{Number: uint8(len(out) + 1), Protocol: proto, SPI: spi}
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
		if withDH {
			// RFC 9370 §2.2.1: after the types of RFC 7296.
			classic := slices.Clone(wp.Transforms)
			for i, l := range p.AddKE {
				for _, id := range l {
					wp.Transforms = append(wp.Transforms, wire.Transform{Type: wire.TransformADDKE1 + wire.TransformType(i), ID: id})
				}
			}
			if optionalAddKEOnly(&p) {
				out = append(out, wp)
				wp = wire.Proposal{Number: uint8(len(out) + 1), Protocol: proto, SPI: spi, Transforms: classic}
			}
		}
		out = append(out, wp)
	}
	return out
}

// optionalAddKEOnly reports whether p has additional key exchanges and
// every one of them allows none: toWire adds a fallback proposal.
func optionalAddKEOnly(p *transform.Proposal) bool {
	if !p.HasAddKE() {
		return false
	}
	for _, l := range p.AddKE {
		if len(l) > 0 && !slices.Contains(l, transform.DHNone) {
			return false
		}
	}
	return true
}

// wireProposal returns the index in ours of the proposal toWire sent as
// number n, or -1.
func wireProposal(ours []transform.Proposal, withDH bool, n uint8) int {
	num := 0
	for i := range ours {
		num++
		if withDH && optionalAddKEOnly(&ours[i]) {
			num++
		}
		if int(n) <= num {
			return i
		}
	}
	return -1
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
	return selectProposalRules(ours, theirs, proto, matchRules{withDH: withDH})
}

// matchRules are what a selection must respect beyond the two proposals.
type matchRules struct {
	// withDH false ignores key exchange transforms (IKE_AUTH's Child SA).
	withDH bool
	// noAddKE: the peer cannot run additional key exchanges (it did not
	// announce IKE_INTERMEDIATE, RFC 9370 §2.2.1), so every additional
	// type must come out as none.
	noAddKE bool
	// requirePQ: only a suite with a post-quantum key exchange is
	// acceptable (Connection.RequirePQ).
	requirePQ bool
}

// selectProposalRules is selectProposal under rules. With requirePQ, a
// proposal whose preferred combination has no post-quantum exchange is
// tried again without the optional (none) choices, so that an offer of
// "ke1_mlkem768 or none" yields ML-KEM rather than a refusal.
func selectProposalRules(ours []transform.Proposal, theirs []wire.Proposal, proto wire.ProtocolID, r matchRules) *suite {
	for _, o := range ours {
		for i := range theirs {
			s := matchWith(&o, &theirs[i], proto, r)
			if s != nil && r.requirePQ && !s.postQuantum() {
				strict := o
				for t, l := range strict.AddKE {
					strict.AddKE[t] = slices.DeleteFunc(slices.Clone(l), func(id uint16) bool { return id == transform.DHNone })
				}
				s = matchWith(&strict, &theirs[i], proto, r)
				if s != nil && !s.postQuantum() {
					s = nil
				}
			}
			if s != nil {
				return s
			}
		}
	}
	return nil
}

func match(o *transform.Proposal, p *wire.Proposal, proto wire.ProtocolID, withDH bool) *suite {
	return matchWith(o, p, proto, matchRules{withDH: withDH})
}

// selectAddKE chooses the method of one additional key exchange type t
// (RFC 9370 §2.2.1) from ours, in our order, among those the peer's
// proposal offers; a method already chosen for an earlier type is not
// chosen again. DHNone is a choice like any other: it makes the type
// optional. A type that only one side proposes is acceptable when that
// side allows none. ok is false when the types cannot agree.
func selectAddKE(ours []uint16, p *wire.Proposal, t wire.TransformType, used []uint16) (id uint16, ok bool) {
	var theirs []uint16
	for _, tr := range p.Transforms {
		if tr.Type == t {
			theirs = append(theirs, tr.ID)
		}
	}
	switch {
	case len(ours) == 0 && len(theirs) == 0:
		return transform.DHNone, true
	case len(ours) == 0:
		return transform.DHNone, slices.Contains(theirs, transform.DHNone)
	case len(theirs) == 0:
		return transform.DHNone, slices.Contains(ours, transform.DHNone)
	}
	for _, id := range ours {
		if id != transform.DHNone && (slices.Contains(used, id) || transform.GroupByID(id) == nil) {
			continue
		}
		if slices.Contains(theirs, id) {
			return id, true
		}
	}
	return transform.DHNone, false
}

func matchWith(o *transform.Proposal, p *wire.Proposal, proto wire.ProtocolID, r matchRules) *suite {
	withDH := r.withDH
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
	if withDH {
		// RFC 9370: the additional key exchanges, in type order, each
		// method at most once; none at all when the peer cannot run them
		// or no exchange starts them (an ESP proposal without PFS).
		used := []uint16{}
		if s.group != nil {
			used = append(used, s.group.ID())
		}
		for i := range transform.MaxAddKE {
			t := wire.TransformADDKE1 + wire.TransformType(i)
			ours := o.AddKE[i]
			if r.noAddKE || s.group == nil {
				if len(ours) > 0 && !slices.Contains(ours, transform.DHNone) {
					return nil
				}
				ours = []uint16{transform.DHNone}
			}
			id, ok := selectAddKE(ours, p, t, used)
			if !ok {
				return nil
			}
			s.addKE[i] = id
			if id != transform.DHNone {
				used = append(used, id)
			}
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
	// A type negotiated as none is left out, as strongSwan does; either
	// way the initiator reads it as none (selectAddKE).
	for i, id := range s.addKE {
		if id != transform.DHNone {
			p.Transforms = append(p.Transforms, wire.Transform{Type: wire.TransformADDKE1 + wire.TransformType(i), ID: id})
		}
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
	idx := wireProposal(ours, withDH, chosen.Number)
	if idx < 0 || chosen.Number == 0 {
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
		default:
			if t.Type >= wire.TransformADDKE1 && t.Type <= wire.TransformADDKE7 {
				i := t.Type - wire.TransformADDKE1
				tp.AddKE[i] = append(tp.AddKE[i], t.ID)
			}
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
