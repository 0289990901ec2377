package ike

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iked/iked/ike/wire"
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

// Shutdown limits: the Deletes of a stopping daemon are best effort, so
// that it exits in bounded time whatever it holds. One Delete per IKE SA,
// never retransmitted, at most shutdownRate a second (a peer holding many
// of our SAs is not flooded), for at most shutdownSendTime; then at most
// shutdownAnswerWait for the answers. An SA not reached in that time is
// removed without a Delete: its peer's dead peer detection clears it.
const (
	shutdownRate       = 50000
	shutdownSendTime   = 2 * time.Second
	shutdownAnswerWait = time.Second
)

// Shutdown sends a Delete for every established IKE SA (paced, bounded in
// time as the shutdown constants say, and within ctx), waits briefly for
// the answers, removes everything from the data plane and stops the
// engine.
func (e *Engine) Shutdown(ctx context.Context) error {
	sendCtx, cancel := context.WithTimeout(ctx, shutdownSendTime)
	var answers []chan *response
	began := time.Now()
	sent := 0
	for _, sa := range e.allSAs() {
		if sendCtx.Err() != nil {
			break
		}
		if ch := sa.sendFinalDelete(); ch != nil {
			answers = append(answers, ch)
			sent++
			// Pace: never ahead of shutdownRate since the first send.
			if ahead := time.Duration(sent)*time.Second/shutdownRate - time.Since(began); ahead > time.Millisecond {
				select {
				case <-sendCtx.Done():
				case <-time.After(ahead):
				}
			}
		}
	}
	cancel()
	waitCtx, cancel := context.WithTimeout(ctx, shutdownAnswerWait)
	defer cancel()
	answered := 0
	for _, ch := range answers {
		select {
		case r := <-ch:
			if r != nil {
				answered++
			}
		case <-waitCtx.Done():
		}
		if waitCtx.Err() != nil {
			break
		}
	}
	e.log.Info("shutting down: IKE SAs deleted", "deletes_sent", sent, "answered", answered, "took", time.Since(began).Round(time.Millisecond).String())
	return e.close("shutdown")
}

// sendFinalDelete sends the Delete of an established IKE SA once, without
// retransmissions, and marks the SA deleting; the returned channel gets the
// answer (nil when the SA is destroyed first). nil when the SA is not
// established.
func (sa *ikeSA) sendFinalDelete() chan *response {
	sa.mu.Lock()
	if sa.state != stateEstablished {
		sa.mu.Unlock()
		return nil
	}
	sa.state = stateDeleting
	sa.markDown()
	id := sa.nextSendID
	pkt, err := sa.sealMessage(wire.INFORMATIONAL, id, false, []wire.Payload{&wire.Delete{Protocol: wire.ProtoIKE}})
	if err != nil {
		sa.mu.Unlock()
		return nil
	}
	sa.nextSendID = id + 1
	p := &pendingRequest{id: id, resp: make(chan *response, 1)}
	if sa.pending == nil {
		sa.pending = map[uint32]*pendingRequest{}
	}
	sa.pending[id] = p
	bind, remote := sa.bind, sa.remote
	sa.mu.Unlock()
	sa.eng.sendAll(bind, remote, pkt)
	return p.resp
}

// Stats returns a snapshot of the engine's counters and gauges.
func (e *Engine) Stats() Stats {
	s := Stats{IKESAs: map[string]int{}, EstablishedByProposal: map[string]ProposalCount{}}
	e.stats.snapshot(&s)
	// Suites are shared (suitecache.go): count by suite, name each once.
	bySuite := map[*suite]int{}
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		if sa.state != stateDead {
			s.IKESAs[sa.state.String()]++
		}
		if sa.state == stateEstablished && sa.suite != nil {
			bySuite[sa.suite]++
		}
		s.ChildSAs += len(sa.children)
		sa.mu.Unlock()
	}
	for su, n := range bySuite {
		k := su.keywords()
		c := s.EstablishedByProposal[k]
		c.SAs += n
		c.PostQuantum = su.postQuantum()
		s.EstablishedByProposal[k] = c
	}
	s.HalfOpen = int(e.halfOpenCount.Load())
	return s
}
