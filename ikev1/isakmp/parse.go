package isakmp

import (
	"encoding/binary"
	"net/netip"
)

// Bounds on what one message may carry: far above what any peer sends, low
// enough that a hostile message cannot make the parser allocate much.
const (
	maxPayloads   = 64
	maxProposals  = 64
	maxTransforms = 64
	maxAttributes = 32
	maxSPIs       = 64
)

// Body is a parsed payload chain.
type Body struct {
	Payloads []Payload
	// Raw is the chain as received, from the first payload's generic
	// header to the end of the last payload (without the padding of an
	// encrypted message): Quick Mode's and Informational's HASH covers
	// Raw[Offsets[1]:] (RFC 2409 §5.5, §5.7).
	Raw []byte
	// Offsets are the start of each payload in Raw.
	Offsets []int
}

// ParseBody parses the payload chain b whose first payload is of type
// first. With padded (the decrypted body of an encrypted message), octets
// after the last payload are padding (RFC 2409 Appendix B); otherwise the
// chain must fill b exactly.
func ParseBody(first PayloadType, b []byte, padded bool) (Body, error) {
	var body Body
	next, off := first, 0
	for next != PayloadNone {
		if len(body.Payloads) == maxPayloads {
			return Body{}, errorf(PayloadMalformed, next, "too_many", "more than %d payloads", maxPayloads)
		}
		if len(b)-off < GenericHeaderLen {
			return Body{}, errorf(PayloadMalformed, next, "malformed", "truncated generic header")
		}
		plen := int(binary.BigEndian.Uint16(b[off+2:]))
		if b[off+1] != 0 {
			return Body{}, errorf(PayloadMalformed, next, "malformed", "reserved octet %#02x", b[off+1])
		}
		if plen < GenericHeaderLen || plen > len(b)-off {
			return Body{}, errorf(PayloadMalformed, next, "malformed", "payload length %d with %d octets left", plen, len(b)-off)
		}
		p, err := parsePayload(next, b[off+GenericHeaderLen:off+plen])
		if err != nil {
			return Body{}, err
		}
		body.Payloads = append(body.Payloads, p)
		body.Offsets = append(body.Offsets, off)
		next = PayloadType(b[off])
		off += plen
	}
	if off != len(b) && !padded {
		return Body{}, errorf(UnequalPayloadLengths, PayloadNone, "bad_length", "%d octets after the last payload", len(b)-off)
	}
	body.Raw = b[:off]
	return body, nil
}

// Parse parses an unencrypted message: its header and payloads.
func Parse(b []byte) (Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Message{}, err
	}
	if h.Encrypted() {
		return Message{}, errorf(InvalidFlags, PayloadNone, "bad_flags", "encrypted message given to Parse")
	}
	body, err := ParseBody(h.Next, b[HeaderLen:], false)
	if err != nil {
		return Message{}, err
	}
	return Message{Header: h, Payloads: body.Payloads}, nil
}

func parsePayload(t PayloadType, b []byte) (Payload, error) {
	switch t {
	case PayloadSA:
		return parseSA(b)
	case PayloadKE:
		if len(b) == 0 {
			return nil, errorf(PayloadMalformed, t, "malformed", "empty key exchange data")
		}
		return &KE{Data: b}, nil
	case PayloadID:
		if len(b) < 4 {
			return nil, errorf(PayloadMalformed, t, "malformed", "%d octets", len(b))
		}
		return &ID{IDType: b[0], Protocol: b[1], Port: binary.BigEndian.Uint16(b[2:]), Data: b[4:]}, nil
	case PayloadCERT:
		if len(b) < 1 {
			return nil, errorf(PayloadMalformed, t, "malformed", "no encoding")
		}
		return &Cert{Encoding: b[0], Data: b[1:]}, nil
	case PayloadCR:
		if len(b) < 1 {
			return nil, errorf(PayloadMalformed, t, "malformed", "no encoding")
		}
		return &CertReq{Encoding: b[0], Data: b[1:]}, nil
	case PayloadHash:
		if len(b) == 0 {
			return nil, errorf(PayloadMalformed, t, "malformed", "empty hash")
		}
		return &Hash{Data: b}, nil
	case PayloadSIG:
		if len(b) == 0 {
			return nil, errorf(PayloadMalformed, t, "malformed", "empty signature")
		}
		return &Sig{Data: b}, nil
	case PayloadNonce:
		// RFC 2409 §5: nonces are 8 to 256 octets.
		if len(b) < 8 || len(b) > 256 {
			return nil, errorf(PayloadMalformed, t, "malformed", "nonce of %d octets", len(b))
		}
		return &Nonce{Data: b}, nil
	case PayloadN:
		return parseNotify(b)
	case PayloadD:
		return parseDelete(b)
	case PayloadVID:
		return &VendorID{Data: b}, nil
	case PayloadNATD:
		if len(b) == 0 {
			return nil, errorf(PayloadMalformed, t, "malformed", "empty hash")
		}
		return &NATD{Hash: b}, nil
	case PayloadNATOA:
		return parseNATOA(b)
	case PayloadGSS:
		return &GSS{Token: b}, nil
	case PayloadFragment:
		if len(b) < 4 {
			return nil, errorf(PayloadMalformed, t, "malformed", "%d octets", len(b))
		}
		if b[3]&^1 != 0 {
			return nil, errorf(PayloadMalformed, t, "malformed", "flags %#02x", b[3])
		}
		f := &Fragment{ID: binary.BigEndian.Uint16(b), Number: b[2], Last: b[3]&1 != 0, Data: b[4:]}
		if f.Number == 0 {
			return nil, errorf(PayloadMalformed, t, "malformed", "fragment number 0")
		}
		return f, nil
	case PayloadProposal, PayloadTransform:
		return nil, errorf(InvalidPayloadType, t, "bad_payload_type", "%s outside an SA payload", t)
	}
	if t >= 128 {
		// Private use (RFC 2408 §3.1): a type this package does not know
		// is kept for the caller, which ignores it.
		return &Unknown{PType: t, Data: b}, nil
	}
	return nil, errorf(InvalidPayloadType, t, "bad_payload_type", "payload type %d", t)
}

