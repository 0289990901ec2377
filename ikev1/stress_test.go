package ikev1

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// watchdog fails the test with every goroutine's stack if done is not
// closed within d: a hang is a bug to see, not a timeout to wait out.
func watchdog(t *testing.T, d time.Duration) (done func()) {
	t.Helper()
	ch := make(chan struct{})
	go func() {
		select {
		case <-ch:
		case <-time.After(d):
			_ = pprof.Lookup("goroutine").WriteTo(os.Stderr, 2)
			panic(fmt.Sprintf("%s: hung for %v (goroutines dumped above)", t.Name(), d))
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// TestStress runs many Main Modes and Quick Modes at once between two
// engines, with IPsec SA rekeys, phase 1 rekeys, deletes from both sides
// and a Close in the middle of it all, under the race detector in CI. It
// asserts the invariants, not timings: every IPsec SA one side holds has
// its twin with the same keys on the other once the dust settles, and
// nothing is left in either data plane after Close.
func TestStress(t *testing.T) {
	const conns = 24
	done := watchdog(t, 5*time.Minute)
	defer done()
	p := newPair(t, func(ca, cb *Connection, fa, fb *Config) {
		ca.IKEProposals, cb.IKEProposals = mustIKE(t, "aes128-sha256-ecp256"), mustIKE(t, "aes128-sha256-ecp256")
		ca.ESPProposals, cb.ESPProposals = mustESP(t, "aes128-sha256"), mustESP(t, "aes128-sha256")
		fa.Readers, fb.Readers = 4, 4
		fa.RetransmitTimeout, fb.RetransmitTimeout = 100*time.Millisecond, 100*time.Millisecond
		fa.RetransmitTries, fb.RetransmitTries = 8, 8
	})
	// More initiating connections on a, all answered by b's one.
	var names []string
	var cs []*Connection
	for i := range conns {
		c := *p.ca
		c.Name = fmt.Sprintf("a-b-%d", i)
		cs = append(cs, &c)
		names = append(names, c.Name)
	}
	if err := p.a.SetConnections(cs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Phase A: every connection up at once, then per SA a mix of
	// operations, all concurrent.
	var wg sync.WaitGroup
	errs := make(chan error, 4*conns)
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.a.Initiate(ctx, name); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				return
			}
			sa := p.a.saOf(name)
			if sa == nil {
				errs <- fmt.Errorf("%s: no SA after Initiate", name)
				return
			}
			switch i % 4 {
			case 0: // another Quick Mode on the same ISAKMP SA
				if err := sa.quickModeWait(ctx, nil); err != nil {
					errs <- fmt.Errorf("%s: second Quick Mode: %w", name, err)
				}
			case 1: // an IPsec SA rekey
				sa.mu.Lock()
				var c *ipsecSA
				if len(sa.ipsecs) > 0 {
					c = sa.ipsecs[0]
					c.rekeying = true
				}
				sa.unlock()
				if c != nil {
					if err := sa.quickModeWait(ctx, c); err != nil {
						errs <- fmt.Errorf("%s: IPsec rekey: %w", name, err)
					}
				}
			case 2: // a phase 1 rekey: a new Main Mode adopts the IPsec SA, the old one is deleted
				if _, err := p.a.Rekey(ctx, sa.id(), 0); err != nil {
					errs <- fmt.Errorf("%s: phase 1 rekey: %w", name, err)
				}
			case 3: // deleted by the responder
				for _, bsa := range p.b.allSAs() {
					bsa.mu.Lock()
					mine := bsa.icookie == sa.icookie
					bsa.unlock()
					if mine {
						bsa.deleteAll("stress")
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	// Settled: every IPsec SA has its twin.
	settle(t, p)
	checkKeys(t, p.memA.SAs(), p.memB.SAs())

	// Phase A2: the even connections (the rekeyed ones among them) are
	// terminated by a; b must forget exactly their IPsec SAs, whichever
	// of its ISAKMP SAs holds them.
	var wg1 sync.WaitGroup
	for i, name := range names {
		if i%2 == 0 {
			wg1.Add(1)
			go func() {
				defer wg1.Done()
				if _, err := p.a.Terminate(ctx, name); err != nil {
					t.Errorf("%s: %v", name, err)
				}
			}()
		}
	}
	wg1.Wait()
	settle(t, p)
	checkKeys(t, p.memA.SAs(), p.memB.SAs())

	// Phase B: new handshakes and deletes still in flight when both
	// engines close.
	var wg2 sync.WaitGroup
	for _, name := range names {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			_, _ = p.a.Terminate(ctx, name)
			_, _ = p.a.Initiate(ctx, name)
		}()
	}
	time.Sleep(20 * time.Millisecond)
	p.a.Close()
	p.b.Close()
	wg2.Wait()
	if n := p.dbA.Len() + p.dbB.Len(); n != 0 {
		t.Errorf("%d IPsec SAs left in the data planes after Close", n)
	}
	if n := len(p.memA.SAs()) + len(p.memB.SAs()); n != 0 {
		t.Errorf("%d IPsec SAs left in the memory backends after Close", n)
	}
	_ = transform.EncrAESCBC
}

// settle waits until every IPsec SA in either data plane has its twin on
// the other side, failing after a hang guard with each stray SA's story
// from the logs. The guard outlasts twice the peer's whole retransmission
// schedule: the longest a Quick Mode can keep an ISAKMP SA lingering.
func settle(t *testing.T, p *pair) {
	t.Helper()
	deadline := time.Now().Add(max(20*time.Second, 2*p.b.retransmitWindow()))
	for {
		lone := unpaired(p.memA.SAs(), p.memB.SAs())
		if len(lone) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for spi, where := range lone {
				t.Errorf("SA %08x only in %s", spi, where)
				p.story(t, spi)
			}
			t.Fatalf("the data planes do not agree (the pipe's full queues dropped %d datagrams from a, %d from b)",
				p.ab.Overflows(), p.ba.Overflows())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// unpaired returns the SPIs of the SAs that have no twin on the other
// side, with the side that holds them.
func unpaired(a, b []sadb.SA) map[uint32]string {
	spis := map[uint32]string{}
	for _, x := range a {
		spis[x.SPI] += "a"
	}
	for _, x := range b {
		spis[x.SPI] += "b"
	}
	for spi, where := range spis {
		if len(where) == 2 {
			delete(spis, spi)
		}
	}
	return spis
}
