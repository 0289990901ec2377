package vici

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Packet types (README "Packet layer").
const (
	pktCmdRequest      = 0
	pktCmdResponse     = 1
	pktCmdUnknown      = 2
	pktEventRegister   = 3
	pktEventUnregister = 4
	pktEventConfirm    = 5
	pktEventUnknown    = 6
	pktEvent           = 7
)

// MaxSegment is the largest segment (packet) accepted or sent, strongSwan's
// VICI_MESSAGE_SIZE_MAX.
const MaxSegment = 512 * 1024

// packet is one packet a client sent.
type packet struct {
	typ  byte
	name string
	msg  *Message // CMD_REQUEST only
}

// readSegment reads one length-prefixed segment. A length of zero or above
// MaxSegment is malformed: no client sends one, and the length would
// otherwise decide how much memory a peer makes us hold.
func readSegment(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > MaxSegment {
		return nil, malformedf("segment length %d (expected 1 to %d)", n, MaxSegment)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// decodePacket parses a segment from a client. Only the three packet types
// a client sends are accepted; a register packet carries nothing after
// its name.
func decodePacket(b []byte) (packet, error) {
	if len(b) == 0 {
		return packet{}, malformedf("empty packet")
	}
	p := packet{typ: b[0]}
	switch p.typ {
	case pktCmdRequest, pktEventRegister, pktEventUnregister:
	default:
		return packet{}, malformedf("packet type %d is not one a client sends", p.typ)
	}
	name, rest, err := readName(b[1:])
	if err != nil {
		return packet{}, err
	}
	p.name = name
	if p.typ != pktCmdRequest {
		if len(rest) != 0 {
			return packet{}, malformedf("%d octets after the event name", len(rest))
		}
		return p, nil
	}
	if p.msg, err = DecodeMessage(rest); err != nil {
		return packet{}, err
	}
	return p, nil
}

// encodePacket frames a packet the server sends: type, name for the named
// types, message.
func encodePacket(typ byte, name string, m *Message) ([]byte, error) {
	b := make([]byte, 4, 64)
	b = append(b, typ)
	if typ == pktEvent {
		b = appendName(b, name)
	}
	if m != nil {
		b = m.Encode(b)
	}
	n := len(b) - 4
	if n > MaxSegment {
		return nil, fmt.Errorf("vici: %s message of %d octets exceeds %d", name, n, MaxSegment)
	}
	binary.BigEndian.PutUint32(b, uint32(n))
	return b, nil
}
