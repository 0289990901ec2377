package ike

import "sync"

// The SA table: IKE SAs by local SPI, and half-open responder SAs by what
// their IKE_SA_INIT request carried. Every datagram looks an SA up, and
// every handshake inserts and removes entries, so the table is sharded by
// SPI, each shard with its own lock: readers on several cores do not share
// one lock's cache line, and a handshake locks only the shards it touches.
// SPIs are random (newSPI), so they spread evenly; the initiator's SPIi
// keys the half-open index.

// saShards is the number of shards, a power of two.
const saShards = 64

// saTable is the sharded table; the zero value is ready.
type saTable struct {
	shards [saShards]saShard
}

// saShard is one shard.
type saShard struct {
	mu       sync.RWMutex
	sas      map[uint64]*ikeSA
	halfOpen map[halfOpenKey]*ikeSA
	_        [64 - 40]byte // one shard per cache line
}

func (t *saTable) shard(spi uint64) *saShard { return &t.shards[spi&(saShards-1)] }

// get returns the SA whose local SPI is spi, or nil.
func (t *saTable) get(spi uint64) *ikeSA {
	s := t.shard(spi)
	s.mu.RLock()
	sa := s.sas[spi]
	s.mu.RUnlock()
	return sa
}

// put records sa under its local SPI.
func (t *saTable) put(sa *ikeSA) {
	spi := sa.localSPI()
	s := t.shard(spi)
	s.mu.Lock()
	if s.sas == nil {
		s.sas = map[uint64]*ikeSA{}
	}
	s.sas[spi] = sa
	s.mu.Unlock()
}

// remove forgets sa under its local SPI and its half-open key, where it
// is the SA recorded.
func (t *saTable) remove(sa *ikeSA) {
	spi := sa.localSPI()
	s := t.shard(spi)
	s.mu.Lock()
	if s.sas[spi] == sa {
		delete(s.sas, spi)
	}
	s.mu.Unlock()
	t.removeHalfOpen(sa)
}

// getHalfOpen returns the half-open SA made for the IKE_SA_INIT request
// key describes, or nil.
func (t *saTable) getHalfOpen(key halfOpenKey) *ikeSA {
	s := t.shard(key.spii)
	s.mu.RLock()
	sa := s.halfOpen[key]
	s.mu.RUnlock()
	return sa
}

// putHalfOpen records sa under its half-open key.
func (t *saTable) putHalfOpen(sa *ikeSA) {
	s := t.shard(sa.initKey.spii)
	s.mu.Lock()
	if s.halfOpen == nil {
		s.halfOpen = map[halfOpenKey]*ikeSA{}
	}
	s.halfOpen[sa.initKey] = sa
	s.mu.Unlock()
}

// removeHalfOpen forgets sa's half-open key, where sa is the SA recorded.
func (t *saTable) removeHalfOpen(sa *ikeSA) {
	s := t.shard(sa.initKey.spii)
	s.mu.Lock()
	if s.halfOpen[sa.initKey] == sa {
		delete(s.halfOpen, sa.initKey)
	}
	s.mu.Unlock()
}

// all returns every SA, in no particular order.
func (t *saTable) all() []*ikeSA {
	var out []*ikeSA
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.RLock()
		for _, sa := range s.sas {
			out = append(out, sa)
		}
		s.mu.RUnlock()
	}
	return out
}