func parseSA(b []byte) (*SA, error) {
	if len(b) < 8 {
		return nil, errorf(PayloadMalformed, PayloadSA, "malformed", "%d octets", len(b))
	}
	sa := &SA{DOI: binary.BigEndian.Uint32(b), Situation: binary.BigEndian.Uint32(b[4:]), Body: b}
	if sa.DOI != DOIIPsec {
		return nil, errorf(DOINotSupported, PayloadSA, "bad_doi", "DOI %d", sa.DOI)
	}
	if sa.Situation != SitIdentityOnly {
		return nil, errorf(SituationNotSupported, PayloadSA, "bad_situation", "situation %#x", sa.Situation)
	}
	rest := b[8:]
	next := PayloadProposal
	for next != PayloadNone {
		if len(sa.Proposals) == maxProposals {
			return nil, errorf(PayloadMalformed, PayloadSA, "too_many", "more than %d proposals", maxProposals)
		}
		if next != PayloadProposal {
			return nil, errorf(BadProposalSyntax, PayloadSA, "malformed", "payload %d in the proposal chain", next)
		}
		if len(rest) < 8 {
			return nil, errorf(BadProposalSyntax, PayloadSA, "malformed", "truncated proposal")
		}
		plen := int(binary.BigEndian.Uint16(rest[2:]))
		if rest[1] != 0 || plen < 8 || plen > len(rest) {
			return nil, errorf(BadProposalSyntax, PayloadSA, "malformed", "proposal length %d with %d octets left", plen, len(rest))
		}
		p, err := parseProposal(rest[4:plen])
		if err != nil {
			return nil, err
		}
		sa.Proposals = append(sa.Proposals, p)
		next = PayloadType(rest[0])
		rest = rest[plen:]
	}
	if len(rest) != 0 {
		return nil, errorf(BadProposalSyntax, PayloadSA, "malformed", "%d octets after the last proposal", len(rest))
	}
	if len(sa.Proposals) == 0 {
		return nil, errorf(BadProposalSyntax, PayloadSA, "malformed", "no proposal")
	}
	return sa, nil
}

