package ike

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"
)

// watchdog turns a hang into a failure that shows where everything waits:
// if stop is not called within limit, it prints every goroutine's stack
// and ends the test binary. A deadlock on a mutex ignores contexts, so
// nothing inside the test could notice it otherwise.
func watchdog(t *testing.T, limit time.Duration) (stop func()) {
	t.Helper()
	name := t.Name()
	timer := time.AfterFunc(limit, func() {
		buf := make([]byte, 1<<22)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "\n%s: no progress within %v; every goroutine:\n\n%s\n", name, limit, buf)
		panic(name + ": hung (see the goroutine dump above)")
	})
	return func() { timer.Stop() }
}

// TestConcurrencyStress runs, at the same time and repeatedly, what a
// long-running daemon meets: many initiations to the same connection and to
// different ones (from both sides), Child SA and IKE SA rekeys from both
// sides, deletes from both sides, dead peer detection, and finally Close.
// It must finish (the watchdog turns a deadlock into a failure with every
// goroutine's stack), and once the storm is over nothing may be left behind:
// after both sides terminate everything, no IKE SA, no Child SA in a data
// plane and no data-plane policy remains.
func TestConcurrencyStress(t *testing.T) {
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	// Generous: a hang guard for a loaded machine under -race, not a
	// measure of speed.
	defer watchdog(t, 4*time.Minute)()
	const conns = 4
	p := newPair(t, func(ca, cb *Connection, cfgA, cfgB *Config) {
		ca.DPDDelay, cb.DPDDelay = 150*time.Millisecond, 150*time.Millisecond
		// Short retransmissions: exchanges with SAs the other side has
		// just deleted give up sooner, and the storm lasts seconds.
		cfgA.RetransmitTimeout, cfgB.RetransmitTimeout = 50*time.Millisecond, 50*time.Millisecond
		cfgA.Readers, cfgB.Readers = 4, 4
	})
	// More connections from A to B: "different peers" as the engine sees
	// them (INITIAL_CONTACT is decided per connection).
	connsA := []*Connection{p.connA}
	for i := 1; i < conns; i++ {
		c := *p.connA
		c.Name = fmt.Sprintf("a-b-%d", i)
		connsA = append(connsA, &c)
	}
	if err := p.a.SetConnections(connsA); err != nil {
		t.Fatal(err)
	}
	engines := []*Engine{p.a, p.b}
	names := map[*Engine][]string{p.a: {}, p.b: {p.connB.Name}}
	for _, c := range connsA {
		names[p.a] = append(names[p.a], c.Name)
	}

	for round := range rounds {
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var wg sync.WaitGroup
		run := func(f func()) {
			wg.Add(1)
			go func() { defer wg.Done(); f() }()
		}
		// Sixteen initiations from A at the same moment, four to each
		// connection, and four from B.
		start := make(chan struct{})
		for i := range 16 {
			run(func() { <-start; _, _ = p.a.Initiate(ctx, names[p.a][i%conns]) })
		}
		for range 4 {
			run(func() { <-start; _, _ = p.b.Initiate(ctx, p.connB.Name) })
		}
		// Rekeys and deletes from both sides while the initiations run.
		for _, e := range engines {
			r := rand.New(rand.NewPCG(uint64(round), uint64(len(names[e]))))
			var rmu sync.Mutex
			pick := func(n int) int { rmu.Lock(); defer rmu.Unlock(); return r.IntN(n) }
			for range 6 {
				run(func() {
					<-start
					for range 8 {
						sas := e.SAs()
						if len(sas) == 0 {
							time.Sleep(20 * time.Millisecond)
							continue
						}
						sa := sas[pick(len(sas))]
						switch pick(4) {
						case 0:
							_, _ = e.RekeyIKE(ctx, sa.ID)
						case 1:
							if len(sa.Children) > 0 {
								var spi uint32
								fmt.Sscanf(sa.Children[0].SPIIn, "%x", &spi)
								_ = e.CreateChild(ctx, sa.ID, spi)
							}
						case 2:
							_ = e.CreateChild(ctx, sa.ID, 0)
						case 3:
							_, _ = e.Terminate(ctx, sa.ID)
						}
					}
				})
			}
		}
		// Readers of the SA table while all that runs (ikectl, metrics).
		readersDone, stopReaders := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(readersDone)
			for {
				for _, e := range engines {
					_ = e.SAs()
					_ = e.Stats()
				}
				select {
				case <-stopReaders:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
		close(start)
		wg.Wait() // the round's context bounds every exchange
		t.Logf("round %d: storm %v", round, time.Since(began).Round(time.Millisecond))
		close(stopReaders)
		<-readersDone
		cancel()

		// Everything terminated from both sides: nothing may be left.
		tctx, tcancel := context.WithTimeout(context.Background(), time.Minute)
		for _, e := range engines {
			for _, n := range names[e] {
				if _, err := e.Terminate(tctx, n); err != nil {
					t.Errorf("round %d: terminate %s: %v", round, n, err)
				}
			}
		}
		tcancel()
		deadline := time.Now().Add(time.Minute)
		for {
			left := leftovers(p)
			if left == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: left behind after terminating everything: %s", round, left)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("round %d: clean after %v", round, time.Since(began).Round(time.Millisecond))
	}

	// Close while exchanges are in flight: it must return, and so must
	// the exchanges.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := p.a.Initiate(ctx, names[p.a][i%conns])
			if err != nil && !errors.Is(err, errClosed) && ctx.Err() == nil {
				t.Logf("initiation during Close: %v", err)
			}
		}()
	}
	time.Sleep(5 * time.Millisecond)
	p.a.Close()
	p.b.Close()
	wg.Wait()
}

// leftovers describes what is still there: IKE SAs, Child SAs in the data
// planes, data-plane policies, policy references.
func leftovers(p *pair) string {
	s := ""
	for _, x := range []struct {
		name string
		e    *Engine
		sas  int
		pol  int
	}{{"A", p.a, len(p.memA.SAs()), len(p.memA.Policies())}, {"B", p.b, len(p.memB.SAs()), len(p.memB.Policies())}} {
		n := len(x.e.SAs())
		x.e.policyMu.Lock()
		refs := len(x.e.policyRefs)
		x.e.policyMu.Unlock()
		if n+x.sas+x.pol+refs > 0 {
			s += fmt.Sprintf("%s: %d IKE SAs, %d data-plane SAs, %d policies, %d policy refs; ", x.name, n, x.sas, x.pol, refs)
		}
	}
	return s
}
