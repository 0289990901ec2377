package wire

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// Reasons carried in Error.Reason.
const (
	reasonTruncatedHeader = "truncated_header"
	reasonBadLength       = "bad_length"
	reasonUnsupportedCrit = "unsupported_critical_payload"
	reasonBadVersion      = "bad_version"
	reasonInvalidSyntax   = "invalid_syntax"
)

// Nonce size bounds (§3.9).
const (
	minNonceLen = 16
	maxNonceLen = 256
)

// Fixed sizes of substructures.
const (
	proposalHdrLen  = 8  // §3.3.1, without the SPI
	transformHdrLen = 8  // §3.3.2
	attrHdrLen      = 4  // §3.3.5 and §3.15.1
	tsIPv4Len       = 16 // §3.13.1
	tsIPv6Len       = 40 // §3.13.1
	critBit         = 0x80
)

func lengthErr(t PayloadType, detail string) *Error {
	return &Error{Notify: NotifyInvalidSyntax, Payload: t, Reason: reasonBadLength, Detail: detail}
}

func syntaxErr(t PayloadType, detail string) *Error {
	return &Error{Notify: NotifyInvalidSyntax, Payload: t, Reason: reasonInvalidSyntax, Detail: detail}
}

// sub returns b[i:j] with its capacity limited to its length, or nil when
// empty, so that parsed fields alias the input without letting appends
// clobber it, and absent fields parse as nil.
func sub(b []byte, i, j int) []byte {
	if i == j {
		return nil
	}
	return b[i:j:j]
}

// countChain walks the generic headers of a chain to size the result slice;
// it stops early on faults, which parseChain reports.
func countChain(next PayloadType, b []byte) int {
	n := 0
	for next != PayloadNone && len(b) >= GenericHeaderLen {
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if l < GenericHeaderLen || l > len(b) {
			break
		}
		n++
		if next == PayloadSK || next == PayloadSKF {
			break
		}
		next = PayloadType(b[0])
		b = b[l:]
	}
	return n
}

