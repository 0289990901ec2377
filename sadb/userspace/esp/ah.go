package esp

import (
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"hash"
)

// ProtoAH and ProtoESP are the IP protocol numbers of AH and ESP.
const (
	ProtoESP byte = 50
	ProtoAH  byte = 51
)

// AH is the state of one unidirectional AH SA (RFC 4302) in tunnel mode
// over IPv4: integrity of the outer header's immutable fields, the AH
// header and the inner packet, with HMAC-SHA2 (RFC 4868).
type AH struct {
	spi    uint32
	esn    bool
	seq    uint64
	mac    hash.Hash
	icvLen int
	ahLen  int // AH header with ICV and padding to 32 bits
	replay Replay

	macOut [64]byte
	icvIn  [64]byte
	seqHi  [4]byte
}

// NewAH makes an AH SA; c.EncrID must be 0.
func NewAH(c Config) (*AH, error) {
	if c.EncrID != 0 {
		return nil, fmt.Errorf("esp: AH takes no encryption transform (got %d)", c.EncrID)
	}
	a := &AH{spi: c.SPI, esn: c.ESN}
	var err error
	if a.mac, a.icvLen, err = newMAC(c.IntegID, c.IntegKey); err != nil {
		return nil, err
	}
	a.ahLen = (12 + a.icvLen + 3) &^ 3
	a.replay.Init(c.ReplayWindow, c.ESN)
	return a, nil
}

// SPI returns the SA's SPI.
func (a *AH) SPI() uint32 { return a.spi }

// HeaderLen is the room SealIPv4 needs before the payload: the outer IPv4
// header and the AH header.
func (a *AH) HeaderLen() int { return 20 + a.ahLen }

// Seq returns the last sequence number sent.
func (a *AH) Seq() uint64 { return a.seq }

// SetSeq sets the last sequence number sent.
func (a *AH) SetSeq(seq uint64) { a.seq = seq }

// Replay returns the inbound anti-replay window.
func (a *AH) Replay() *Replay { return &a.replay }

// SealIPv4 builds, in place before buf[off:off+n], the outer IPv4 header
// (src to dst, identification id, TTL 64) and the AH header protecting the
// inner packet, and returns the whole outer packet.
func (a *AH) SealIPv4(buf []byte, off, n int, next byte, src, dst [4]byte, id uint16) ([]byte, error) {
	start := off - a.HeaderLen()
	if start < 0 || n < 0 || off+n > len(buf) || 20+a.ahLen+n > 0xffff {
		return nil, ErrNoRoom
	}
	seq := a.seq + 1
	if (!a.esn && seq > 0xffffffff) || seq == 0 {
		return nil, ErrSeqExhausted
	}
	a.seq = seq
	p := buf[start : off+n]
	ip := p[:20]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(p)))
	binary.BigEndian.PutUint16(ip[4:6], id)
	ip[6], ip[7], ip[8], ip[9] = 0, 0, 0, ProtoAH // mutable fields zero for the ICV
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	h := p[20 : 20+a.ahLen]
	h[0], h[1], h[2], h[3] = next, byte(a.ahLen/4-2), 0, 0
	binary.BigEndian.PutUint32(h[4:8], a.spi)
	binary.BigEndian.PutUint32(h[8:12], uint32(seq))
	clear(h[12:])
	copy(h[12:], a.icv(p, seq))
	ip[8] = 64
	binary.BigEndian.PutUint16(ip[10:12], ipv4Checksum(ip))
	return p, nil
}

// OpenIPv4 verifies the AH-protected IPv4 packet pkt and returns the
// protected payload (a sub-slice of pkt), its next header and the sequence
// number. pkt is modified. Packets with IPv4 options are refused.
func (a *AH) OpenIPv4(pkt []byte) (payload []byte, next byte, seq uint64, err error) {
	if len(pkt) < 20+a.ahLen || pkt[0] != 0x45 || pkt[9] != ProtoAH {
		return nil, 0, 0, ErrMalformed
	}
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	if total < 20+a.ahLen || total > len(pkt) {
		return nil, 0, 0, ErrMalformed
	}
	if binary.BigEndian.Uint16(pkt[6:8])&0x3fff != 0 {
		return nil, 0, 0, ErrMalformed // a fragment: reassembly is the kernel's
	}
	p := pkt[:total]
	h := p[20 : 20+a.ahLen]
	if (int(h[1])+2)*4 != a.ahLen {
		return nil, 0, 0, ErrMalformed
	}
	seq, ok := a.replay.Check(binary.BigEndian.Uint32(h[8:12]))
	if !ok {
		return nil, 0, seq, ErrReplay
	}
	icv := a.icvIn[:a.icvLen]
	copy(icv, h[12:])
	clear(h[12:])
	p[1], p[6], p[7], p[8], p[10], p[11] = 0, 0, 0, 0, 0, 0
	if subtle.ConstantTimeCompare(a.icv(p, seq), icv) != 1 {
		return nil, 0, seq, ErrAuth
	}
	if !a.replay.Accept(seq) {
		return nil, 0, seq, ErrReplay
	}
	return p[20+a.ahLen:], h[0], seq, nil
}

func (a *AH) icv(b []byte, seq uint64) []byte {
	a.mac.Reset()
	a.mac.Write(b)
	if a.esn {
		binary.BigEndian.PutUint32(a.seqHi[:], uint32(seq>>32))
		a.mac.Write(a.seqHi[:])
	}
	return a.mac.Sum(a.macOut[:0])[:a.icvLen]
}

func ipv4Checksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
