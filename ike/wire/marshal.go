package wire

import (
	"encoding/binary"
	"net/netip"
)

// attrUnknownPlaceholder is the attribute written for a transform whose
// UnknownAttrs is set: a TV attribute of the first private-use type
// (IANA "IKEv2 Transform Attribute Types"), so that a parsed transform
// serialises to one that parses the same.
const attrUnknownPlaceholder = 0x8000 | 16384

// put16 stores v big-endian at b[i:i+2].
func put16(b []byte, i int, v int) {
	binary.BigEndian.PutUint16(b[i:i+2], uint16(v))
}

// chainLen returns the serialised length of ps, for sizing buffers.
func chainLen(ps []Payload) int {
	n := 0
	for _, p := range ps {
		n += GenericHeaderLen + bodyLen(p)
	}
	return n
}

// bodyLen returns the serialised length of p's body.
func bodyLen(p Payload) int {
	switch p := p.(type) {
	case *SA:
		n := 0
		for i := range p.Proposals {
			pr := &p.Proposals[i]
			n += proposalHdrLen + len(pr.SPI)
			for _, t := range pr.Transforms {
				n += transformHdrLen
				if t.KeyLength != 0 {
					n += attrHdrLen
				}
				if t.UnknownAttrs {
					n += attrHdrLen
				}
			}
		}
		return n
	case *KE:
		return 4 + len(p.Data)
	case *ID:
		return 4 + len(p.Data)
	case *Cert:
		return 1 + len(p.Data)
	case *CertReq:
		return 1 + len(p.Data)
	case *Auth:
		return 4 + len(p.Data)
	case *Nonce:
		return len(p.Data)
	case *Notify:
		return 4 + len(p.SPI) + len(p.Data)
	case *Delete:
		n := 4
		for _, s := range p.SPIs {
			n += len(s)
		}
		return n
	case *VendorID:
		return len(p.Data)
	case *TS:
		n := 4
		for i := range p.Selectors {
			n += tsLen(&p.Selectors[i])
		}
		return n
	case *Encrypted:
		return len(p.Body)
	case *EncryptedFragment:
		return 4 + len(p.Body)
	case *CP:
		n := 4
		for _, a := range p.Attrs {
			n += attrHdrLen + len(a.Value)
		}
		return n
	case *EAP:
		return len(p.Data)
	case *Unknown:
		return len(p.Data)
	}
	return 0
}

func tsLen(s *TrafficSelector) int {
	if s.Type == TSIPv4AddrRange {
		return tsIPv4Len
	}
	return tsIPv6Len
}

// appendPayload appends p with its generic header; next is the type of the
// payload that follows (ignored for SK and SKF, whose Next Payload field
// names their first inner payload).
func appendPayload(b []byte, p Payload, next PayloadType) []byte {
	start := len(b)
	var flags byte
	switch p := p.(type) {
	case *Encrypted:
		next = p.First
	case *EncryptedFragment:
		next = p.First
	case *Unknown:
		if p.Critical {
			flags = critBit
		}
	}
	b = append(b, byte(next), flags, 0, 0)
	switch p := p.(type) {
	case *SA:
		b = appendSA(b, p)
	case *KE:
		b = binary.BigEndian.AppendUint16(b, p.Group)
		b = append(b, 0, 0)
		b = append(b, p.Data...)
	case *ID:
		b = p.AppendBody(b)
	case *Cert:
		b = append(b, p.Encoding)
		b = append(b, p.Data...)
	case *CertReq:
		b = append(b, p.Encoding)
		b = append(b, p.Data...)
	case *Auth:
		b = append(b, byte(p.Method), 0, 0, 0)
		b = append(b, p.Data...)
	case *Nonce:
		b = append(b, p.Data...)
	case *Notify:
		b = append(b, byte(p.Protocol), byte(len(p.SPI)))
		b = binary.BigEndian.AppendUint16(b, uint16(p.Code))
		b = append(b, p.SPI...)
		b = append(b, p.Data...)
	case *Delete:
		b = append(b, byte(p.Protocol), p.SPISize)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p.SPIs)))
		for _, s := range p.SPIs {
			b = append(b, s...)
		}
	case *VendorID:
		b = append(b, p.Data...)
	case *TS:
		b = append(b, byte(len(p.Selectors)), 0, 0, 0)
		for i := range p.Selectors {
			b = appendTS(b, &p.Selectors[i])
		}
	case *Encrypted:
		b = append(b, p.Body...)
	case *EncryptedFragment:
		b = binary.BigEndian.AppendUint16(b, p.Number)
		b = binary.BigEndian.AppendUint16(b, p.Total)
		b = append(b, p.Body...)
	case *CP:
		b = append(b, p.CfgType, 0, 0, 0)
		for _, a := range p.Attrs {
			b = binary.BigEndian.AppendUint16(b, a.Type&0x7fff)
			b = binary.BigEndian.AppendUint16(b, uint16(len(a.Value)))
			b = append(b, a.Value...)
		}
	case *EAP:
		b = append(b, p.Data...)
	case *Unknown:
		b = append(b, p.Data...)
	}
	put16(b, start+2, len(b)-start)
	return b
}

func appendSA(b []byte, p *SA) []byte {
	for i := range p.Proposals {
		pr := &p.Proposals[i]
		start := len(b)
		var last byte
		if i+1 < len(p.Proposals) {
			last = 2
		}
		b = append(b, last, 0, 0, 0, pr.Number, byte(pr.Protocol), byte(len(pr.SPI)), byte(len(pr.Transforms)))
		b = append(b, pr.SPI...)
		for j, t := range pr.Transforms {
			ts := len(b)
			var last byte
			if j+1 < len(pr.Transforms) {
				last = 3
			}
			b = append(b, last, 0, 0, 0, byte(t.Type), 0)
			b = binary.BigEndian.AppendUint16(b, t.ID)
			if t.KeyLength != 0 {
				b = binary.BigEndian.AppendUint16(b, 0x8000|AttrKeyLength)
				b = binary.BigEndian.AppendUint16(b, t.KeyLength)
			}
			if t.UnknownAttrs {
				b = binary.BigEndian.AppendUint16(b, attrUnknownPlaceholder)
				b = append(b, 0, 0)
			}
			put16(b, ts+2, len(b)-ts)
		}
		put16(b, start+2, len(b)-start)
	}
	return b
}

func appendTS(b []byte, s *TrafficSelector) []byte {
	b = append(b, byte(s.Type), s.IPProtocol)
	b = binary.BigEndian.AppendUint16(b, uint16(tsLen(s)))
	b = binary.BigEndian.AppendUint16(b, s.StartPort)
	b = binary.BigEndian.AppendUint16(b, s.EndPort)
	if s.Type == TSIPv4AddrRange {
		return appendAddr4(appendAddr4(b, s.StartAddr), s.EndAddr)
	}
	return appendAddr16(appendAddr16(b, s.StartAddr), s.EndAddr)
}

// appendAddr4 appends a as 4 octets; an address that is not IPv4 (or
// IPv4-mapped IPv6) is written as 0.0.0.0.
func appendAddr4(b []byte, a netip.Addr) []byte {
	a = a.Unmap()
	if !a.Is4() {
		return append(b, 0, 0, 0, 0)
	}
	v := a.As4()
	return append(b, v[:]...)
}

// appendAddr16 appends a as 16 octets (IPv4 as IPv4-mapped, the zero Addr
// as ::).
func appendAddr16(b []byte, a netip.Addr) []byte {
	v := a.As16()
	return append(b, v[:]...)
}
