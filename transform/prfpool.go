package transform

import (
	"hash"
	"sync"
)

// The PRFs of IKEv2 are HMACs (RFC 2104). A responder computes seven of
// them per handshake with keys used once (SKEYSEED, prf+, AUTH), and
// crypto/hmac cannot be re-keyed: each hmac.New allocates about 500 octets
// in seven objects, a fifth of a handshake's garbage, which the garbage
// collector pays for in every cycle while 100,000 IKE SAs are held. So the
// PRF computes the HMAC construction itself over two pooled digests of the
// standard library's hash; TestPRFMatchesHMAC holds it to crypto/hmac.

// maxBlockSize is the largest block size of the PRFs' hashes (SHA-512).
const maxBlockSize = 128

// prfScratch is one PRF computation's state: the inner and outer digests
// and the key XORed with the inner and outer pads.
type prfScratch struct {
	inner, outer hash.Hash
	block        int
	ipad, opad   [maxBlockSize]byte
	sum          [64]byte // the inner digest
}

// prfPools holds a pool of scratch per PRF: a map beside the registry
// rather than a field of PRF, which would make PRF a value not to copy.
var prfPools sync.Map // *PRF → *sync.Pool

// scratch returns a scratch keyed with key.
func (p *PRF) scratch(key []byte) *prfScratch {
	pool, ok := prfPools.Load(p)
	if !ok {
		pool, _ = prfPools.LoadOrStore(p, &sync.Pool{New: func() any {
			s := &prfScratch{inner: p.newHash(), outer: p.newHash()}
			s.block = s.inner.BlockSize()
			return s
		}})
	}
	s := pool.(*sync.Pool).Get().(*prfScratch)
	if len(key) > s.block {
		// RFC 2104: a key longer than the block is hashed first.
		s.inner.Reset()
		s.inner.Write(key)
		key = s.inner.Sum(s.sum[:0])
	}
	for i := range s.block {
		var k byte
		if i < len(key) {
			k = key[i]
		}
		s.ipad[i] = k ^ 0x36
		s.opad[i] = k ^ 0x5c
	}
	s.inner.Reset()
	s.inner.Write(s.ipad[:s.block])
	return s
}

// finish appends HMAC(key, what was written to inner) to dst and readies
// inner for the next message under the same key.
func (s *prfScratch) finish(dst []byte) []byte {
	in := s.inner.Sum(s.sum[:0])
	s.outer.Reset()
	s.outer.Write(s.opad[:s.block])
	s.outer.Write(in)
	dst = s.outer.Sum(dst)
	s.inner.Reset()
	s.inner.Write(s.ipad[:s.block])
	return dst
}

// release wipes what the key left in the scratch and returns it to the
// pool.
func (p *PRF) release(s *prfScratch) {
	clear(s.ipad[:])
	clear(s.opad[:])
	clear(s.sum[:])
	s.inner.Reset()
	s.outer.Reset()
	if pool, ok := prfPools.Load(p); ok {
		pool.(*sync.Pool).Put(s)
	}
}
