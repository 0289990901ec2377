package main

import (
	"encoding/binary"
	"errors"
	"slices"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// Additional key exchanges (RFC 9370) in IKE_INTERMEDIATE (RFC 9242), so
// that ikeload offers the hybrid post-quantum proposals iked and
// strongSwan 6 answer: after IKE_SA_INIT one IKE_INTERMEDIATE per
// additional exchange, the keys updated after each, their IntAuth in
// AUTH. The additional exchanges always use fresh keys (ML-KEM keys are
// never reused), whatever --fresh-dh says of the first one.

// intAuth is the IntAuth state of a handshake (RFC 9242 §3.3.2).
type intAuth struct {
	i, r []byte // IntAuth_iN, IntAuth_rN
	mid  uint32 // IKE_AUTH's message ID
}

// octets appends IntAuth_iN | IntAuth_rN | MID when IKE_INTERMEDIATE ran.
func (a *intAuth) octets(out []byte) []byte {
	if a.i == nil {
		return out
	}
	out = append(append(out, a.i...), a.r...)
	return binary.BigEndian.AppendUint32(out, a.mid)
}

// chain adds one message to a chain: prf(SK_p, IntAuth_(N-1) | A | P).
func chain(prf *transform.PRF, skp, prev []byte, hdr wire.Header, first wire.PayloadType, plain []byte) []byte {
	return prf.Sum(nil, skp, append(slices.Clone(prev), ike.IntAuthData(hdr, first, plain)...))
}

// intermediates runs the additional key exchanges the responder chose.
func (h *hs) intermediates() error {
	for i, g := range h.s.AddKE {
		if err := h.intermediate(i+1, g); err != nil {
			return err
		}
	}
	h.inter.mid = h.nextID
	return nil
}

// intermediate is one IKE_INTERMEDIATE: KEi(n), KEr(n), new keys.
func (h *hs) intermediate(n int, g transform.Group) error {
	c := h.c
	priv, err := g.GenerateKey(c.rnd)
	if err != nil {
		return fail("other", "%v", err)
	}
	inner := []wire.Payload{&wire.KE{Group: g.ID(), Data: priv.Public()}}
	id := h.nextID
	req, err := h.seal(wire.IKE_INTERMEDIATE, id, inner)
	if err != nil {
		return fail("other", "sealing: %v", err)
	}
	hdr := wire.Header{SPIi: h.spii, SPIr: h.spir, Version: wire.Version, Exchange: wire.IKE_INTERMEDIATE, Flags: wire.FlagInitiator, MessageID: id}
	h.inter.i = chain(h.s.PRF, h.keys.SkPi, h.inter.i, hdr, wire.PayloadKE, wire.AppendPayloads(nil, inner))
	nb, err := c.exchange(req, h.matchResponse(wire.IKE_INTERMEDIATE, id))
	if err != nil {
		return err
	}
	h.nextID++
	resp, first, plain, err := h.openPlain(c.buf[:nb])
	if err != nil {
		return fail("bad_response", "IKE_INTERMEDIATE response: %v", err)
	}
	for _, p := range resp {
		if nt, ok := p.(*wire.Notify); ok && nt.Code.IsError() {
			return fail(notifyReason(nt.Code), "IKE_INTERMEDIATE %d answered with notify %d", n, nt.Code)
		}
	}
	ke, _ := wire.Find(resp, wire.PayloadKE).(*wire.KE)
	if ke == nil || ke.Group != g.ID() {
		return fail("bad_response", "IKE_INTERMEDIATE %d response without the KE of %s", n, g.Name())
	}
	rhdr, _ := wire.ParseHeader(c.buf[:nb])
	h.inter.r = chain(h.s.PRF, h.keys.SkPr, h.inter.r, rhdr, first, plain)
	shared, err := priv.SharedSecret(ke.Data)
	if err != nil {
		return fail("bad_response", "IKE_INTERMEDIATE %d: %v", n, err)
	}
	// SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr) (RFC 9370 §2.2.2).
	skeyseed := transform.RekeySKEYSEED(h.s.PRF, h.keys.SkD, [][]byte{shared}, h.ni, h.nr)
	keys, err := transform.DeriveIKEKeys(h.s.PRF, skeyseed, h.ni, h.nr, h.spii, h.spir, h.s.Encr.KeyMaterialLen(h.s.KeyBits), h.s.Integ)
	if err != nil {
		return fail("other", "%v", err)
	}
	h.keys = keys
	if h.out, h.in, err = keys.Protectors(h.s.Encr, h.s.Integ, true); err != nil {
		return fail("other", "%v", err)
	}
	return nil
}

// openPlain is open with the decrypted inner payloads' octets and the
// first one's type, which IntAuth covers.
func (h *hs) openPlain(pkt []byte) ([]wire.Payload, wire.PayloadType, []byte, error) {
	m, err := wire.Parse(pkt)
	if err != nil {
		return nil, 0, nil, err
	}
	if len(m.Payloads) == 0 {
		return nil, 0, nil, errors.New("no SK payload")
	}
	sk, ok := m.Payloads[len(m.Payloads)-1].(*wire.Encrypted)
	if !ok {
		return nil, 0, nil, errors.New("no SK payload (fragmented responses are not supported)")
	}
	plain, err := h.in.Open(pkt[:len(pkt)-len(sk.Body)], sk.Body)
	if err != nil {
		return nil, 0, nil, err
	}
	ps, err := wire.ParsePayloads(sk.First, plain)
	return ps, sk.First, plain, err
}