func parseChain(next PayloadType, b []byte) ([]Payload, error) {
	if next == PayloadNone {
		if len(b) != 0 {
			return nil, lengthErr(PayloadNone, strconv.Itoa(len(b))+" octets after the last payload")
		}
		return nil, nil
	}
	ps := make([]Payload, 0, countChain(next, b))
	off := 0
	for next != PayloadNone {
		t := next
		rest := len(b) - off
		if rest < GenericHeaderLen {
			return nil, lengthErr(t, "payload header truncated")
		}
		h := b[off : off+GenericHeaderLen]
		l := int(binary.BigEndian.Uint16(h[2:4]))
		if l < GenericHeaderLen {
			return nil, lengthErr(t, "payload length "+strconv.Itoa(l)+" below 4")
		}
		if l > rest {
			return nil, lengthErr(t, "payload length "+strconv.Itoa(l)+" past the end ("+strconv.Itoa(rest)+" octets left)")
		}
		next = PayloadType(h[0])
		body := b[off+GenericHeaderLen : off+l : off+l]
		off += l
		var p Payload
		var err error
		switch t {
		case PayloadSA:
			p, err = parseSA(body)
		case PayloadKE:
			p, err = parseKE(body)
		case PayloadIDi, PayloadIDr:
			p, err = parseID(t, body)
		case PayloadCERT:
			if len(body) < 1 {
				return nil, syntaxErr(t, "empty certificate payload")
			}
			p = &Cert{Encoding: body[0], Data: sub(body, 1, len(body))}
		case PayloadCERTREQ:
			if len(body) < 1 {
				return nil, syntaxErr(t, "empty certificate request payload")
			}
			p = &CertReq{Encoding: body[0], Data: sub(body, 1, len(body))}
		case PayloadAUTH:
			if len(body) < 4 {
				return nil, syntaxErr(t, "authentication payload shorter than 4 octets")
			}
			p = &Auth{Method: AuthMethod(body[0]), Data: sub(body, 4, len(body))}
		case PayloadNonce:
			if len(body) < minNonceLen || len(body) > maxNonceLen {
				return nil, syntaxErr(t, "nonce of "+strconv.Itoa(len(body))+" octets, not 16 to 256")
			}
			p = &Nonce{Data: sub(body, 0, len(body))}
		case PayloadNotify:
			p, err = parseNotify(body)
		case PayloadDelete:
			p, err = parseDelete(body)
		case PayloadVendorID:
			p = &VendorID{Data: sub(body, 0, len(body))}
		case PayloadTSi, PayloadTSr:
			p, err = parseTS(t, body)
		case PayloadSK:
			p = &Encrypted{First: next, Body: sub(body, 0, len(body))}
			next = PayloadNone
		case PayloadSKF:
			if len(body) < 4 {
				return nil, syntaxErr(t, "encrypted fragment shorter than 4 octets")
			}
			f := &EncryptedFragment{
				First:  next,
				Number: binary.BigEndian.Uint16(body[0:2]),
				Total:  binary.BigEndian.Uint16(body[2:4]),
				Body:   sub(body, 4, len(body)),
			}
			if f.Number == 0 || f.Total == 0 || f.Number > f.Total {
				return nil, syntaxErr(t, "fragment "+strconv.Itoa(int(f.Number))+" of "+strconv.Itoa(int(f.Total)))
			}
			p = f
			next = PayloadNone
		case PayloadCP:
			p, err = parseCP(body)
		case PayloadEAP:
			p = &EAP{Data: sub(body, 0, len(body))}
		default:
			if h[1]&critBit != 0 {
				return nil, &Error{Notify: NotifyUnsupportedCriticalPayload, Payload: t,
					Reason: reasonUnsupportedCrit, Detail: "unknown critical payload type " + strconv.Itoa(int(t))}
			}
			p = &Unknown{T: t, Data: sub(body, 0, len(body))}
		}
		if err != nil {
			return nil, err
		}
		ps = append(ps, p)
		if (t == PayloadSK || t == PayloadSKF) && off != len(b) {
			return nil, syntaxErr(t, "encrypted payload is not the last payload")
		}
	}
	if off != len(b) {
		return nil, lengthErr(ps[len(ps)-1].Type(), strconv.Itoa(len(b)-off)+" octets after the last payload")
	}
	return ps, nil
}

func parseKE(body []byte) (*KE, error) {
	if len(body) < 4 {
		return nil, syntaxErr(PayloadKE, "key exchange payload shorter than 4 octets")
	}
	return &KE{Group: binary.BigEndian.Uint16(body[0:2]), Data: sub(body, 4, len(body))}, nil
}

func parseID(t PayloadType, body []byte) (*ID, error) {
	if len(body) < 4 {
		return nil, syntaxErr(t, "identification payload shorter than 4 octets")
	}
	return &ID{Responder: t == PayloadIDr, IDType: IDType(body[0]), Data: sub(body, 4, len(body))}, nil
}

func parseNotify(body []byte) (*Notify, error) {
	if len(body) < 4 {
		return nil, syntaxErr(PayloadNotify, "notify payload shorter than 4 octets")
	}
	spiEnd := 4 + int(body[1])
	if spiEnd > len(body) {
		return nil, syntaxErr(PayloadNotify, "notify SPI size "+strconv.Itoa(int(body[1]))+" past the end")
	}
	return &Notify{
		Protocol: ProtocolID(body[0]),
		SPI:      sub(body, 4, spiEnd),
		Code:     NotifyType(binary.BigEndian.Uint16(body[2:4])),
		Data:     sub(body, spiEnd, len(body)),
	}, nil
}

