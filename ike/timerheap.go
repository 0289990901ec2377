package ike

import (
	"container/heap"
	"slices"
	"sync"
	"time"
)

// The timers of established IKE SAs (rekeying, DPD, NAT keepalives) are
// entries in a few engine-wide heaps, each driven by one runtime timer,
// rather than a time.Timer each: at 100,000 SAs that saves a runtime timer
// and two closures per armed timer, and the runtime's per-P timer heaps
// stay small. The heaps are sharded by SPI so that arming and stopping
// timers on the handshake path does not serialise all SAs on one lock.

// timerShards is the number of timer heaps.
const timerShards = 16

// timerHeaps are an engine's timer heaps.
type timerHeaps struct {
	once   sync.Once
	epoch  time.Time // times are durations since epoch (monotonic)
	shards [timerShards]timerShard
}

// timerShard is one heap and the runtime timer set for its earliest entry.
type timerShard struct {
	mu    sync.Mutex
	h     saTimerHeap
	rt    *time.Timer
	armed time.Duration // when rt fires; 0 when it is not armed
	_     [64]byte      // keeps shards off each other's cache lines
}

// saTimer is one armed timer of an IKE SA: f runs in a new goroutine at
// at (since the epoch), unless the SA is dead by then.
type saTimer struct {
	at  time.Duration
	sa  *ikeSA
	f   func()
	idx int // position in the heap; -1 once fired or stopped
}

// saTimerHeap orders timers by when they fire (container/heap).
type saTimerHeap []*saTimer

func (h saTimerHeap) Len() int           { return len(h) }
func (h saTimerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h saTimerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *saTimerHeap) Push(x any) {
	t := x.(*saTimer)
	t.idx = len(*h)
	*h = append(*h, t)
}
func (h *saTimerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.idx = -1
	return t
}

func (th *timerHeaps) now() time.Duration {
	th.once.Do(func() { th.epoch = time.Now() })
	return time.Since(th.epoch)
}

func (th *timerHeaps) shard(sa *ikeSA) *timerShard {
	return &th.shards[sa.localSPI()%timerShards]
}

// schedule arms a timer for sa running f after d.
func (th *timerHeaps) schedule(sa *ikeSA, d time.Duration, f func()) *saTimer {
	t := &saTimer{at: th.now() + max(d, 0), sa: sa, f: f}
	s := th.shard(sa)
	s.mu.Lock()
	heap.Push(&s.h, t)
	s.arm(th, t.at)
	s.mu.Unlock()
	return t
}

// stop disarms t; a timer already fired is left alone.
func (th *timerHeaps) stop(t *saTimer) {
	s := th.shard(t.sa)
	s.mu.Lock()
	if t.idx >= 0 {
		heap.Remove(&s.h, t.idx)
	}
	s.mu.Unlock()
	// When t was the earliest, the runtime timer fires for nothing and
	// arms itself for the next entry.
}

// arm makes the runtime timer fire by at. Caller holds s.mu.
func (s *timerShard) arm(th *timerHeaps, at time.Duration) {
	if s.armed != 0 && s.armed <= at {
		return
	}
	s.armed = max(at, 1)
	d := at - th.now()
	if s.rt == nil {
		s.rt = time.AfterFunc(d, func() { s.fire(th) })
		return
	}
	s.rt.Reset(d)
}

// fire runs the timers that are due and arms the runtime timer for the
// next one.
func (s *timerShard) fire(th *timerHeaps) {
	var due []*saTimer
	s.mu.Lock()
	s.armed = 0
	now := th.now()
	for len(s.h) > 0 && s.h[0].at <= now {
		due = append(due, heap.Pop(&s.h).(*saTimer))
	}
	if len(s.h) > 0 {
		s.arm(th, s.h[0].at)
	}
	s.mu.Unlock()
	for _, t := range due {
		go t.run()
	}
}

// run forgets the fired timer in its SA and calls its function if the SA
// is still alive.
func (t *saTimer) run() {
	sa := t.sa
	sa.mu.Lock()
	dead := sa.state == stateDead
	if i := slices.Index(sa.timers, t); i >= 0 {
		sa.timers = slices.Delete(sa.timers, i, i+1)
	}
	sa.mu.Unlock()
	if !dead {
		t.f()
	}
}

// pending counts the armed timers (for tests).
func (th *timerHeaps) pending() int {
	n := 0
	for i := range th.shards {
		s := &th.shards[i]
		s.mu.Lock()
		n += len(s.h)
		s.mu.Unlock()
	}
	return n
}
