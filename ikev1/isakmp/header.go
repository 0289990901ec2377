package isakmp

import (
	"encoding/binary"
	"fmt"
)

// Header is the ISAKMP header (RFC 2408 §3.1).
type Header struct {
	// ICookie and RCookie are the initiator's and responder's cookies,
	// the ISAKMP SA's SPI (RFC 2408 §2.5.3).
	ICookie, RCookie uint64
	// Next is the type of the first payload.
	Next      PayloadType
	Version   uint8
	Exchange  Exchange
	Flags     uint8
	MessageID uint32
	// Length is the whole message's length, header included.
	Length uint32
}

// Encrypted reports whether the payloads after the header are encrypted.
func (h *Header) Encrypted() bool { return h.Flags&FlagEncryption != 0 }

// ParseHeader reads the header at the start of b. It checks the version
// (INVALID-MAJOR-VERSION for anything but 1, INVALID-MINOR-VERSION for a
// minor version above 0), the flags and the length (which must be the
// datagram's: an ISAKMP message fills its datagram).
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderLen {
		return Header{}, errorf(PayloadMalformed, PayloadNone, "truncated_header", "%d octets", len(b))
	}
	h := Header{
		ICookie:   binary.BigEndian.Uint64(b[0:8]),
		RCookie:   binary.BigEndian.Uint64(b[8:16]),
		Next:      PayloadType(b[16]),
		Version:   b[17],
		Exchange:  Exchange(b[18]),
		Flags:     b[19],
		MessageID: binary.BigEndian.Uint32(b[20:24]),
		Length:    binary.BigEndian.Uint32(b[24:28]),
	}
	if MajorVersion(h.Version) != 1 {
		return h, errorf(InvalidMajorVersion, PayloadNone, "bad_version", "version %#02x", h.Version)
	}
	if h.Version&0x0f != 0 {
		return h, errorf(InvalidMinorVersion, PayloadNone, "bad_version", "version %#02x", h.Version)
	}
	if h.Flags&^(FlagEncryption|FlagCommit|FlagAuthOnly) != 0 {
		return h, errorf(InvalidFlags, PayloadNone, "bad_flags", "flags %#02x", h.Flags)
	}
	if int64(h.Length) != int64(len(b)) {
		return h, errorf(UnequalPayloadLengths, PayloadNone, "bad_length", "header length %d, datagram %d", h.Length, len(b))
	}
	if h.ICookie == 0 {
		return h, errorf(InvalidCookie, PayloadNone, "bad_cookie", "zero initiator cookie")
	}
	return h, nil
}

// AppendHeader appends the header's 28 octets to b.
func (h *Header) AppendHeader(b []byte) []byte {
	b = binary.BigEndian.AppendUint64(b, h.ICookie)
	b = binary.BigEndian.AppendUint64(b, h.RCookie)
	b = append(b, byte(h.Next), h.Version, byte(h.Exchange), h.Flags)
	b = binary.BigEndian.AppendUint32(b, h.MessageID)
	return binary.BigEndian.AppendUint32(b, h.Length)
}

// Error is a fault found while parsing: the notification that answers it
// (RFC 2408 §3.14.1), the payload it was found in, a stable reason for
// metrics and a detail for logs.
type Error struct {
	Notify  NotifyType
	Payload PayloadType
	// Reason is a stable label: "truncated_header", "bad_version",
	// "bad_flags", "bad_length", "bad_cookie", "bad_payload_type",
	// "malformed", "too_many", "bad_doi", "bad_situation".
	Reason string
	Detail string
}

// Error implements error.
func (e *Error) Error() string {
	s := "isakmp: " + e.Reason
	if e.Payload != PayloadNone {
		s += " in " + e.Payload.String() + " payload"
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

func errorf(n NotifyType, p PayloadType, reason, format string, args ...any) *Error {
	return &Error{Notify: n, Payload: p, Reason: reason, Detail: fmt.Sprintf(format, args...)}
}
