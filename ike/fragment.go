package ike

import (
	"errors"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// IKE fragmentation (RFC 7383): an SK message larger than the configured
// fragment size travels as several messages, each carrying one Encrypted
// Fragment payload (SKF) that is encrypted and authenticated on its own.

// Reassembly bounds: a peer can only send fragments after IKE_SA_INIT
// (each one is authenticated before it is kept), and one message per SA
// and direction is reassembled at a time, so these bound the memory a
// fragment flood can take per IKE SA.
const (
	maxFragments      = 64
	maxReassembled    = 64 << 10
	reassemblyTimeout = 30 * time.Second
)

// DefaultFragmentSize is the largest IKE datagram (UDP payload) sent when
// fragmenting: what fits the IPv6 minimum MTU of 1280 octets after the IPv6
// and UDP headers, so that no IP fragmentation is needed on any path.
const DefaultFragmentSize = 1232

// errIncomplete means a fragment was kept and its message is not yet whole.
var errIncomplete = errors.New("fragment kept, message incomplete")

// reassembly collects the fragments of one message.
type reassembly struct {
	msgID   uint32
	total   uint16
	first   wire.PayloadType
	parts   [][]byte
	have    int
	size    int
	started time.Time
}

// errOversize is a message whose fragments reassemble to more than
// Config.MaxMessageSize.
var errOversize = errors.New("reassembled message larger than the maximum message size")

// fragmentNotify announces RFC 7383 support in IKE_SA_INIT.
func fragmentNotify() *wire.Notify {
	return &wire.Notify{Code: wire.NotifyIKEv2FragmentationSupported}
}

// reassemble keeps the decrypted fragment plain of f and, once all
// fragments of the message are in, returns the first inner payload's type
// and the whole message's inner payloads' octets (§2.6 of RFC 7383).
// Caller holds mu.
func (sa *ikeSA) reassemble(hdr *wire.Header, f *wire.EncryptedFragment, plain []byte) (wire.PayloadType, []byte, error) {
	if f.Number == 0 || f.Total == 0 || f.Number > f.Total || f.Total > maxFragments {
		wipe(plain)
		return 0, nil, &wire.Error{Notify: wire.NotifyInvalidSyntax, Payload: wire.PayloadSKF, Reason: "invalid_syntax", Detail: "fragment number out of range"}
	}
	slot := &sa.reqFragments
	if hdr.IsResponse() {
		slot = &sa.respFragments
	}
	now := sa.eng.cfg.Now()
	r := *slot
	// A new message, a stale one, or the sender refragmenting with another
	// total (RFC 7383 §2.6.1) starts over.
	if r == nil || r.msgID != hdr.MessageID || r.total != f.Total || now.Sub(r.started) > reassemblyTimeout {
		r.wipe()
		r = &reassembly{msgID: hdr.MessageID, total: f.Total, parts: make([][]byte, f.Total), started: now}
		*slot = r
	}
	i := f.Number - 1
	if r.parts[i] != nil {
		wipe(plain)
		return 0, nil, errIncomplete // a duplicate
	}
	if r.size+len(plain) > min(maxReassembled, sa.eng.cfg.MaxMessageSize) {
		// Fragments count by the size of the message they make up.
		r.wipe()
		*slot = nil
		wipe(plain)
		return 0, nil, errOversize
	}
	if f.Number == 1 {
		r.first = f.First
	}
	r.parts[i] = plain
	r.have++
	r.size += len(plain)
	if r.have < int(r.total) {
		return 0, nil, errIncomplete
	}
	whole := make([]byte, 0, r.size)
	for _, p := range r.parts {
		whole = append(whole, p...)
	}
	r.wipe()
	*slot = nil
	return r.first, whole, nil
}

func (r *reassembly) wipe() {
	if r == nil {
		return
	}
	for _, p := range r.parts {
		wipe(p)
	}
}

// fragmentChunk returns the most plaintext octets one fragment can carry
// so that its datagram stays within size.
func fragmentChunk(p *transform.Protector, size int, encap bool) int {
	room := size - wire.HeaderLen - wire.GenericHeaderLen - 4
	if encap {
		room -= 4 // the non-ESP marker
	}
	chunk := room
	for chunk > 0 && p.SealedLen(chunk) > room {
		chunk--
	}
	return chunk
}

// sealFragments builds the fragments of a message whose inner payloads are
// plain (RFC 7383 §2.5). Caller holds mu.
func (sa *ikeSA) sealFragments(exch wire.ExchangeType, msgID uint32, isResponse bool, first wire.PayloadType, plain []byte) ([][]byte, error) {
	chunk := fragmentChunk(sa.out, sa.eng.cfg.FragmentSize, sa.encap)
	if chunk <= 0 {
		return nil, errors.New("fragment size too small for the negotiated cipher")
	}
	total := (len(plain) + chunk - 1) / chunk
	if total > maxFragments {
		return nil, errors.New("message needs more fragments than allowed")
	}
	var out [][]byte
	for n := 1; n <= total; n++ {
		part := plain[(n-1)*chunk : min(n*chunk, len(plain))]
		bodyLen := sa.out.SealedLen(len(part))
		length := wire.HeaderLen + wire.GenericHeaderLen + 4 + bodyLen
		hdr := wire.Header{
			SPIi: sa.spii, SPIr: sa.spir, NextPayload: wire.PayloadSKF, Version: wire.Version,
			Exchange: exch, Flags: sa.flags(isResponse), MessageID: msgID, Length: uint32(length),
		}
		buf := make([]byte, 0, length)
		buf = wire.AppendHeader(buf, &hdr)
		next := wire.PayloadNone
		if n == 1 {
			next = first
		}
		skfLen := wire.GenericHeaderLen + 4 + bodyLen
		buf = append(buf, byte(next), 0, byte(skfLen>>8), byte(skfLen), byte(n>>8), byte(n), byte(total>>8), byte(total))
		pkt, err := sa.out.Seal(buf, part, sa.eng.cfg.Rand)
		if err != nil {
			return nil, err
		}
		out = append(out, pkt)
	}
	return out, nil
}
