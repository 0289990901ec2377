package kernel

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// tunnelConn is a tunnel-mode connection between the pair's inner subnets.
func tunnelConn(p *pair, esp string, extra ...string) conn {
	return conn{ESP: []string{esp}, LocalTS: []string{p.ANet.String()}, RemoteTS: []string{p.BNet.String()}, Extra: extra}
}

// testReplay: captured ESP packets sent again are dropped by the kernel's
// anti-replay check, with iked's window of 32 packets, and the SA's
// packet count does not move. Without ESN, the newest packet again is a
// replay and one 39 packets old is outside the window. With ESN
// (XFRM_STATE_ESN, the kernel's ESN replay state), the newest again is a
// replay too, and the old one is taken for a packet of the next 2^32
// (RFC 4303 Appendix A2.2), so its ICV fails.
func testReplay(esn bool) func(*testing.T) {
	return func(t *testing.T) {
		p := newPair(t, false)
		proposal := "aes256gcm16"
		if esn {
			proposal += "-esn"
		}
		a, b := ikedPair(t, p, tunnelConn(p, proposal))
		if ca := childOf(t, a); strings.Contains(ca.Algorithms, "NO_EXT_SEQ") == esn {
			t.Fatalf("Child SA %s, want ESN %v", ca.Algorithms, esn)
		}
		c := startCapture(t, p.B, "vb", "-Q", "in", "esp")
		const n = 40
		if got := pingN(t, p.A, p.AIn, p.BIn, n, "0.02"); got != n {
			t.Fatalf("%d of %d pings answered", got, n)
		}
		c.Stop()
		ca := childOf(t, a)
		in := stateBySPI(t, p.B, ca.SPIOut)
		t.Logf("B's inbound SA: %s", in.Raw)
		if in.ESN != esn || strings.Contains(in.Flags, "esn") != esn || in.Window != 32 || in.Packets != n {
			t.Fatalf("B's inbound SA: ESN %v flags %q window %d packets %d; want ESN %v, window 32, %d packets", in.ESN, in.Flags, in.Window, in.Packets, esn, n)
		}
		frames, err := readPcap(c.path)
		if err != nil {
			t.Fatal(err)
		}
		bySeq := map[uint32][]byte{}
		for _, f := range frames {
			if spi, seq, ok := f.esp(); ok && fmt.Sprintf("%08x", spi) == ca.SPIOut {
				bySeq[seq] = f.data
			}
		}
		first, last := bySeq[1], bySeq[n]
		if first == nil || last == nil {
			t.Fatalf("captured %d ESP packets of SPI %s; want sequence numbers 1 and %d among them", len(bySeq), ca.SPIOut, n)
		}
		// Sent again from A's side of the link, as an attacker on it would.
		inject(t, p.A, "va", last, first)
		want := "1 replay, 1 outside the window"
		ok := func(s xfrmState) bool { return s.Replay == 1 && s.ReplayWin == 1 && s.Failed == 0 }
		if esn {
			want = "1 replay, 1 integrity failure"
			ok = func(s xfrmState) bool { return s.Replay == 1 && s.ReplayWin == 0 && s.Failed == 1 }
		}
		waitFor(t, 20*time.Second, "the kernel drops both: "+want, func() string {
			if s := stateBySPI(t, p.B, ca.SPIOut); !ok(s) {
				return s.String()
			}
			return ""
		})
		if s := stateBySPI(t, p.B, ca.SPIOut); s.Packets != n {
			t.Errorf("after the replays B's inbound SA counts %d packets, want %d", s.Packets, n)
		}
		if cb := childOf(t, b); cb.PacketsIn != n {
			t.Errorf("iked B reports %d packets in, want %d", cb.PacketsIn, n)
		}
		mustPing(t, p.A, p.AIn, p.BIn, 2)
	}
}

// testRekeyBytes: rekey_bytes becomes the SAs' soft byte limit. UDP
// datagrams from A to B pass it: the kernels raise soft expires for A's
// outbound and B's inbound SA, both iked rekey the Child SA at once, and
// the collision leaves one new Child SA (RFC 7296 §2.8.1); the old SAs
// leave the kernels. Every datagram is accounted for: received by B, or
// counted by B's kernel as arriving for an SA it did not hold yet.
//
// The traffic goes one way on purpose: with traffic both ways, both SAs of
// the Child SA expire on each side, and the engine (as of this test)
// starts two rekeys of one Child SA and accepts the peer's second one,
// leaving two Child SAs: an engine bug, reported, not covered here.
func testRekeyBytes(t *testing.T) {
	p := newPair(t, false)
	a, b := ikedPair(t, p, tunnelConn(p, "aes256gcm16", "rekey_bytes: 2000", "life_bytes: 1000000"))
	old := childOf(t, a)
	if s := stateBySPI(t, p.A, old.SPIOut); s.SoftBytes != "2000" {
		t.Errorf("A's outbound SA: soft byte limit %q, want 2000:\n%s", s.SoftBytes, s.Raw)
	}
	noStates := xfrmStat(t, p.B, "XfrmInNoStates")
	sink := udpSink(t, p.B, netip.AddrPortFrom(p.BIn, 9999))
	// 40 datagrams of 100 octets (128 with the headers): 5120 octets.
	const n = 40
	sendUDP(t, p.A, p.AIn, sink.addr, n, 100, 100*time.Millisecond)
	waitRekeyed(t, p, a, b, old.SPIIn, old.SPIOut)
	if !strings.Contains(a.Log()+b.Log(), "Child SA reached its soft lifetime: rekeying") {
		t.Error("neither iked logged a soft expire")
	}
	lost := xfrmStat(t, p.B, "XfrmInNoStates") - noStates
	got := sink.count()
	t.Logf("B received %d of %d datagrams; its kernel counted %d for SAs it did not hold", got, n, lost)
	if uint64(got)+lost != n {
		t.Errorf("%d datagrams sent, %d received, %d counted as lost for want of an SA: some unaccounted for", n, got, lost)
	}
	ab, ba := carried(t, p, a)
	pingBoth(t, p, p.AIn, p.BIn, 3)
	checkCarried(t, p, a, b, ab+6, ba+6)
}

