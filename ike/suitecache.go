package ike

import (
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// IKE SAs negotiated alike share one suite: a responder holding 100,000
// SAs would otherwise keep 100,000 equal copies. Suites are never modified
// once chosen. The cache is bounded by the configured proposals times the
// peers' proposal numbers (1-255).

// suiteKey is everything a suite without an SPI holds.
type suiteKey struct {
	encr    *transform.Encr
	keyBits uint16
	prf     *transform.PRF
	integ   *transform.Integ
	group   uint16
	esn     bool
	number  uint8
	proto   wire.ProtocolID
	addKE   [transform.MaxAddKE]uint16
}

// internSuite returns the engine's shared suite equal to s. Suites with
// an SPI (ESP's) are returned as they are.
func (e *Engine) internSuite(s *suite) *suite {
	if s == nil || len(s.spi) != 0 {
		return s
	}
	k := suiteKey{encr: s.encr, keyBits: s.keyBits, prf: s.prf, integ: s.integ, esn: s.esn, number: s.number, proto: s.proto, addKE: s.addKE}
	if s.group != nil {
		k.group = s.group.ID()
	}
	if v, ok := e.suites.Load(k); ok {
		return v.(*suite)
	}
	v, _ := e.suites.LoadOrStore(k, s)
	return v.(*suite)
}
