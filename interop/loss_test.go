package interop

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Handshakes over a lossy link: nftables drops, at random (numgen random
// mod 100 < 20), 20 % of the IKE_SA_INIT and IKE_AUTH datagrams entering
// and 20 % of those leaving the initiator's namespace. The Delete of
// ikectl terminate is spared: iked forgets an IKE SA once it has answered
// its Delete, so a lost answer would make the initiator wait out all its
// retransmissions (17.5 s) before it gives up, which says nothing about
// handshakes and costs minutes.
//
// Choice of retransmission settings: an exchange attempt succeeds only if
// the request and the response both survive, 0.8 × 0.8 = 0.64, so an
// attempt fails with 0.36. With retransmit_tries 15 an exchange has 16
// attempts and fails with 0.36^16 ≈ 8e-8; 100 handshakes are 200
// exchanges, so a run fails with about 1.6e-5. retransmit_timeout 0.2s is
// far above the veth's round trip, so the expected cost of the losses is
// about 0.36/0.64 × 0.2 s ≈ 0.11 s per exchange. retransmit_base 1.2 lets
// the later waits grow (to 3 s; 17.5 s in all, within ikectl's 30 s): on a
// loaded machine an answer may take longer than 0.2 s, and a slow answer
// must not use up the attempts the loss needs; the loss alone rarely needs
// more than the first few.
const (
	lossPercent       = 20
	lossHandshakes    = 100
	lossRetransmit    = 200 * time.Millisecond
	lossRetransmitTry = 15
	lossBase          = 1.2
)

// addLoss installs the random drop in ns, input and output, for
// IKE_SA_INIT (34) and IKE_AUTH (35) on port 500 (exchange type at UDP
// payload octet 18) and on port 4500 (behind the 4-octet non-ESP marker).
// A counter rule before each drop counts every such datagram.
func addLoss(t *testing.T, ns *netns) {
	t.Helper()
	nftIn(t, ns, "add", "table", "inet", "loss")
	for _, hook := range []string{"input", "output"} {
		chain := hook[:3]
		nftIn(t, ns, "add", "chain", "inet", "loss", chain, fmt.Sprintf("{ type filter hook %s priority -300 ; }", hook))
		for _, match := range [][]string{
			{"udp", "dport", "500", "@th,208,8", "{ 34, 35 }"},
			{"udp", "dport", "4500", "@th,64,32", "0", "@th,240,8", "{ 34, 35 }"},
		} {
			nftIn(t, ns, append(append([]string{"add", "rule", "inet", "loss", chain}, match...), "counter")...)
			nftIn(t, ns, append(append([]string{"add", "rule", "inet", "loss", chain}, match...),
				"numgen", "random", "mod", "100", "<", fmt.Sprint(lossPercent), "counter", "drop")...)
		}
	}
}

// lossCounters sums the loss table's counters: every handshake datagram,
// and those dropped.
func lossCounters(rules string) (seen, dropped int) {
	for _, l := range strings.Split(rules, "\n") {
		m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if strings.HasSuffix(strings.TrimSpace(l), "drop") {
			dropped += n
		} else {
			seen += n
		}
	}
	return seen, dropped
}

// TestLifecycleLoss: iked ⇄ iked (memory data plane) with 20 % random loss
// of handshake datagrams each way at A; A runs ikectl initiate and ikectl terminate 100 times.
// Asserted: every initiate succeeds (the handshake completed; A's
// iked_handshakes_completed_total{role="initiator"} and B's
// {role="responder"} reach 100), the loss rule dropped packets, and A
// retransmitted. The test logs the drops, the retransmissions, the time
// per handshake and the SAs B still holds (Deletes whose every attempt
// was lost).
func TestLifecycleLoss(t *testing.T) {
	requireRoot(t)
	requireTools(t, "nft")
	tp := newTopology(t)
	aAddr, bAddr := tp.IkedAddr.String(), tp.CharonAddr.String()
	opts := func(addr string, c ikedConn) ikedOptions {
		return ikedOptions{Listen: []string{addr + ":500", addr + ":4500"}, Conns: []ikedConn{c}, Metrics: true,
			RetransmitTimeout: lossRetransmit, RetransmitTries: lossRetransmitTry, RetransmitBase: lossBase}
	}
	ca, cb := ikedPeers(aAddr, bAddr, "aes256gcm16")
	b := startIked(t, tp.S, opts(bAddr, cb))
	a := startIked(t, tp.I, opts(aAddr, ca))
	addLoss(t, tp.I)
	start := time.Now()
	var failed []string
	done := 0
	for i := 1; i <= lossHandshakes; i++ {
		out, err := a.Initiate(connName)
		if err != nil || !strings.Contains(out, "established") {
			failed = append(failed, fmt.Sprintf("handshake %d: %v %s", i, err, strings.TrimSpace(out)))
			if len(failed) > 3 {
				break
			}
			continue
		}
		done++
		if out, err := a.Terminate(connName); err != nil {
			t.Errorf("terminate %d: %v %s", i, err, out)
		}
	}
	elapsed := time.Since(start)
	rules := nftIn(t, tp.I, "list", "table", "inet", "loss")
	nftIn(t, tp.I, "delete", "table", "inet", "loss")
	seen, dropped := lossCounters(rules)
	completedA := metric(t, a, "iked_handshakes_completed_total", `role="initiator"`)
	completedB := metric(t, b, "iked_handshakes_completed_total", `role="responder"`)
	retrA := metric(t, a, "iked_retransmissions_total", "")
	retrB := metric(t, b, "iked_retransmissions_total", "")
	answeredB := metric(t, b, "iked_retransmits_answered_total", "")
	left, _ := b.SAs()
	t.Logf("%d of %d handshakes completed in %.1f s (%.0f ms each, terminate included); A completed %v as initiator, B %v as responder",
		done, lossHandshakes, elapsed.Seconds(), float64(elapsed.Milliseconds())/float64(max(done, 1)), completedA, completedB)
	t.Logf("IKE_SA_INIT and IKE_AUTH datagrams through A's nftables: %d, dropped %d (%.1f %%)", seen, dropped, 100*float64(dropped)/float64(max(seen, 1)))
	t.Logf("retransmissions: A %v, B %v; B answered %v retransmitted requests from its cache; B still lists %d IKE SAs", retrA, retrB, answeredB, len(left))
	if len(failed) > 0 {
		t.Errorf("%d handshakes failed:\n%s", len(failed), strings.Join(failed, "\n"))
	}
	if done != lossHandshakes || completedA != lossHandshakes || completedB != lossHandshakes {
		t.Errorf("handshakes: %d initiated successfully, A counted %v, B %v; want %d each", done, completedA, completedB, lossHandshakes)
	}
	if retrA == 0 || dropped == 0 {
		t.Errorf("the loss did not bite: A retransmitted %v times, %d datagrams dropped", retrA, dropped)
	}
}
