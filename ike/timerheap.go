package ike

import (
	"container/heap"
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
	// clock is the engine's one clock (Config.Now), which also stamps
	// lastRecv and established; the runtime timers only wake the heaps.
	clock  func() time.Time
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

// saTimer is one armed timer of an IKE SA: what kind says runs in a new
// goroutine at at (since the epoch), unless the SA is dead by then. The
// kind rather than a closure, and the SA's list linked through next
// rather than a slice, because the garbage collector visits every object
// of every held SA in each cycle: at 100,000 SAs each object less per SA
// is CPU the handshakes get back (docs/performance.md).
type saTimer struct {
	at    time.Duration
	sa    *ikeSA
	child *childSA // timerChildRekey
	f     func()   // timerFunc
	next  *saTimer // the SA's next armed timer (ikeSA.timers)
	idx   int32    // position in the heap; -1 once fired or stopped
	kind  timerKind
}

// timerKind is what a timer does when it fires.
type timerKind uint8

const (
	timerIKERekey   timerKind = iota // rekey the IKE SA
	timerReauth                      // reauthenticate (make before break)
	timerDPD                         // dead peer detection
	timerKeepalive                   // NAT keepalive
	timerChildRekey                  // rekey the Child SA in child
	timerFunc                        // call f (tests)
)

// saTimerHeap orders timers by when they fire (container/heap).
type saTimerHeap []*saTimer

func (h saTimerHeap) Len() int           { return len(h) }
func (h saTimerHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h saTimerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = int32(i), int32(j)
}
func (h *saTimerHeap) Push(x any) {
	t := x.(*saTimer)
	t.idx = int32(len(*h))
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
	clock := th.clock
	if clock == nil {
		clock = time.Now
	}
	th.once.Do(func() { th.epoch = clock() })
	return clock().Sub(th.epoch)
}

func (th *timerHeaps) shard(sa *ikeSA) *timerShard {
	return &th.shards[sa.localSPI()%timerShards]
}

// schedule arms t to fire after d. t.sa is set.
func (th *timerHeaps) schedule(t *saTimer, d time.Duration) {
	t.at = th.now() + max(d, 0)
	s := th.shard(t.sa)
	s.mu.Lock()
	heap.Push(&s.h, t)
	s.arm(th, t.at)
	s.mu.Unlock()
}

// stop disarms t; a timer already fired is left alone.
func (th *timerHeaps) stop(t *saTimer) {
	s := th.shard(t.sa)
	s.mu.Lock()
	if t.idx >= 0 {
		heap.Remove(&s.h, int(t.idx))
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

// run forgets the fired timer in its SA and does what it is for if the
// SA is still alive.
func (t *saTimer) run() {
	sa := t.sa
	sa.mu.Lock()
	dead := sa.state == stateDead
	sa.unlinkTimer(t)
	sa.mu.Unlock()
	if dead {
		return
	}
	switch t.kind {
	case timerIKERekey:
		sa.rekeyIKETimer()
	case timerReauth:
		sa.reauthenticate()
	case timerDPD:
		sa.dpdCheck()
	case timerKeepalive:
		sa.natKeepalive()
	case timerChildRekey:
		sa.rekeyChild(t.child)
	case timerFunc:
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
