package isakmp

import (
	"encoding/binary"
	"net/netip"
)

// Payload is one payload of a message.
type Payload interface {
	// Type is the payload's type in the next-payload chain.
	Type() PayloadType
	// appendBody appends the payload's body (without the generic header).
	appendBody(b []byte) []byte
}

// SA is the Security Association payload (RFC 2408 §3.4) with the IPsec
// DOI's Identity Only situation, the only one the real peers use.
type SA struct {
	DOI       uint32
	Situation uint32
	Proposals []Proposal
	// Body is the payload's body as received (DOI, situation, proposals),
	// which the phase 1 hashes cover (SAi_b, RFC 2409 §5); nil for a
	// payload built locally (Marshal writes it from the fields).
	Body []byte
}

// Proposal is a proposal substructure (§3.5). Proposals with the same
// number are one proposal of several protocols (an AND); the real peers
// send ESP alone.
type Proposal struct {
	Number     uint8
	Protocol   uint8
	SPI        []byte
	Transforms []Transform
}

// Transform is a transform substructure (§3.6): one complete choice of
// algorithms, expressed as attributes.
type Transform struct {
	Number     uint8
	ID         uint8
	Attributes []Attribute
}

// Attribute is a data attribute (§3.3): basic (TV, a 16-bit value) or
// variable (TLV).
type Attribute struct {
	Type uint16
	// Basic is true for the TV form, whose value is Value[0:2].
	Basic bool
	Value []byte
}

// Uint returns the attribute's value as an integer and whether it fits in
// 64 bits (a basic attribute always does; a variable one of up to 8 octets,
// such as a life duration).
func (a Attribute) Uint() (uint64, bool) {
	if len(a.Value) > 8 || len(a.Value) == 0 {
		return 0, false
	}
	var v uint64
	for _, o := range a.Value {
		v = v<<8 | uint64(o)
	}
	return v, true
}

// BasicAttr returns a basic (TV) attribute.
func BasicAttr(t, v uint16) Attribute {
	return Attribute{Type: t, Basic: true, Value: []byte{byte(v >> 8), byte(v)}}
}

// DurationAttr returns a life duration attribute: basic when it fits in 16
// bits, else variable with 4 octets, as the real peers write it.
func DurationAttr(t uint16, v uint32) Attribute {
	if v <= 0xffff {
		return BasicAttr(t, uint16(v))
	}
	return Attribute{Type: t, Value: binary.BigEndian.AppendUint32(nil, v)}
}

// Attr returns the first attribute of type t in the transform.
func (t *Transform) Attr(typ uint16) (Attribute, bool) {
	for _, a := range t.Attributes {
		if a.Type == typ {
			return a, true
		}
	}
	return Attribute{}, false
}

// KE is the Key Exchange payload (§3.7).
type KE struct{ Data []byte }

// ID is the Identification payload (§3.8, RFC 2407 §4.6.2).
type ID struct {
	IDType   uint8
	Protocol uint8
	Port     uint16
	Data     []byte
}

// Body returns the payload's body (IDii_b and IDir_b of RFC 2409 §5).
func (id *ID) Body() []byte { return id.appendBody(nil) }

// Cert is the Certificate payload (§3.9).
type Cert struct {
	Encoding uint8
	Data     []byte
}

// CertReq is the Certificate Request payload (§3.10): Data is a CA's DER
// distinguished name, or empty for any.
type CertReq struct {
	Encoding uint8
	Data     []byte
}

// Hash is the Hash payload (§3.11).
type Hash struct{ Data []byte }

// Sig is the Signature payload (§3.12).
type Sig struct{ Data []byte }

// Nonce is the Nonce payload (§3.13).
type Nonce struct{ Data []byte }

// Notify is the Notification payload (§3.14).
type Notify struct {
	DOI      uint32
	Protocol uint8
	Code     NotifyType
	SPI      []byte
	Data     []byte
}

// Delete is the Delete payload (§3.15): the SPIs (cookie pairs for
// ISAKMP, 4-octet SPIs for ESP) of the SAs the sender deleted.
type Delete struct {
	DOI      uint32
	Protocol uint8
	SPISize  uint8
	SPIs     [][]byte
}

// VendorID is the Vendor ID payload (§3.16).
type VendorID struct{ Data []byte }

// NATD is the NAT-Discovery payload (RFC 3947 §3.2).
type NATD struct{ Hash []byte }

// NATOA is the NAT Original Address payload (RFC 3947 §5.2).
type NATOA struct{ Addr netip.Addr }

// GSS is a GSS-API token (Windows' Kerberos method; racoon's
// ISAKMP_NPTYPE_GSS).
type GSS struct{ Token []byte }

// Fragment is one fragment of an IKE message (Cisco's and strongSwan's
// IKEv1 fragmentation): fragments with the same ID are joined in order of
// Number, 1-based, until the one with Last.
type Fragment struct {
	ID     uint16
	Number uint8
	Last   bool
	Data   []byte
}

// Unknown is a payload of a type this package does not know, kept so
// that a caller may answer it.
type Unknown struct {
	PType PayloadType
	Data  []byte
}

func (*SA) Type() PayloadType        { return PayloadSA }
func (*KE) Type() PayloadType        { return PayloadKE }
func (*ID) Type() PayloadType        { return PayloadID }
func (*Cert) Type() PayloadType      { return PayloadCERT }
func (*CertReq) Type() PayloadType   { return PayloadCR }
func (*Hash) Type() PayloadType      { return PayloadHash }
func (*Sig) Type() PayloadType       { return PayloadSIG }
func (*Nonce) Type() PayloadType     { return PayloadNonce }
func (*Notify) Type() PayloadType    { return PayloadN }
func (*Delete) Type() PayloadType    { return PayloadD }
func (*VendorID) Type() PayloadType  { return PayloadVID }
func (*NATD) Type() PayloadType      { return PayloadNATD }
func (*NATOA) Type() PayloadType     { return PayloadNATOA }
func (*GSS) Type() PayloadType       { return PayloadGSS }
func (*Fragment) Type() PayloadType  { return PayloadFragment }
func (u *Unknown) Type() PayloadType { return u.PType }

