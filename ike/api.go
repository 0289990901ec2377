package ike

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// SAs returns a snapshot of every IKE SA, ordered by ID.
func (e *Engine) SAs() []SAInfo {
	sas := e.allSAs()
	out := make([]SAInfo, 0, len(sas))
	for _, sa := range sas {
		out = append(out, sa.info())
	}
	sort.Slice(out, func(i, j int) bool { return saNumber(out[i].ID) < saNumber(out[j].ID) })
	return out
}

func saNumber(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "ike-"))
	return n
}

// Terminate deletes the IKE SAs named by target: an SA ID ("ike-3") or a
// connection name (all its SAs). It returns how many were deleted.
func (e *Engine) Terminate(ctx context.Context, target string) (int, error) {
	var victims []*ikeSA
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		match := sa.id() == target || (sa.conn != nil && sa.conn.Name == target)
		sa.mu.Unlock()
		if match {
			victims = append(victims, sa)
		}
	}
	if len(victims) == 0 {
		if e.connection(target) != nil {
			return 0, nil
		}
		return 0, fmt.Errorf("no IKE SA or connection named %q", target)
	}
	deleteAll(ctx, victims, "terminated by operator")
	return len(victims), nil
}

func deleteAll(ctx context.Context, sas []*ikeSA, reason string) {
	var wg sync.WaitGroup
	for _, sa := range sas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sa.deleteIKE(ctx, reason)
		}()
	}
	wg.Wait()
}

// Shutdown sends a Delete for every IKE SA, waits for the answers (bounded
// by ctx), removes everything from the data plane and stops the engine.
func (e *Engine) Shutdown(ctx context.Context) error {
	deleteAll(ctx, e.allSAs(), "shutdown")
	return e.Close()
}

// Stats returns a snapshot of the engine's counters and gauges.
func (e *Engine) Stats() Stats {
	s := Stats{IKESAs: map[string]int{}}
	e.stats.snapshot(&s)
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		if sa.state != stateDead {
			s.IKESAs[sa.state.String()]++
		}
		s.ChildSAs += len(sa.children)
		sa.mu.Unlock()
	}
	s.HalfOpen = int(e.halfOpenCount.Load())
	return s
}
