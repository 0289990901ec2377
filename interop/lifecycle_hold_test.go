package interop

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDPDHoldUserspace: dpd_action hold on the userspace data plane, two
// iked in namespaces. The peer is killed (no Delete); dead peer detection
// removes A's SAs but keeps the connection's outbound policy as a trap, so
// traffic to the peer's inner network is neither sent in the clear nor
// lost silently: it raises an acquire and A initiates. Once the peer is
// back, that traffic brings a new SA up and the ping goes through it.
func TestDPDHoldUserspace(t *testing.T) {
	p := startIkedPair(t, ikedPairSetup{
		edit: func(a, _ *ikedConn) { a.DPDDelay, a.DPDAction = "1s", "hold" },
		opts: func(a, _ *ikedOptions) { a.RetransmitTimeout, a.RetransmitTries = 300*time.Millisecond, 2 },
	})
	topo, capture, a, b := p.topo, p.cap, p.a, p.b
	ping(t, topo.I, ikedInnerHost, charonInnerHost, 2)

	// The peer dies without a word.
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-b.done
	b.exited, b.err = true, nil
	waitFor(t, time.Minute, func() string {
		sas, err := a.SAs()
		if err != nil {
			return err.Error()
		}
		if len(sas) != 0 {
			return "A still lists its SA with the dead peer"
		}
		return ""
	})
	if !strings.Contains(a.Log(), "holding the connection's policies") {
		t.Fatalf("A's log does not say it holds the connection:\n%s", a.Log())
	}

	// Traffic to the dead peer's network hits the trap: A initiates (and
	// fails, the peer is gone); nothing goes out in the clear.
	_ = exec.Command("ip", "netns", "exec", topo.I.name, "ping", "-n", "-c", "1", "-W", "1", "-I", ikedInnerHost, charonInnerHost).Run()
	waitFor(t, time.Minute, func() string {
		if !strings.Contains(a.Log(), "traffic for a held connection: initiating") {
			return "A did not initiate on the held connection's traffic"
		}
		return ""
	})

	// The peer comes back; traffic brings the SA up again.
	startIked(t, topo.S, p.optsB)
	waitFor(t, 2*time.Minute, func() string {
		out, err := exec.Command("ip", "netns", "exec", topo.I.name, "ping", "-n", "-c", "1", "-W", "2", "-I", ikedInnerHost, charonInnerHost).CombinedOutput()
		if err != nil {
			return "no echo through a new SA yet: " + strings.TrimSpace(string(out))
		}
		return ""
	})
	sas, err := a.SAs()
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 1 {
		t.Fatalf("A after the peer came back: %+v", sas)
	}
	capture.Stop()
	frames, err := readPcap(capture.path)
	if err != nil {
		t.Fatal(err)
	}
	// The inner addresses never appear on the wire: everything between
	// them went as ESP in UDP, or not at all.
	inner := map[string]bool{ikedInnerHost: true, charonInnerHost: true}
	for _, f := range frames {
		if f.src.IsValid() && (inner[f.src.String()] || inner[f.dst.String()]) {
			t.Fatalf("a packet between the inner addresses crossed the wire in the clear: %s -> %s proto %d", f.src, f.dst, f.proto)
		}
	}
}
