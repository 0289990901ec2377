package ike

import (
	"sync"
	"testing"
	"time"
)

// Timers fire in order of their times, a stopped one never, one of a
// dead SA never, and a fired timer leaves its SA's list (a DPD timer
// rearmed every interval does not pile up in the SA). The heaps run on a
// clock the test moves, and each step fires what is due on every shard,
// so the order is the heaps' and not the scheduler's.
func TestTimerHeaps(t *testing.T) {
	e := &Engine{}
	var clockMu sync.Mutex
	now := time.Unix(1000, 0)
	e.timers.clock = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	advance := func(d time.Duration) {
		clockMu.Lock()
		now = now.Add(d)
		clockMu.Unlock()
		for i := range e.timers.shards {
			e.timers.shards[i].fire(&e.timers)
		}
	}
	fired := make(chan int, 8)
	record := func(n int) func() { return func() { fired <- n } }
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

	// Each step makes exactly the next timer due; nothing else may fire.
	for _, want := range []int{1, 2, 3} {
		advance(20 * time.Millisecond)
		select {
		case got := <-fired:
			if got != want {
				t.Fatalf("fired %d, want %d", got, want)
			}
		case <-time.After(time.Minute): // a hang guard
			t.Fatalf("timer %d did not fire", want)
		}
	}
	waitFor(t, func() bool {
		sas[0].mu.Lock()
		defer sas[0].mu.Unlock()
		return sas[0].timers == nil
	})
	select {
	case got := <-fired:
		t.Fatalf("timer %d fired: stopped, or its SA dead", got)
	default:
	}
	sas[1].mu.Lock()
	n := 0
	for t := sas[1].timers; t != nil; t = t.next {
		n++
	}
	sas[1].mu.Unlock()
	if n != 1 { // sas[1] still lists the stopped one
		t.Fatalf("SA 1 lists %d timers, want 1", n)
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