func parseDelete(body []byte) (*Delete, error) {
	if len(body) < 4 {
		return nil, syntaxErr(PayloadDelete, "delete payload shorter than 4 octets")
	}
	d := &Delete{Protocol: ProtocolID(body[0]), SPISize: body[1]}
	n := int(binary.BigEndian.Uint16(body[2:4]))
	switch {
	case d.Protocol == ProtoIKE && d.SPISize != 0:
		return nil, syntaxErr(PayloadDelete, "IKE delete with SPI size "+strconv.Itoa(int(d.SPISize)))
	case (d.Protocol == ProtoAH || d.Protocol == ProtoESP) && d.SPISize != 4:
		return nil, syntaxErr(PayloadDelete, "AH/ESP delete with SPI size "+strconv.Itoa(int(d.SPISize)))
	case d.SPISize == 0 && n != 0:
		return nil, syntaxErr(PayloadDelete, "delete with SPI size 0 and "+strconv.Itoa(n)+" SPIs")
	}
	size := int(d.SPISize)
	if len(body) != 4+n*size {
		return nil, syntaxErr(PayloadDelete, strconv.Itoa(n)+" SPIs of "+strconv.Itoa(size)+
			" octets do not fill "+strconv.Itoa(len(body)-4)+" octets")
	}
	if n > 0 {
		d.SPIs = make([][]byte, n)
		for i := range d.SPIs {
			d.SPIs[i] = sub(body, 4+i*size, 4+(i+1)*size)
		}
	}
	return d, nil
}

func parseTS(t PayloadType, body []byte) (*TS, error) {
	if len(body) < 4 {
		return nil, syntaxErr(t, "traffic selector payload shorter than 4 octets")
	}
	n := int(body[0])
	p := &TS{Responder: t == PayloadTSr}
	if n > 0 {
		p.Selectors = make([]TrafficSelector, 0, n)
	}
	b := body[4:]
	for range n {
		if len(b) < 4 {
			return nil, syntaxErr(t, "traffic selector truncated")
		}
		s := TrafficSelector{Type: TSType(b[0]), IPProtocol: b[1]}
		l := int(binary.BigEndian.Uint16(b[2:4]))
		switch s.Type {
		case TSIPv4AddrRange:
			if l != tsIPv4Len || len(b) < l {
				return nil, syntaxErr(t, "IPv4 traffic selector of length "+strconv.Itoa(l))
			}
			s.StartAddr = netip.AddrFrom4([4]byte(b[8:12]))
			s.EndAddr = netip.AddrFrom4([4]byte(b[12:16]))
		case TSIPv6AddrRange:
			if l != tsIPv6Len || len(b) < l {
				return nil, syntaxErr(t, "IPv6 traffic selector of length "+strconv.Itoa(l))
			}
			s.StartAddr = netip.AddrFrom16([16]byte(b[8:24]))
			s.EndAddr = netip.AddrFrom16([16]byte(b[24:40]))
		default:
			return nil, syntaxErr(t, "unknown traffic selector type "+strconv.Itoa(int(s.Type)))
		}
		s.StartPort = binary.BigEndian.Uint16(b[4:6])
		s.EndPort = binary.BigEndian.Uint16(b[6:8])
		p.Selectors = append(p.Selectors, s)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, syntaxErr(t, strconv.Itoa(len(b))+" octets after the last traffic selector")
	}
	return p, nil
}

func parseCP(body []byte) (*CP, error) {
	if len(body) < 4 {
		return nil, syntaxErr(PayloadCP, "configuration payload shorter than 4 octets")
	}
	p := &CP{CfgType: body[0]}
	b := body[4:]
	n := 0
	for c := b; len(c) >= attrHdrLen; n++ {
		l := attrHdrLen + int(binary.BigEndian.Uint16(c[2:4]))
		if l > len(c) {
			break
		}
		c = c[l:]
	}
	if n > 0 {
		p.Attrs = make([]CPAttribute, 0, n)
	}
	for len(b) > 0 {
		if len(b) < attrHdrLen {
			return nil, syntaxErr(PayloadCP, "configuration attribute header truncated")
		}
		l := attrHdrLen + int(binary.BigEndian.Uint16(b[2:4]))
		if l > len(b) {
			return nil, syntaxErr(PayloadCP, "configuration attribute length past the end")
		}
		p.Attrs = append(p.Attrs, CPAttribute{
			Type:  binary.BigEndian.Uint16(b[0:2]) & 0x7fff,
			Value: sub(b, attrHdrLen, l),
		})
		b = b[l:]
	}
	return p, nil
}

