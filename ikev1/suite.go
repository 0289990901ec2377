package ikev1

import (
	"bytes"
	"fmt"
	"strings"
	"time"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// Maps between the shared registry's IDs (IKEv2 numbering) and IKEv1's
// attribute values.
var (
	p1Encr = map[uint16]uint16{transform.EncrAESCBC: isakmp.EncrAESCBC, transform.EncrDES3: isakmp.EncrDES3}
	p1Hash = map[uint16]uint16{
		transform.PRFHMACSHA1: isakmp.HashSHA1, transform.PRFHMACSHA2_256: isakmp.HashSHA256,
		transform.PRFHMACSHA2_384: isakmp.HashSHA384, transform.PRFHMACSHA2_512: isakmp.HashSHA512,
	}
	p2Encr = map[uint16]uint8{transform.EncrAESCBC: isakmp.ESPAESCBC, transform.EncrDES3: isakmp.ESP3DES}
	p2Auth = map[uint16]uint16{
		transform.IntegHMACSHA1_96: isakmp.AuthAlgHMACSHA1, transform.IntegHMACSHA2_256_128: isakmp.AuthAlgHMACSHA256,
		transform.IntegHMACSHA2_384_192: isakmp.AuthAlgHMACSHA384, transform.IntegHMACSHA2_512_256: isakmp.AuthAlgHMACSHA512,
	}
)

func invert[K, V comparable](m map[K]V) map[V]K {
	out := make(map[V]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

var (
	p1EncrOf = invert(p1Encr)
	p1HashOf = invert(p1Hash)
	p2EncrOf = invert(p2Encr)
	p2AuthOf = invert(p2Auth)
)

// groupOK reports whether a DH group has the same number in IKEv1.
func groupOK(id uint16) bool {
	switch id {
	case transform.DHModp1024, transform.DHModp2048, transform.DHECP256, transform.DHECP384, transform.DHECP521:
		return true
	}
	return false
}

// phase1Suite is a negotiated (or proposed) Main Mode transform.
type phase1Suite struct {
	encr    *transform.Encr
	keyBits uint16
	prf     *transform.PRF
	group   transform.Group
	auth    uint16
	life    time.Duration // 0: none given
}

func (s *phase1Suite) encKeyLen() int { return s.encr.KeyMaterialLen(s.keyBits) }

// String names the suite as strongSwan logs IKEv1 proposals:
// "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048".
func (s *phase1Suite) String() string {
	integ := transform.IntegByID(p1IntegOf(s.prf.ID))
	parts := []string{s.encr.String(s.keyBits)}
	if integ != nil {
		parts = append(parts, integ.Name)
	}
	return strings.Join(append(parts, s.prf.Name, s.group.Name()), "/")
}

// p1IntegOf is the integrity transform of the same hash as a PRF, for
// naming.
func p1IntegOf(prf uint16) uint16 {
	switch prf {
	case transform.PRFHMACSHA1:
		return transform.IntegHMACSHA1_96
	case transform.PRFHMACSHA2_256:
		return transform.IntegHMACSHA2_256_128
	case transform.PRFHMACSHA2_384:
		return transform.IntegHMACSHA2_384_192
	case transform.PRFHMACSHA2_512:
		return transform.IntegHMACSHA2_512_256
	}
	return 0
}

// phase1Transforms expands a configured proposal into Main Mode
// transforms, one per combination, in preference order (IKEv1 offers each
// complete choice as one transform).
func phase1Transforms(p transform.Proposal, auth uint16, life time.Duration) ([]isakmp.Transform, error) {
	var out []isakmp.Transform
	for _, e := range p.Encr {
		ev, ok := p1Encr[e.ID]
		if !ok {
			return nil, fmt.Errorf("encryption %d has no IKEv1 value", e.ID)
		}
		for _, h := range p.PRF {
			hv, ok := p1Hash[h]
			if !ok {
				return nil, fmt.Errorf("PRF %d has no IKEv1 hash", h)
			}
			for _, g := range p.DH {
				if !groupOK(g) || transform.GroupByID(g) == nil {
					return nil, fmt.Errorf("DH group %d is not available in IKEv1", g)
				}
				attrs := []isakmp.Attribute{isakmp.BasicAttr(isakmp.AttrEncryption, ev)}
				if e.KeyBits != 0 {
					attrs = append(attrs, isakmp.BasicAttr(isakmp.AttrKeyLength, e.KeyBits))
				}
				attrs = append(attrs, isakmp.BasicAttr(isakmp.AttrHash, hv), isakmp.BasicAttr(isakmp.AttrAuthMethod, auth),
					isakmp.BasicAttr(isakmp.AttrGroup, g))
				if life > 0 {
					attrs = append(attrs, isakmp.BasicAttr(isakmp.AttrLifeType, isakmp.LifeSeconds),
						isakmp.DurationAttr(isakmp.AttrLifeDuration, uint32(life/time.Second)))
				}
				out = append(out, isakmp.Transform{Number: uint8(len(out) + 1), ID: isakmp.KeyIKE, Attributes: attrs})
			}
		}
	}
	if len(out) > 255 {
		return nil, fmt.Errorf("%d transforms, at most 255 fit a proposal", len(out))
	}
	return out, nil
}

// parsePhase1 reads a Main Mode transform into a suite. It fails on any
// attribute it does not know or cannot honour: RFC 2409 §5 lets a
// responder only accept or refuse a transform as a whole.
func parsePhase1(t *isakmp.Transform) (*phase1Suite, error) {
	if t.ID != isakmp.KeyIKE {
		return nil, fmt.Errorf("transform ID %d", t.ID)
	}
	s := &phase1Suite{}
	var lifeType uint64
	var haveEncr, haveHash, haveGroup, haveAuth bool
	for _, a := range t.Attributes {
		if a.Type == isakmp.AttrGSSIdentity || a.Type == attrGSSIDWin2000 {
			continue // a principal name, for the GSS-API method (gss.go)
		}
		v, ok := a.Uint()
		if !ok {
			return nil, fmt.Errorf("attribute %d of %d octets", a.Type, len(a.Value))
		}
		switch a.Type {
		case isakmp.AttrEncryption:
			id, known := p1EncrOf[uint16(v)]
			if !known || !a.Basic {
				return nil, fmt.Errorf("encryption algorithm %d", v)
			}
			s.encr, haveEncr = transform.EncrByID(id), true
		case isakmp.AttrKeyLength:
			s.keyBits = uint16(v)
		case isakmp.AttrHash:
			id, known := p1HashOf[uint16(v)]
			if !known || !a.Basic {
				return nil, fmt.Errorf("hash algorithm %d", v)
			}
			s.prf, haveHash = transform.PRFByID(id), true
		case isakmp.AttrAuthMethod:
			s.auth, haveAuth = uint16(v), true
		case isakmp.AttrGroup:
			if !groupOK(uint16(v)) || transform.GroupByID(uint16(v)) == nil {
				return nil, fmt.Errorf("DH group %d", v)
			}
			s.group, haveGroup = transform.GroupByID(uint16(v)), true
		case isakmp.AttrLifeType:
			lifeType = v
		case isakmp.AttrLifeDuration:
			switch lifeType {
			case uint64(isakmp.LifeSeconds):
				s.life = time.Duration(min(v, 1<<32)) * time.Second
			case uint64(isakmp.LifeKilobytes):
				// An ISAKMP SA carries little: a volume limit never binds.
			default:
				return nil, fmt.Errorf("life duration without a life type")
			}
		default:
			return nil, fmt.Errorf("attribute type %d", a.Type)
		}
	}
	if !haveEncr || !haveHash || !haveGroup || !haveAuth {
		return nil, fmt.Errorf("incomplete transform")
	}
	if s.encr.ID == transform.EncrAESCBC {
		if s.keyBits != 128 && s.keyBits != 192 && s.keyBits != 256 {
			return nil, fmt.Errorf("AES key length %d", s.keyBits)
		}
	} else if s.keyBits != 0 {
		return nil, fmt.Errorf("key length %d for %s", s.keyBits, s.encr.Name)
	}
	return s, nil
}

// matchesPhase1 reports whether a peer's suite is one of ours.
func matchesPhase1(ours transform.Proposal, s *phase1Suite) bool {
	encrOK := false
	for _, e := range ours.Encr {
		if e.ID == s.encr.ID && e.KeyBits == s.keyBits {
			encrOK = true
		}
	}
	prfOK, groupOK := false, false
	for _, p := range ours.PRF {
		prfOK = prfOK || p == s.prf.ID
	}
	for _, g := range ours.DH {
		groupOK = groupOK || g == s.group.ID()
	}
	return encrOK && prfOK && groupOK
}

// ModeAttrs are the Quick Mode attributes besides the algorithms.
type ModeAttrs struct {
	Mode sadb.Mode
	// UDP asks for UDP encapsulation (RFC 3947 §5).
	UDP  bool
	Life time.Duration
	// LifeKB is the volume limit in kilobytes; 0 for none.
	LifeKB uint64
}

// phase2Suite is a negotiated (or proposed) Quick Mode transform for ESP.
type phase2Suite struct {
	encr    *transform.Encr
	keyBits uint16
	integ   *transform.Integ
	group   transform.Group // PFS; nil without
	mode    sadb.Mode
	udp     bool
	life    time.Duration
	lifeKB  uint64
}

// String names the suite as strongSwan does: "AES_CBC-128/HMAC_SHA2_256_128/MODP_2048/NO_EXT_SEQ".
func (s *phase2Suite) String() string {
	parts := []string{s.encr.String(s.keyBits), s.integ.Name}
	if s.group != nil {
		parts = append(parts, s.group.Name())
	}
	return strings.Join(append(parts, "NO_EXT_SEQ"), "/")
}

func encapValue(m ModeAttrs) uint16 {
	switch {
	case m.Mode == sadb.Transport && m.UDP:
		return isakmp.EncapUDPTransport
	case m.Mode == sadb.Transport:
		return isakmp.EncapTransport
	case m.UDP:
		return isakmp.EncapUDPTunnel
	}
	return isakmp.EncapTunnel
}

// phase2Transforms expands a configured ESP proposal into Quick Mode
// transforms, one per combination of cipher and hash (the PFS group, if
// any, is the proposal's first: a Quick Mode carries one KE).
func phase2Transforms(p transform.Proposal, m ModeAttrs, _ int) ([]isakmp.Transform, error) {
	var out []isakmp.Transform
	if len(p.DH) > 0 && (!groupOK(p.DH[0]) || transform.GroupByID(p.DH[0]) == nil) {
		return nil, fmt.Errorf("DH group %d is not available in IKEv1", p.DH[0])
	}
	for _, e := range p.Encr {
		ev, ok := p2Encr[e.ID]
		if !ok {
			return nil, fmt.Errorf("encryption %d has no IKEv1 ESP transform", e.ID)
		}
		for _, i := range p.Integ {
			av, ok := p2Auth[i]
			if !ok {
				return nil, fmt.Errorf("integrity %d has no IKEv1 authentication algorithm", i)
			}
			attrs := []isakmp.Attribute{isakmp.BasicAttr(isakmp.AttrSALifeType, isakmp.LifeSeconds),
				isakmp.DurationAttr(isakmp.AttrSALifeDuration, uint32(max(m.Life, time.Second)/time.Second))}
			if m.LifeKB > 0 {
				attrs = append(attrs, isakmp.BasicAttr(isakmp.AttrSALifeType, isakmp.LifeKilobytes),
					isakmp.DurationAttr(isakmp.AttrSALifeDuration, uint32(min(m.LifeKB, 1<<32-1))))
			}
			if len(p.DH) > 0 {
				attrs = append(attrs, isakmp.BasicAttr(isakmp.AttrSAGroup, p.DH[0]))
			}
			attrs = append(attrs, isakmp.BasicAttr(isakmp.AttrEncapMode, encapValue(m)))
			if e.KeyBits != 0 {
				attrs = append(attrs, isakmp.BasicAttr(isakmp.AttrSAKeyLength, e.KeyBits))
			}
			attrs = append(attrs, isakmp.BasicAttr(isakmp.AttrAuthAlg, av))
			out = append(out, isakmp.Transform{Number: uint8(len(out) + 1), ID: ev, Attributes: attrs})
		}
	}
	return out, nil
}

// parsePhase2 reads an ESP transform into a suite.
func parsePhase2(t *isakmp.Transform) (*phase2Suite, error) {
	id, ok := p2EncrOf[t.ID]
	if !ok {
		return nil, fmt.Errorf("ESP transform %d", t.ID)
	}
	s := &phase2Suite{encr: transform.EncrByID(id)}
	var lifeType uint64
	haveMode := false
	for _, a := range t.Attributes {
		v, ok := a.Uint()
		if !ok {
			return nil, fmt.Errorf("attribute %d of %d octets", a.Type, len(a.Value))
		}
		switch a.Type {
		case isakmp.AttrSALifeType:
			lifeType = v
		case isakmp.AttrSALifeDuration:
			switch lifeType {
			case uint64(isakmp.LifeSeconds):
				s.life = time.Duration(min(v, 1<<32)) * time.Second
			case uint64(isakmp.LifeKilobytes):
				s.lifeKB = v
			default:
				return nil, fmt.Errorf("life duration without a life type")
			}
		case isakmp.AttrSAGroup:
			if !groupOK(uint16(v)) || transform.GroupByID(uint16(v)) == nil {
				return nil, fmt.Errorf("PFS group %d", v)
			}
			s.group = transform.GroupByID(uint16(v))
		case isakmp.AttrEncapMode:
			haveMode = true
			switch uint16(v) {
			case isakmp.EncapTunnel:
			case isakmp.EncapTransport:
				s.mode = sadb.Transport
			case isakmp.EncapUDPTunnel, isakmp.EncapUDPTunnelDraft:
				s.udp = true
			case isakmp.EncapUDPTransport, isakmp.EncapUDPTransportDraft:
				s.mode, s.udp = sadb.Transport, true
			default:
				return nil, fmt.Errorf("encapsulation mode %d", v)
			}
		case isakmp.AttrAuthAlg:
			iid, known := p2AuthOf[uint16(v)]
			if !known {
				return nil, fmt.Errorf("authentication algorithm %d", v)
			}
			s.integ = transform.IntegByID(iid)
		case isakmp.AttrSAKeyLength:
			s.keyBits = uint16(v)
		default:
			return nil, fmt.Errorf("attribute type %d", a.Type)
		}
	}
	if s.integ == nil {
		return nil, fmt.Errorf("no authentication algorithm")
	}
	if !haveMode {
		// RFC 2407 §4.5: unspecified means tunnel... in practice every
		// peer sends it; an absent one is read as the default.
		s.mode = sadb.Tunnel
	}
	if s.encr.ID == transform.EncrAESCBC {
		if s.keyBits == 0 {
			s.keyBits = 128 // RFC 3602 §5.3: AES without a key length is 128
		}
		if s.keyBits != 128 && s.keyBits != 192 && s.keyBits != 256 {
			return nil, fmt.Errorf("AES key length %d", s.keyBits)
		}
	} else if s.keyBits != 0 {
		return nil, fmt.Errorf("key length %d for %s", s.keyBits, s.encr.Name)
	}
	return s, nil
}

// matchesPhase2 reports whether a peer's ESP suite is within one of our
// proposals: cipher, key size, hash and PFS group (none if the proposal
// has none).
func matchesPhase2(ours transform.Proposal, s *phase2Suite) bool {
	encrOK, integOK := false, false
	for _, e := range ours.Encr {
		encrOK = encrOK || e.ID == s.encr.ID && (e.KeyBits == s.keyBits || e.KeyBits == 0 && s.keyBits == 0)
	}
	for _, i := range ours.Integ {
		integOK = integOK || i == s.integ.ID
	}
	if !encrOK || !integOK {
		return false
	}
	if len(ours.DH) == 0 {
		return s.group == nil
	}
	if s.group == nil {
		return false
	}
	for _, g := range ours.DH {
		if g == s.group.ID() {
			return true
		}
	}
	return false
}

// sameTransform reports whether a responder's chosen transform is one we
// proposed (RFC 2408 §4.2: the responder returns one of the offered
// transforms unchanged; a responder may answer with its own lifetime, so
// lifetimes are not compared).
func sameTransform(offered, chosen *isakmp.Transform, lifeTypes ...uint16) bool {
	if offered.ID != chosen.ID {
		return false
	}
	skip := func(t uint16) bool {
		for _, l := range lifeTypes {
			if t == l {
				return true
			}
		}
		return false
	}
	var a, b []isakmp.Attribute
	for _, x := range offered.Attributes {
		if !skip(x.Type) {
			a = append(a, x)
		}
	}
	for _, x := range chosen.Attributes {
		if !skip(x.Type) {
			b = append(b, x)
		}
	}
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x.Type == y.Type && bytes.Equal(x.Value, y.Value) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