// parseProposal parses a proposal after its generic header.
func parseProposal(b []byte) (Proposal, error) {
	p := Proposal{Number: b[0], Protocol: b[1]}
	spiSize, n := int(b[2]), int(b[3])
	if 4+spiSize > len(b) {
		return Proposal{}, errorf(BadProposalSyntax, PayloadSA, "malformed", "SPI of %d octets", spiSize)
	}
	if n == 0 || n > maxTransforms {
		return Proposal{}, errorf(BadProposalSyntax, PayloadSA, "malformed", "%d transforms", n)
	}
	p.SPI = b[4 : 4+spiSize]
	rest := b[4+spiSize:]
	next := PayloadTransform
	for next != PayloadNone {
		if next != PayloadTransform || len(p.Transforms) == n {
			return Proposal{}, errorf(BadProposalSyntax, PayloadSA, "malformed", "transform chain does not match the count %d", n)
		}
		if len(rest) < 8 {
			return Proposal{}, errorf(BadProposalSyntax, PayloadSA, "malformed", "truncated transform")
		}
		tlen := int(binary.BigEndian.Uint16(rest[2:]))
		if rest[1] != 0 || tlen < 8 || tlen > len(rest) {
			return Proposal{}, errorf(BadProposalSyntax, PayloadSA, "malformed", "transform length %d with %d octets left", tlen, len(rest))
		}
		if rest[6] != 0 || rest[7] != 0 {
			return Proposal{}, errorf(BadProposalSyntax, PayloadSA, "malformed", "transform reserved octets set")
		}
		attrs, err := parseAttributes(rest[8:tlen])
		if err != nil {
			return Proposal{}, err
		}
		p.Transforms = append(p.Transforms, Transform{Number: rest[4], ID: rest[5], Attributes: attrs})
		next = PayloadType(rest[0])
		rest = rest[tlen:]
	}
	if len(p.Transforms) != n || len(rest) != 0 {
		return Proposal{}, errorf(BadProposalSyntax, PayloadSA, "malformed", "%d transforms for a count of %d, %d octets left", len(p.Transforms), n, len(rest))
	}
	return p, nil
}

// ParseAttributes parses a run of data attributes (§3.3), as in a
// transform.
func parseAttributes(b []byte) ([]Attribute, error) {
	var out []Attribute
	for len(b) > 0 {
		if len(out) == maxAttributes {
			return nil, errorf(BadProposalSyntax, PayloadSA, "too_many", "more than %d attributes", maxAttributes)
		}
		if len(b) < 4 {
			return nil, errorf(BadProposalSyntax, PayloadSA, "malformed", "truncated attribute")
		}
		t := binary.BigEndian.Uint16(b)
		if t&0x8000 != 0 {
			out = append(out, Attribute{Type: t & 0x7fff, Basic: true, Value: b[2:4]})
			b = b[4:]
			continue
		}
		l := int(binary.BigEndian.Uint16(b[2:]))
		if 4+l > len(b) {
			return nil, errorf(BadProposalSyntax, PayloadSA, "malformed", "attribute %d of %d octets with %d left", t, l, len(b)-4)
		}
		out = append(out, Attribute{Type: t, Value: b[4 : 4+l]})
		b = b[4+l:]
	}
	return out, nil
}

func parseNotify(b []byte) (*Notify, error) {
	if len(b) < 8 {
		return nil, errorf(PayloadMalformed, PayloadN, "malformed", "%d octets", len(b))
	}
	spiSize := int(b[5])
	if 8+spiSize > len(b) {
		return nil, errorf(PayloadMalformed, PayloadN, "malformed", "SPI of %d octets", spiSize)
	}
	return &Notify{
		DOI: binary.BigEndian.Uint32(b), Protocol: b[4], Code: NotifyType(binary.BigEndian.Uint16(b[6:])),
		SPI: b[8 : 8+spiSize], Data: b[8+spiSize:],
	}, nil
}

func parseDelete(b []byte) (*Delete, error) {
	if len(b) < 8 {
		return nil, errorf(PayloadMalformed, PayloadD, "malformed", "%d octets", len(b))
	}
	d := &Delete{DOI: binary.BigEndian.Uint32(b), Protocol: b[4], SPISize: b[5]}
	n := int(binary.BigEndian.Uint16(b[6:]))
	rest := b[8:]
	if n == 0 || n > maxSPIs || d.SPISize == 0 || len(rest) != n*int(d.SPISize) {
		return nil, errorf(PayloadMalformed, PayloadD, "malformed", "%d SPIs of %d octets in %d", n, d.SPISize, len(rest))
	}
	for i := range n {
		d.SPIs = append(d.SPIs, rest[i*int(d.SPISize):(i+1)*int(d.SPISize)])
	}
	return d, nil
}

func parseNATOA(b []byte) (*NATOA, error) {
	if len(b) < 4 || b[1]|b[2]|b[3] != 0 {
		return nil, errorf(PayloadMalformed, PayloadNATOA, "malformed", "%d octets", len(b))
	}
	switch {
	case b[0] == IDIPv4 && len(b) == 8:
		return &NATOA{Addr: netip.AddrFrom4([4]byte(b[4:8]))}, nil
	case b[0] == IDIPv6 && len(b) == 20:
		return &NATOA{Addr: netip.AddrFrom16([16]byte(b[4:20]))}, nil
	}
	return nil, errorf(PayloadMalformed, PayloadNATOA, "malformed", "ID type %d with %d octets", b[0], len(b)-4)
}