func (p *SA) appendBody(b []byte) []byte {
	if p.Body != nil {
		return append(b, p.Body...)
	}
	b = binary.BigEndian.AppendUint32(b, p.DOI)
	b = binary.BigEndian.AppendUint32(b, p.Situation)
	for i := range p.Proposals {
		next := PayloadProposal
		if i == len(p.Proposals)-1 {
			next = PayloadNone
		}
		b = p.Proposals[i].append(b, next)
	}
	return b
}

// MarshalBody returns the SA payload's body as it goes on the wire: Body
// when set, else built from the fields (SAi_b for a locally built SA).
func (p *SA) MarshalBody() []byte { return p.appendBody(nil) }

func (p *Proposal) append(b []byte, next PayloadType) []byte {
	start := len(b)
	b = append(b, byte(next), 0, 0, 0, p.Number, p.Protocol, byte(len(p.SPI)), byte(len(p.Transforms)))
	b = append(b, p.SPI...)
	for i := range p.Transforms {
		tn := PayloadTransform
		if i == len(p.Transforms)-1 {
			tn = PayloadNone
		}
		b = p.Transforms[i].append(b, tn)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

func (t *Transform) append(b []byte, next PayloadType) []byte {
	start := len(b)
	b = append(b, byte(next), 0, 0, 0, t.Number, t.ID, 0, 0)
	for _, a := range t.Attributes {
		b = a.append(b)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

func (a Attribute) append(b []byte) []byte {
	if a.Basic {
		b = binary.BigEndian.AppendUint16(b, a.Type|0x8000)
		var v [2]byte
		copy(v[2-min(2, len(a.Value)):], a.Value)
		return append(b, v[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, a.Type&0x7fff)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
	return append(b, a.Value...)
}

func (p *KE) appendBody(b []byte) []byte { return append(b, p.Data...) }

func (p *ID) appendBody(b []byte) []byte {
	b = append(b, p.IDType, p.Protocol)
	b = binary.BigEndian.AppendUint16(b, p.Port)
	return append(b, p.Data...)
}

func (p *Cert) appendBody(b []byte) []byte    { return append(append(b, p.Encoding), p.Data...) }
func (p *CertReq) appendBody(b []byte) []byte { return append(append(b, p.Encoding), p.Data...) }
func (p *Hash) appendBody(b []byte) []byte    { return append(b, p.Data...) }
func (p *Sig) appendBody(b []byte) []byte     { return append(b, p.Data...) }
func (p *Nonce) appendBody(b []byte) []byte   { return append(b, p.Data...) }

func (p *Notify) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, p.DOI)
	b = append(b, p.Protocol, byte(len(p.SPI)))
	b = binary.BigEndian.AppendUint16(b, uint16(p.Code))
	b = append(b, p.SPI...)
	return append(b, p.Data...)
}

func (p *Delete) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, p.DOI)
	b = append(b, p.Protocol, p.SPISize)
	b = binary.BigEndian.AppendUint16(b, uint16(len(p.SPIs)))
	for _, s := range p.SPIs {
		b = append(b, s...)
	}
	return b
}

func (p *VendorID) appendBody(b []byte) []byte { return append(b, p.Data...) }
func (p *NATD) appendBody(b []byte) []byte     { return append(b, p.Hash...) }

func (p *NATOA) appendBody(b []byte) []byte {
	t := IDIPv4
	if p.Addr.Is6() && !p.Addr.Is4In6() {
		t = IDIPv6
	}
	b = append(b, t, 0, 0, 0)
	return append(b, p.Addr.Unmap().AsSlice()...)
}

func (p *GSS) appendBody(b []byte) []byte { return append(b, p.Token...) }

func (p *Fragment) appendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, p.ID)
	var flags byte
	if p.Last {
		flags = 1
	}
	b = append(b, p.Number, flags)
	return append(b, p.Data...)
}

func (p *Unknown) appendBody(b []byte) []byte { return append(b, p.Data...) }

// AppendPayloads appends the payload chain (generic headers and bodies)
// and returns it with the type of its first payload, for the header's Next.
func AppendPayloads(b []byte, ps []Payload) ([]byte, PayloadType) {
	for i, p := range ps {
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].Type()
		}
		start := len(b)
		b = append(b, byte(next), 0, 0, 0)
		b = p.appendBody(b)
		binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	}
	if len(ps) == 0 {
		return b, PayloadNone
	}
	return b, ps[0].Type()
}

// Message is a header and its payloads, in the clear.
type Message struct {
	Header   Header
	Payloads []Payload
}

// Marshal serialises an unencrypted message, filling in the header's Next
// and Length.
func (m *Message) Marshal() []byte {
	b := make([]byte, HeaderLen, 512)
	b, first := AppendPayloads(b, m.Payloads)
	h := m.Header
	h.Next, h.Length = first, uint32(len(b))
	if h.Version == 0 {
		h.Version = Version
	}
	h.AppendHeader(b[:0])
	return b
}

// Find returns the first payload of type t, or nil.
func Find(ps []Payload, t PayloadType) Payload {
	for _, p := range ps {
		if p.Type() == t {
			return p
		}
	}
	return nil
}
