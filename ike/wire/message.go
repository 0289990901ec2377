package wire

import (
	"encoding/binary"
	"slices"
	"strconv"
)

// Error is a fault found while parsing, with the notify that answers it
// (RFC 7296 §2.21) and a short reason for metrics and logs.
type Error struct {
	// Notify is INVALID_SYNTAX, UNSUPPORTED_CRITICAL_PAYLOAD or INVALID_MAJOR_VERSION.
	Notify NotifyType
	// Payload is the offending payload type; for UNSUPPORTED_CRITICAL_PAYLOAD
	// it is the notification data (§3.10.1).
	Payload PayloadType
	// Reason is a stable metric label: "truncated_header", "bad_length",
	// "unsupported_critical_payload", "bad_version", "invalid_syntax".
	Reason string
	// Detail is a human-readable explanation for logs.
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	s := "ike/wire: " + e.Reason
	if e.Payload != PayloadNone {
		s += " in payload " + strconv.Itoa(int(e.Payload))
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// ParseHeader parses the fixed header at the start of b. It fails with
// Reason "truncated_header" when b is shorter than HeaderLen or than the
// header's Length field, "bad_length" when Length is below HeaderLen, and
// "bad_version" (INVALID_MAJOR_VERSION) when the major version is not 2.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, &Error{Notify: NotifyInvalidSyntax, Reason: reasonTruncatedHeader,
			Detail: "message shorter than the IKE header"}
	}
	h := Header{
		SPIi:        binary.BigEndian.Uint64(b[0:8]),
		SPIr:        binary.BigEndian.Uint64(b[8:16]),
		NextPayload: PayloadType(b[16]),
		Version:     b[17],
		Exchange:    ExchangeType(b[18]),
		Flags:       Flags(b[19]),
		MessageID:   binary.BigEndian.Uint32(b[20:24]),
		Length:      binary.BigEndian.Uint32(b[24:28]),
	}
	if h.Version>>4 != Version>>4 {
		return h, &Error{Notify: NotifyInvalidMajorVersion, Reason: reasonBadVersion,
			Detail: "major version " + strconv.Itoa(int(h.Version>>4))}
	}
	if h.Length < HeaderLen {
		return h, &Error{Notify: NotifyInvalidSyntax, Reason: reasonBadLength,
			Detail: "header length " + strconv.FormatUint(uint64(h.Length), 10) + " below 28"}
	}
	if uint64(len(b)) < uint64(h.Length) {
		return h, &Error{Notify: NotifyInvalidSyntax, Reason: reasonTruncatedHeader,
			Detail: "header length " + strconv.FormatUint(uint64(h.Length), 10) +
				" exceeds the " + strconv.Itoa(len(b)) + " octets received"}
	}
	return h, nil
}

// Parse parses a whole message: the header, then the payload chain. b must
// hold exactly Header.Length octets (extra octets are an error). An SK or
// SKF payload must be the last one. Payloads alias b.
func Parse(b []byte) (*Message, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	if uint64(len(b)) != uint64(h.Length) {
		return nil, &Error{Notify: NotifyInvalidSyntax, Reason: reasonBadLength,
			Detail: strconv.Itoa(len(b)-int(h.Length)) + " octets past the header length"}
	}
	ps, err := ParsePayloads(h.NextPayload, b[HeaderLen:])
	if err != nil {
		return nil, err
	}
	return &Message{Header: h, Payloads: ps}, nil
}

// ParsePayloads parses a payload chain whose first payload is of type first,
// such as the decrypted contents of an SK payload. Payloads alias b.
func ParsePayloads(first PayloadType, b []byte) ([]Payload, error) {
	return parseChain(first, b)
}

// AppendHeader appends the 28-octet header h to b, exactly as given.
func AppendHeader(b []byte, h *Header) []byte {
	b = binary.BigEndian.AppendUint64(b, h.SPIi)
	b = binary.BigEndian.AppendUint64(b, h.SPIr)
	b = append(b, byte(h.NextPayload), h.Version, byte(h.Exchange), byte(h.Flags))
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// AppendPayloads appends the chain ps to b, with each generic header's Next
// Payload and length filled in; the last payload's Next Payload is 0. The
// chain's first type is ps[0].Type(). An *Encrypted must be last.
func AppendPayloads(b []byte, ps []Payload) []byte {
	if n := chainLen(ps); cap(b)-len(b) < n {
		b = slices.Grow(b, n)
	}
	return appendChain(b, ps)
}

// appendChain is AppendPayloads without sizing the buffer first.
func appendChain(b []byte, ps []Payload) []byte {
	for i, p := range ps {
		next := PayloadNone
		if i+1 < len(ps) {
			next = ps[i+1].Type()
		}
		b = appendPayload(b, p, next)
	}
	return b
}

// Marshal serialises m, setting Header.NextPayload to the first payload's
// type (0 when there is none) and Header.Length to the total length; m's
// Header is updated to match what was written.
func (m *Message) Marshal() []byte {
	b := make([]byte, HeaderLen, HeaderLen+chainLen(m.Payloads))
	b = appendChain(b, m.Payloads)
	m.Header.NextPayload = PayloadNone
	if len(m.Payloads) > 0 {
		m.Header.NextPayload = m.Payloads[0].Type()
	}
	m.Header.Length = uint32(len(b))
	AppendHeader(b[:0], &m.Header)
	return b
}

// AppendBody appends the ID payload body that AUTH covers (RFC 7296 §2.15
// "RestOfInitIDPayload"): ID Type, three reserved octets, then Data.
func (p *ID) AppendBody(b []byte) []byte {
	b = append(b, byte(p.IDType), 0, 0, 0)
	return append(b, p.Data...)
}

// Find returns the first payload of type t in ps, or nil.
func Find(ps []Payload, t PayloadType) Payload {
	for _, p := range ps {
		if p.Type() == t {
			return p
		}
	}
	return nil
}

// FindNotify returns the first Notify of type code in ps, or nil.
func FindNotify(ps []Payload, code NotifyType) *Notify {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.Code == code {
			return n
		}
	}
	return nil
}
