package ike

import (
	"net/netip"
	"strconv"
	"sync"
	"testing"

	"github.com/iked/iked/sadb"
)

// downRecorder is an Observer and ChildObserver that keeps the
// ChildSADown events.
type downRecorder struct {
	mu   sync.Mutex
	down []ChildSAEvent
}

func (*downRecorder) Acquire(sadb.Event)                       {}
func (*downRecorder) PoliciesAdded([]*sadb.Policy)             {}
func (*downRecorder) PoliciesRemoved([]sadb.PolicyID)          {}
func (*downRecorder) HandshakeFailed(netip.Addr, bool, string) {}
func (*downRecorder) ChildSAUp(ChildSAEvent)                   {}
func (r *downRecorder) ChildSADown(ev ChildSAEvent) {
	r.mu.Lock()
	r.down = append(r.down, ev)
	r.mu.Unlock()
}
func (r *downRecorder) events() []ChildSAEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ChildSAEvent(nil), r.down...)
}
func spiOf(t *testing.T, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(v)
}

// TestChildSADownCounters: a Child SA's ChildSADown carries the data
// plane's final counters, for a rekeyed Child SA as for a deleted one, so
// that totals over a connection survive rekeys (metrics).
func TestChildSADownCounters(t *testing.T) {
	rec := &downRecorder{}
	p := newPair(t, func(_, _ *Connection, cfgA, _ *Config) { cfgA.Observer = rec })
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	sa := infos[0]
	c := sa.Children[0]
	in, out := spiOf(t, c.SPIIn), spiOf(t, c.SPIOut)
	for _, s := range p.memA.SAs() {
		switch s.SPI {
		case in:
			for range 3 {
				if err := p.memA.Count(s.ID(), 100); err != nil {
					t.Fatal(err)
				}
			}
		case out:
			if err := p.memA.Count(s.ID(), 40); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.a.CreateChild(ctxT(t), sa.ID, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(rec.events()) == 1 })
	ev := rec.events()[0]
	if ev.SPIIn != in || ev.BytesIn != 300 || ev.PacketsIn != 3 || ev.BytesOut != 40 || ev.PacketsOut != 1 || ev.Connection != "a-b" {
		t.Fatalf("rekeyed Child SA down: %+v", ev)
	}
	if _, err := p.a.Terminate(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	evs := rec.events()
	if len(evs) != 2 || evs[1].SPIIn == in || evs[1].BytesIn != 0 {
		t.Fatalf("deleted Child SA down: %+v", evs)
	}
}
