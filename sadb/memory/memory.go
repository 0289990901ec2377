// Package memory is a data-plane backend that keeps SAs in memory and moves
// no packets: for unit tests and for running the daemon without privileges.
package memory

import (
	"fmt"
	"sync"

	"github.com/iked/iked/sadb"
)

// Backend is an in-memory sadb.Backend. Its counters only change through
// Count, which tests use to simulate traffic.
type Backend struct {
	mu       sync.Mutex
	sas      map[sadb.ID]*entry
	policies map[sadb.PolicyID]sadb.Policy
	events   chan sadb.Event
}

type entry struct {
	sa       sadb.SA
	counters sadb.Counters
}

// New returns an empty in-memory backend.
func New() *Backend {
	return &Backend{sas: map[sadb.ID]*entry{}, policies: map[sadb.PolicyID]sadb.Policy{}, events: make(chan sadb.Event, 16)}
}

// Name implements sadb.Backend.
func (*Backend) Name() string { return "memory" }

// AddSA implements sadb.Backend.
func (b *Backend) AddSA(sa *sadb.SA) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.sas[sa.ID()]; dup {
		return fmt.Errorf("memory: SA %s %08x to %s exists", sa.Protocol, sa.SPI, sa.Dst)
	}
	b.sas[sa.ID()] = &entry{sa: *sa}
	return nil
}

// DeleteSA implements sadb.Backend.
func (b *Backend) DeleteSA(id sadb.ID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.sas[id]; !ok {
		return fmt.Errorf("memory: %s %08x: %w", id.Protocol, id.SPI, sadb.ErrNotFound)
	}
	delete(b.sas, id)
	return nil
}

// Counters implements sadb.Backend.
func (b *Backend) Counters(id sadb.ID) (sadb.Counters, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.sas[id]
	if !ok {
		return sadb.Counters{}, sadb.ErrNotFound
	}
	return e.counters, nil
}

// Count adds a packet of n octets to an SA's counters, as traffic would.
func (b *Backend) Count(id sadb.ID, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.sas[id]
	if !ok {
		return sadb.ErrNotFound
	}
	e.counters.Bytes += uint64(n)
	e.counters.Packets++
	return nil
}

// SAs returns copies of the installed SAs.
func (b *Backend) SAs() []sadb.SA {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]sadb.SA, 0, len(b.sas))
	for _, e := range b.sas {
		out = append(out, e.sa)
	}
	return out
}

// Close implements sadb.Backend.
func (b *Backend) Close() error {
	b.mu.Lock()
	b.sas = map[sadb.ID]*entry{}
	b.policies = map[sadb.PolicyID]sadb.Policy{}
	b.mu.Unlock()
	return nil
}

// AddPolicy implements sadb.PolicyBackend.
func (b *Backend) AddPolicy(p *sadb.Policy) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.policies == nil {
		b.policies = map[sadb.PolicyID]sadb.Policy{}
	}
	b.policies[p.ID()] = *p
	return nil
}

// DeletePolicy implements sadb.PolicyBackend.
func (b *Backend) DeletePolicy(id sadb.PolicyID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.policies[id]; !ok {
		return fmt.Errorf("memory: %s policy %s: %w", id.Direction, id.Selector, sadb.ErrNotFound)
	}
	delete(b.policies, id)
	return nil
}

// Policies returns copies of the installed policies.
func (b *Backend) Policies() []sadb.Policy {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]sadb.Policy, 0, len(b.policies))
	for _, p := range b.policies {
		out = append(out, p)
	}
	return out
}

// Events implements sadb.PolicyBackend; tests raise events with Raise.
func (b *Backend) Events() <-chan sadb.Event { return b.events }

// Raise delivers an event as the data plane would (non-blocking: dropped
// when nobody reads).
func (b *Backend) Raise(ev sadb.Event) {
	select {
	case b.events <- ev:
	default:
	}
}