func parseSA(body []byte) (*SA, error) {
	// Count the proposals first so that one allocation holds them all.
	n := 0
	for c := body; len(c) >= proposalHdrLen; n++ {
		l := int(binary.BigEndian.Uint16(c[2:4]))
		if l < proposalHdrLen || l > len(c) {
			break
		}
		c = c[l:]
	}
	if len(body) == 0 {
		return nil, syntaxErr(PayloadSA, "SA payload without proposals")
	}
	sa := &SA{Proposals: make([]Proposal, 0, n)}
	b := body
	for len(b) > 0 {
		if len(b) < proposalHdrLen {
			return nil, syntaxErr(PayloadSA, "proposal header truncated")
		}
		last := b[0]
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if l > len(b) {
			return nil, syntaxErr(PayloadSA, "proposal length "+strconv.Itoa(l)+" past the end")
		}
		if last != 0 && last != 2 {
			return nil, syntaxErr(PayloadSA, "proposal last-substructure "+strconv.Itoa(int(last)))
		}
		if (last == 0) != (l == len(b)) {
			return nil, syntaxErr(PayloadSA, "proposal last-substructure does not match the proposals present")
		}
		spiEnd := proposalHdrLen + int(b[6])
		if l < spiEnd {
			return nil, syntaxErr(PayloadSA, "proposal length "+strconv.Itoa(l)+" shorter than its header and SPI")
		}
		pr := Proposal{
			Number:   b[4],
			Protocol: ProtocolID(b[5]),
			SPI:      sub(b, proposalHdrLen, spiEnd),
		}
		ts, err := parseTransforms(int(b[7]), b[spiEnd:l])
		if err != nil {
			return nil, err
		}
		pr.Transforms = ts
		sa.Proposals = append(sa.Proposals, pr)
		b = b[l:]
	}
	return sa, nil
}

func parseTransforms(n int, b []byte) ([]Transform, error) {
	var ts []Transform
	if n > 0 {
		ts = make([]Transform, 0, n)
	}
	for i := range n {
		if len(b) < transformHdrLen {
			return nil, syntaxErr(PayloadSA, "transform header truncated")
		}
		last := b[0]
		l := int(binary.BigEndian.Uint16(b[2:4]))
		if l < transformHdrLen || l > len(b) {
			return nil, syntaxErr(PayloadSA, "transform length "+strconv.Itoa(l))
		}
		if last != 0 && last != 3 {
			return nil, syntaxErr(PayloadSA, "transform last-substructure "+strconv.Itoa(int(last)))
		}
		if (last == 0) != (i == n-1) {
			return nil, syntaxErr(PayloadSA, "transform last-substructure does not match the transform count")
		}
		t := Transform{Type: TransformType(b[4]), ID: binary.BigEndian.Uint16(b[6:8])}
		for a := b[transformHdrLen:l]; len(a) > 0; {
			if len(a) < attrHdrLen {
				return nil, syntaxErr(PayloadSA, "transform attribute truncated")
			}
			typ := binary.BigEndian.Uint16(a[0:2])
			if typ&0x8000 != 0 { // TV
				if typ&0x7fff == AttrKeyLength {
					t.KeyLength = binary.BigEndian.Uint16(a[2:4])
				} else {
					t.UnknownAttrs = true
				}
				a = a[attrHdrLen:]
				continue
			}
			al := attrHdrLen + int(binary.BigEndian.Uint16(a[2:4]))
			if al > len(a) {
				return nil, syntaxErr(PayloadSA, "transform attribute length past the end")
			}
			t.UnknownAttrs = true
			a = a[al:]
		}
		ts = append(ts, t)
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, syntaxErr(PayloadSA, strconv.Itoa(len(b))+" octets after the last transform of a proposal")
	}
	return ts, nil
}