// waitRekeyed waits until both iked hold one Child SA whose SPIs differ
// from the old ones, and the kernels hold exactly its two SAs.
func waitRekeyed(t *testing.T, p *pair, a, b *iked, oldIn, oldOut string) {
	t.Helper()
	waitFor(t, 90*time.Second, "Child SA rekeyed, old SAs gone from both kernels", func() string {
		var seen []string
		for _, side := range []struct {
			d  *iked
			ns *netns
		}{{a, p.A}, {b, p.B}} {
			sas := side.d.SAs()
			if len(sas) != 1 || len(sas[0].Children) != 1 {
				return describe(sas)
			}
			c := sas[0].Children[0]
			for _, spi := range []string{c.SPIIn, c.SPIOut} {
				if spi == oldIn || spi == oldOut {
					return "not rekeyed yet: " + describe(sas)
				}
			}
			st := states(t, side.ns)
			if len(st) != 2 {
				for _, s := range st {
					seen = append(seen, s.String())
				}
				return fmt.Sprintf("%s holds %d SAs: %s", side.ns.name, len(st), strings.Join(seen, "; "))
			}
			for _, s := range st {
				if s.SPI != c.SPIIn && s.SPI != c.SPIOut {
					return fmt.Sprintf("%s holds SA %s, not iked's %s/%s", side.ns.name, s.SPI, c.SPIIn, c.SPIOut)
				}
			}
		}
		return ""
	})
}

// testLifeBytes: life_bytes becomes the hard byte limit: once the pings
// pass it the kernel removes the SA and reports a hard expire, and iked
// deletes the Child SA with its peer; both kernels are left without SAs or
// the Child SA's policies.
func testLifeBytes(t *testing.T) {
	p := newPair(t, false)
	a, b := ikedPair(t, p, tunnelConn(p, "aes256gcm16", "life_bytes: 1500"))
	// 20 echo requests of 84 octets: 1680 octets; the SA dies on the way.
	got := pingN(t, p.A, p.AIn, p.BIn, 20, "0.1")
	t.Logf("%d of 20 pings answered (before the hard limit, or in clear once the Child SA and its policies were gone)", got)
	waitFor(t, 60*time.Second, "Child SA deleted on both sides", func() string {
		for _, d := range []*iked{a, b} {
			sas := d.SAs()
			if len(sas) != 1 || len(sas[0].Children) != 0 {
				return describe(sas)
			}
		}
		return ""
	})
	for _, ns := range []*netns{p.A, p.B} {
		if st := states(t, ns); len(st) != 0 {
			t.Errorf("%s still holds SAs: %v", ns.name, st)
		}
		if out := ns.ip(t, "xfrm", "policy"); strings.Contains(out, p.ANet.String()) {
			t.Errorf("%s still holds the Child SA's policies:\n%s", ns.name, out)
		}
	}
	if !strings.Contains(a.Log()+b.Log(), "Child SA reached its hard lifetime: deleting") {
		t.Error("neither iked logged a hard expire")
	}
}

// testRekeyTime: rekey_time is the engine's own timer (the kernel holds
// the hard limit, rekey_time plus a minute, as its add-expires); the
// Child SA is rekeyed once it passes, the old SAs leave the kernel, and
// traffic flows on the new ones.
func testRekeyTime(t *testing.T) {
	p := newPair(t, false)
	a, b := ikedPair(t, p, tunnelConn(p, "aes256gcm16", "rekey_time: 10s"))
	old := childOf(t, a)
	if s := stateBySPI(t, p.A, old.SPIOut); s.HardAddSec != 70 {
		t.Errorf("A's outbound SA: hard add-expires %d s, want 70 (rekey_time 10s plus a minute):\n%s", s.HardAddSec, s.Raw)
	}
	mustPing(t, p.A, p.AIn, p.BIn, 2)
	waitRekeyed(t, p, a, b, old.SPIIn, old.SPIOut)
	// The new Child SA is rekeyed in its turn 10 s later: traffic is
	// checked to flow, not counted.
	got := ping(t, p.A, p.AIn, p.BIn, 3)
	t.Logf("%d of 3 pings answered on the rekeyed Child SA", got)
	if got == 0 {
		t.Error("no ping answered on the rekeyed Child SA")
	}
}
