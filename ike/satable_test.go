package ike

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func TestSATable(t *testing.T) {
	var tab saTable
	peer := netip.MustParseAddrPort("192.0.2.1:500")
	var sas []*ikeSA
	for i := range 200 {
		sa := &ikeSA{spir: rand.Uint64() | 1, spii: uint64(i) + 1}
		sa.initKey = halfOpenKey{peer, sa.spii}
		tab.put(sa)
		tab.putHalfOpen(sa)
		sas = append(sas, sa)
	}
	for _, sa := range sas {
		if tab.get(sa.spir) != sa || tab.getHalfOpen(sa.initKey) != sa {
			t.Fatal("SA not found under its SPI or its half-open key")
		}
	}
	if got := tab.all(); len(got) != len(sas) {
		t.Fatalf("all: %d SAs, want %d", len(got), len(sas))
	}
	// Established: out of the half-open index, still found by SPI.
	tab.removeHalfOpen(sas[0])
	if tab.getHalfOpen(sas[0].initKey) != nil || tab.get(sas[0].spir) != sas[0] {
		t.Fatal("removeHalfOpen removed the wrong entry")
	}
	// An SA replaced under its SPI is not removed by the old one.
	newer := &ikeSA{spir: sas[1].spir, initKey: sas[1].initKey}
	tab.put(newer)
	tab.remove(sas[1])
	if tab.get(newer.spir) != newer {
		t.Fatal("removing the old SA removed its replacement")
	}
	for _, sa := range sas[2:] {
		tab.remove(sa)
	}
	if got := tab.all(); len(got) != 2 || !slices.Contains(got, newer) || !slices.Contains(got, sas[0]) {
		t.Fatalf("left after removal: %d SAs", len(got))
	}
	if tab.get(sas[5].spir) != nil || tab.getHalfOpen(sas[5].initKey) != nil {
		t.Fatal("removed SA still found")
	}
}

// globalTable is the SA table as it was before sharding: one map behind
// one RWMutex. BenchmarkSATableLookup compares the two.
type globalTable struct {
	mu  sync.RWMutex
	sas map[uint64]*ikeSA
}

func (g *globalTable) get(spi uint64) *ikeSA {
	g.mu.RLock()
	sa := g.sas[spi]
	g.mu.RUnlock()
	return sa
}

// BenchmarkSATableLookup looks SAs up by SPI in a table of 100,000, as
// every received datagram does: serially and from all Ps at once
// (-cpu 1,2,4 shows the scaling), in the sharded table and in the single
// RWMutex-guarded map it replaced.
func BenchmarkSATableLookup(b *testing.B) {
	const n = 100000
	var sharded saTable
	global := &globalTable{sas: map[uint64]*ikeSA{}}
	spis := make([]uint64, n)
	for i := range spis {
		sa := &ikeSA{spir: rand.Uint64() | 1}
		spis[i] = sa.spir
		sharded.put(sa)
		global.sas[sa.spir] = sa
	}
	for _, tc := range []struct {
		name string
		get  func(uint64) *ikeSA
	}{{"sharded", sharded.get}, {"global-rwmutex", global.get}} {
		b.Run(tc.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if tc.get(spis[i%n]) == nil {
					b.Fatal("missing")
				}
				i++
			}
		})
		b.Run(tc.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(n)
				for pb.Next() {
					if tc.get(spis[i%n]) == nil {
						b.Fatal("missing")
					}
					i++
				}
			})
		})
	}
}
