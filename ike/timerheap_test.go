package ike

import (
	"sync"
	"testing"
	"time"
)

// Timers fire in order of their times, a stopped one never, one of a
// dead SA never, and a fired timer leaves its SA's list (a DPD timer
// rearmed every interval does not pile up in the SA).
func TestTimerHeaps(t *testing.T) {
	e := &Engine{}
	var mu sync.Mutex
	var fired []int
	done := make(chan struct{}, 8)
	record := func(n int) func() {
		return func() {
			mu.Lock()
			fired = append(fired, n)
			mu.Unlock()
			done <- struct{}{}
		}
	}
	// Several SAs on one shard and on others.
	sas := []*ikeSA{{eng: e, spir: 1}, {eng: e, spir: 1 + timerShards}, {eng: e, spir: 2}}
	for _, sa := range sas {
		sa.state = stateEstablished
	}
	sas[0].mu.Lock()
	sas[0].afterFunc(60*time.Millisecond, record(3))
	sas[0].afterFunc(20*time.Millisecond, record(1))
	sas[0].mu.Unlock()
	sas[1].mu.Lock()
	sas[1].afterFunc(40*time.Millisecond, record(2))
	sas[1].afterFunc(30*time.Millisecond, record(-1))
	stopped := sas[1].timers // the last armed
	sas[1].mu.Unlock()
	e.timers.stop(stopped)
	sas[2].mu.Lock()
	sas[2].afterFunc(10*time.Millisecond, record(-2))
	sas[2].state = stateDead
	sas[2].mu.Unlock()

	for range 3 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("timers did not fire: %v", fired)
		}
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong one to fire
	mu.Lock()
	defer mu.Unlock()
	if len(fired) != 3 || fired[0] != 1 || fired[1] != 2 || fired[2] != 3 {
		t.Fatalf("fired %v, want [1 2 3]", fired)
	}
	for i, sa := range sas[:2] {
		sa.mu.Lock()
		n := 0
		for t := sa.timers; t != nil; t = t.next {
			n++
		}
		sa.mu.Unlock()
		if want := []int{0, 1}[i]; n != want { // sas[1] still lists the stopped one
			t.Fatalf("SA %d lists %d timers, want %d", i, n, want)
		}
	}
	if n := e.timers.pending(); n != 0 {
		t.Fatalf("%d timers left in the heaps", n)
	}
}

// stopTimers takes every timer of an SA out of the heaps.
func TestTimerHeapsStop(t *testing.T) {
	e := &Engine{}
	sa := &ikeSA{eng: e, spir: 7, state: stateEstablished}
	sa.mu.Lock()
	for i := range 5 {
		sa.afterFunc(time.Hour+time.Duration(i), func() { t.Error("stopped timer fired") })
	}
	sa.mu.Unlock()
	if n := e.timers.pending(); n != 5 {
		t.Fatalf("%d timers armed, want 5", n)
	}
	sa.mu.Lock()
	sa.stopTimers()
	sa.mu.Unlock()
	if n := e.timers.pending(); n != 0 {
		t.Fatalf("%d timers left after stopTimers", n)
	}
}
