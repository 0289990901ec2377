package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/config"
	"github.com/iked/iked/ike"
)

// This file proves the SA lifecycle of issue 8 on a real network: Child SA
// and IKE SA rekeys with lifetimes of a fraction of a second under
// continuous ping through the userspace data plane (iked ⇄ iked and iked ⇄
// charon), and forced simultaneous rekeys from both sides.

// metric returns iked's metric name{labels}, failing the test when the
// metrics cannot be read; absent samples are 0.
func metric(t *testing.T, d *iked, name, labels string) float64 {
	t.Helper()
	m, err := d.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := metricValue(m, name, labels)
	return v
}

// pinger is a ping running in the background (-i interval, -D, -O) until
// stop.
type pinger struct {
	cmd     *exec.Cmd
	out     bytes.Buffer
	done    chan error
	stopped bool
}

// startPing starts ping -n -D -O -i interval -I src dst inside ns. The
// test's cleanup stops it.
func startPing(t *testing.T, ns *netns, src, dst string, interval time.Duration) *pinger {
	t.Helper()
	p := &pinger{done: make(chan error, 1)}
	p.cmd = ns.command(context.Background(), "ping", "-n", "-D", "-O", "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", "-I", src, dst)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting ping: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop interrupts ping (SIGINT: it prints its summary) and returns its
// output.
func (p *pinger) stop() string {
	if !p.stopped {
		p.stopped = true
		_ = signalAndWait(p.cmd, p.done, syscall.SIGINT, 5*time.Second)
	}
	return p.out.String()
}

// pingStats is what a ping run shows: echo requests sent, sequence numbers
// answered, the unanswered ones before the last answer (lost), those
// after it (still in flight when ping was interrupted), and the longest
// run of consecutive lost sequence numbers.
type pingStats struct {
	Transmitted, Received int
	Lost                  []int
	Trailing              int
	LongestRun            int
}

var (
	pingReplyRE   = regexp.MustCompile(`icmp_seq=(\d+) ttl=`)
	pingSummaryRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
)

// parsePing reads ping's output (one line per reply, the summary).
func parsePing(out string) (pingStats, error) {
	var s pingStats
	m := pingSummaryRE.FindStringSubmatch(out)
	if m == nil {
		return s, fmt.Errorf("no ping summary in:\n%s", tail(out, 2000))
	}
	s.Transmitted, _ = strconv.Atoi(m[1])
	s.Received, _ = strconv.Atoi(m[2])
	answered := map[int]bool{}
	last := 0
	for _, m := range pingReplyRE.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		answered[n] = true
		last = max(last, n)
	}
	run := 0
	for n := 1; n <= last; n++ {
		if answered[n] {
			run = 0
			continue
		}
		s.Lost = append(s.Lost, n)
		run++
		s.LongestRun = max(s.LongestRun, run)
	}
	s.Trailing = s.Transmitted - last
	return s, nil
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// pingLines returns ping's lines that mention one of the sequence numbers.
func pingLines(out string, seqs []int) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		for _, n := range seqs {
			if strings.Contains(l, fmt.Sprintf("icmp_seq=%d ", n)) || strings.HasSuffix(l, fmt.Sprintf("icmp_seq=%d", n)) {
				b.WriteString(l + "\n")
			}
		}
	}
	return b.String()
}

// checkPingLoss asserts the invariant of Child SA rekeys under ping, which
// holds however slow the machine: every echo request or reply ping missed
// is an ESP packet one of the daemons (sides) dropped because its SA was
// no longer, or not yet, installed (unknown_spi); nothing was dropped that
// ping did not miss; and nothing for any other reason: never without an
// outbound SA (no packet dropped by policy or for want of a route, none
// held for an acquire), no replay, no integrity failure. How many echoes
// a switch loses depends on how long the exchanges take, so on the load:
// it is logged, never asserted. The namespaces have no IPv6 (noIPv6), so
// the policy and no_route counts are the tunnel's alone.
func checkPingLoss(t *testing.T, out string, switches int, sides map[string]*iked) pingStats {
	t.Helper()
	s, err := parsePing(out)
	if err != nil {
		t.Fatal(err)
	}
	var unknown float64
	var drops []string
	for name, d := range sides {
		m, err := d.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		var ds []string
		for _, r := range append(espDropReasons, "policy", "no_route") {
			v, _ := metricValue(m, "iked_esp_packets_dropped_total", `reason="`+r+`"`)
			ds = append(ds, fmt.Sprintf("%s=%v", r, v))
			switch r {
			case "unknown_spi":
				unknown += v
			default:
				if v != 0 {
					t.Errorf("iked %s dropped %v ESP packets for %s during the rekeys", name, v, r)
				}
			}
		}
		if v, _ := metricValue(m, "iked_dataplane_events_total", `event="acquire_held"`); v != 0 {
			t.Errorf("iked %s held %v packets for want of an outbound SA during the rekeys", name, v)
		}
		drops = append(drops, fmt.Sprintf("iked %s: %s", name, strings.Join(ds, " ")))
	}
	unanswered := s.Transmitted - s.Received
	t.Logf("ping: %d echo requests, %d answered, %d lost (sequence numbers %v, longest run %d), %d in flight when stopped; ESP dropped as unknown_spi: %v (%s)",
		s.Transmitted, s.Received, len(s.Lost), s.Lost, s.LongestRun, s.Trailing, unknown, strings.Join(drops, "; "))
	if s.Transmitted < switches {
		t.Errorf("ping sent %d echo requests during %d Child SA switches, want at least one each", s.Transmitted, switches)
	}
	if float64(len(s.Lost)) > unknown {
		t.Errorf("ping lost %d echoes %v, but iked dropped only %v ESP packets of a replaced SA: a loss is not accounted for\n%s",
			len(s.Lost), s.Lost, unknown, pingLines(out, s.Lost))
	}
	if unknown > float64(unanswered) {
		t.Errorf("iked dropped %v ESP packets of a replaced SA, but ping missed only %d echoes", unknown, unanswered)
	}
	return s
}

// noIPv6 turns IPv6 off in ns (before a daemon makes its TUN device there),
// so that no IPv6 chatter of the kernel reaches a data plane's counters.
func noIPv6(t *testing.T, ns *netns) {
	t.Helper()
	out, err := ns.command(context.Background(), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1").CombinedOutput()
	if err != nil {
		t.Fatalf("disabling IPv6 in %s: %v\n%s", ns.name, err, out)
	}
}

// rekeyPair starts two iked with the userspace data plane (A in I, inner
// 10.1.0.1; B in S, inner 10.2.0.1), each connection edited by edit, both
// daemons' options by opts; A initiates. It captures IKE only (port 500,
// and port 4500 behind the non-ESP marker) on veth-i.
func rekeyPair(t *testing.T, edit func(a, b *ikedConn), opts func(a, b *ikedOptions)) *dpIkedPair {
	t.Helper()
	requireTools(t, "nft")
	return startIkedPair(t, ikedPairSetup{filter: ikeOnly, edit: edit, opts: opts})
}

// onePair waits until both iked list one established IKE SA (the same
// SPIs) with one Child SA whose SPIs pair, and returns them.
func onePair(t *testing.T, a, b *iked, within time.Duration) (ike.SAInfo, ike.SAInfo) {
	t.Helper()
	var sa, sb ike.SAInfo
	waitFor(t, within, func() string {
		la, err := a.SAs()
		if err != nil {
			return err.Error()
		}
		lb, err := b.SAs()
		if err != nil {
			return err.Error()
		}
		if len(la) != 1 || len(lb) != 1 {
			return fmt.Sprintf("A lists %d IKE SAs, B %d; want one each:\nA %s\nB %s", len(la), len(lb), describeSAs(la), describeSAs(lb))
		}
		sa, sb = la[0], lb[0]
		if sa.State != "established" || sb.State != "established" || sa.SPIi != sb.SPIi || sa.SPIr != sb.SPIr {
			return fmt.Sprintf("IKE SAs differ or are not established:\nA %s\nB %s", describeSAs(la), describeSAs(lb))
		}
		if len(sa.Children) != 1 || len(sb.Children) != 1 {
			return fmt.Sprintf("A has %d Child SAs, B %d; want one each:\nA %s\nB %s", len(sa.Children), len(sb.Children), describeSAs(la), describeSAs(lb))
		}
		ca, cb := sa.Children[0], sb.Children[0]
		if ca.SPIIn != cb.SPIOut || ca.SPIOut != cb.SPIIn {
			return fmt.Sprintf("Child SA SPIs do not pair:\nA %s\nB %s", describeSAs(la), describeSAs(lb))
		}
		return ""
	})
	return sa, sb
}

// describeSAs is a one-line-per-SA summary of ikectl sas --json.
func describeSAs(sas []ike.SAInfo) string {
	var b strings.Builder
	for _, s := range sas {
		fmt.Fprintf(&b, "[%s %s %s %s_i %s_r nat_local=%v nat_remote=%v %s === %s", s.ID, s.State, s.Role, s.SPIi, s.SPIr,
			s.NATLocal, s.NATRemote, s.LocalAddr, s.RemoteAddr)
		for _, c := range s.Children {
			fmt.Fprintf(&b, " child %s_i/%s_o in %d out %d", c.SPIIn, c.SPIOut, c.PacketsIn, c.PacketsOut)
		}
		b.WriteString("] ")
	}
	if len(sas) == 0 {
		return "(none)"
	}
	return b.String()
}

// Rekey targets of issue 8.
const (
	wantChildRekeys = 50
	wantIKERekeys   = 20
	// rekeyWindow bounds the wait for them (per pairing).
	// rekeyWindow bounds the wait as a hang guard: at 300 ms a rekey
	// they take 15-20 s on an idle machine.
	rekeyWindow = 2 * hangGuard
)

// waitRekeys polls d's iked_rekeys_total until it shows child and ike
// rekeys (or the window ends) and returns the counts.
func waitRekeys(t *testing.T, d *iked, child, ikes float64, window time.Duration) (float64, float64) {
	t.Helper()
	var c, i float64
	deadline := time.Now().Add(window)
	for {
		m, err := d.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		c, _ = metricValue(m, "iked_rekeys_total", `type="child"`)
		i, _ = metricValue(m, "iked_rekeys_total", `type="ike"`)
		if c >= child && i >= ikes {
			return c, i
		}
		if time.Now().After(deadline) {
			t.Errorf("after %v: iked_rekeys_total child %v (want >= %v), ike %v (want >= %v)", window, c, child, i, ikes)
			return c, i
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// wireExchanges counts the captured CREATE_CHILD_SA and INFORMATIONAL
// requests (IKE exchange types 36 and 37, in the clear header).
func wireExchanges(t *testing.T, c *capture) (createChild, informational int) {
	t.Helper()
	out, err := c.tshark(nil, "-Y", "(isakmp.exchangetype == 36 || isakmp.exchangetype == 37) && isakmp.flag_r == 0",
		"-T", "fields", "-e", "isakmp.exchangetype")
	if err != nil {
		t.Errorf("tshark: %v", err)
		return 0, 0
	}
	for _, l := range strings.Fields(out) {
		switch l {
		case "36":
			createChild++
		case "37":
			informational++
		}
	}
	return createChild, informational
}

// engineWarnings returns the lines of iked's log at level WARN or ERROR.
func engineWarnings(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return out
}

// TestLifecycleRekey/iked-iked: both iked with rekey_time 300ms and
// ike_rekey_time 1s, ESP AES-GCM-256 through the userspace data plane,
// ping 10.1.0.1 → 10.2.0.1 every 50 ms throughout. Asserted: 50 Child SA
// and 20 IKE SA rekeys happen (iked_rekeys_total on A, which counts the
// rekeys either side started; the wait for them is a hang guard) and as
// many CREATE_CHILD_SA requests on the wire; every echo ping missed is
// accounted for by iked (checkPingLoss); at the end one IKE SA and one
// Child SA on each side, SPIs paired, and ping crosses.
//
// TestLifecycleRekey/iked-charon: iked (userspace, rekey_time 300ms, IKE
// rekeys left to charon) and charon (kernel-libipsec; IKE rekey_time 1s,
// rand_time 0; its children rekey_time 2s, which iked's shorter lifetime
// pre-empts) with the same ping. Asserted as above, and charon's unique
// IDs and log show as many IKE SAs and Child SAs.
func TestLifecycleRekey(t *testing.T) {
	t.Run("iked-iked", func(t *testing.T) {
		p := rekeyPair(t, func(a, b *ikedConn) {
			for _, c := range []*ikedConn{a, b} {
				c.RekeyTime, c.IKERekeyTime = "300ms", "1s"
			}
		}, nil)
		onePair(t, p.a, p.b, 5*time.Second)
		ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 1)
		start := time.Now()
		pg := startPing(t, p.topo.I, ikedInnerHost, charonInnerHost, 50*time.Millisecond)
		child, ikes := waitRekeys(t, p.a, wantChildRekeys, wantIKERekeys, rekeyWindow)
		out := pg.stop()
		elapsed := time.Since(start)
		bChild := metric(t, p.b, "iked_rekeys_total", `type="child"`)
		bIKE := metric(t, p.b, "iked_rekeys_total", `type="ike"`)
		t.Logf("in %.1f s: A counted %v Child SA and %v IKE SA rekeys, B %v and %v", elapsed.Seconds(), child, ikes, bChild, bIKE)
		sa, sb := onePair(t, p.a, p.b, 3*time.Second)
		t.Logf("final: A %s; B %s", describeSAs([]ike.SAInfo{sa}), describeSAs([]ike.SAInfo{sb}))
		checkPingLoss(t, out, int(child), map[string]*iked{"A": p.a, "B": p.b})
		ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 2)
		for _, side := range []struct {
			name string
			d    *iked
		}{{"A", p.a}, {"B", p.b}} {
			if w := engineWarnings(side.d.Log()); len(w) > 0 {
				t.Logf("iked %s logged %d warnings, e.g.:\n%s", side.name, len(w), strings.Join(w[:min(len(w), 5)], "\n"))
			}
			collisions := logLines(side.d.Log(), "simultaneous Child SA rekey")
			t.Logf("iked %s: %d simultaneous Child SA rekeys resolved", side.name, len(collisions))
		}
		cc, _ := wireExchanges(t, p.cap)
		t.Logf("captured %d CREATE_CHILD_SA requests", cc)
		if float64(cc) < child+ikes {
			t.Errorf("captured %d CREATE_CHILD_SA requests, fewer than the %v rekeys counted", cc, child+ikes)
		}
	})
	t.Run("iked-charon", func(t *testing.T) {
		requireTools(t, "ping", "nft")
		p := newCharonDataplanePairEdit(t, "aes256gcm16", func(ic *ikedConn, cc *charonConn) {
			ic.RekeyTime, ic.IKERekeyTime = "300ms", "1h"
			cc.IKERekeyTime, cc.IKEOverTime, cc.IKERandTime = "1s", "10s", "0s"
			cc.ChildRekeyTime, cc.ChildLifeTime, cc.ChildRandTime = "2s", "20s", "0s"
		}, nil)
		if out, err := p.iked.Initiate(connName); err != nil {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 1)
		start := time.Now()
		pg := startPing(t, p.topo.I, ikedInnerHost, charonInnerHost, 50*time.Millisecond)
		child, ikes := waitRekeys(t, p.iked, wantChildRekeys, wantIKERekeys, rekeyWindow)
		out := pg.stop()
		elapsed := time.Since(start)
		t.Logf("in %.1f s: iked counted %v Child SA and %v IKE SA rekeys", elapsed.Seconds(), child, ikes)
		// Both sides settle on one IKE SA with one Child SA, the same.
		var is ike.SAInfo
		var cs charonIKESA
		waitFor(t, 5*time.Second, func() string {
			isas, err := p.iked.SAs()
			if err != nil {
				return err.Error()
			}
			csas, err := p.charon.ListSAs()
			if err != nil {
				return err.Error()
			}
			// charon keeps the inbound half of a rekeyed Child SA for
			// delete_rekeyed_delay (5 s) in state DELETED, for late
			// packets: those are not Child SAs any more.
			for i := range csas {
				var live []charonChildSA
				for _, c := range csas[i].Children {
					if c.State != "DELETED" {
						live = append(live, c)
					}
				}
				csas[i].Children = live
			}
			if len(isas) != 1 || len(csas) != 1 || len(isas[0].Children) != 1 || len(csas[0].Children) != 1 {
				return fmt.Sprintf("iked %s; charon %+v", describeSAs(isas), csas)
			}
			is, cs = isas[0], csas[0]
			ic, cc := is.Children[0], cs.Children[0]
			if is.SPIi != spiHex(cs.SPIi, 16) || is.SPIr != spiHex(cs.SPIr, 16) || ic.SPIIn != spiHex(cc.SPIOut, 8) || ic.SPIOut != spiHex(cc.SPIIn, 8) ||
				cs.State != "ESTABLISHED" || cc.State != "INSTALLED" {
				return fmt.Sprintf("SAs differ: iked %s; charon %s %s_i %s_r child %s %s_i %s_o", describeSAs(isas), cs.State, cs.SPIi, cs.SPIr, cc.State, cc.SPIIn, cc.SPIOut)
			}
			return ""
		})
		// charon keeps the inbound half of a rekeyed Child SA for 5 s,
		// so every echo ping missed was dropped by iked.
		checkPingLoss(t, out, int(child), map[string]*iked{"iked": p.iked})
		ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 2)
		ikeID, _ := strconv.Atoi(cs.UniqueID)
		childID, _ := strconv.Atoi(cs.Children[0].UniqueID)
		log := p.charon.Log()
		est := len(logLines(log, "CHILD_SA "+childName+"{", "established with SPIs"))
		ikeRekeyed := len(logLines(log, "rekeying IKE_SA")) // charon started them
		t.Logf("charon: final IKE SA %s[%s], Child SA %s{%s}; %d CHILD_SA established lines, %d IKE SA rekeys started",
			cs.Name, cs.UniqueID, childName, cs.Children[0].UniqueID, est, ikeRekeyed)
		if ikeID < wantIKERekeys+1 || childID < wantChildRekeys+1 {
			t.Errorf("charon's final unique IDs IKE %d, Child %d: want >= %d and >= %d (one per rekey)", ikeID, childID, wantIKERekeys+1, wantChildRekeys+1)
		}
		if w := engineWarnings(p.iked.Log()); len(w) > 0 {
			t.Logf("iked logged %d warnings, e.g.:\n%s", len(w), strings.Join(w[:min(len(w), 5)], "\n"))
		}
		cr, _ := wireExchanges(t, p.cap)
		t.Logf("captured %d CREATE_CHILD_SA requests", cr)
		if float64(cr) < child+ikes {
			t.Errorf("captured %d CREATE_CHILD_SA requests, fewer than the %v rekeys counted", cr, child+ikes)
		}
	})
}

// newCharonDataplanePairEdit is newCharonDataplanePair with the
// connections edited before the daemons start, and the capture limited to
// IKE.
func newCharonDataplanePairEdit(t *testing.T, esp string, edit func(*ikedConn, *charonConn), opts func(*ikedOptions)) *pair {
	t.Helper()
	s := charonPairSetup{userspace: true, esp: esp, filter: ikeOnly, edit: edit}
	if opts != nil {
		s.opts = func(io *ikedOptions, _ *charonOptions) { opts(io) }
	}
	return startCharonPair(t, s)
}

// nftIn runs nft with args inside ns.
func nftIn(t *testing.T, ns *netns, args ...string) string {
	t.Helper()
	out, err := ns.command(context.Background(), append([]string{"nft"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("nft %s in %s: %v\n%s", strings.Join(args, " "), ns.name, err, out)
	}
	return string(out)
}

// nftCounter returns the packets counted by the first counter of table
// inet NAME in ns.
func nftCounter(t *testing.T, ns *netns, table string) int {
	t.Helper()
	out := nftIn(t, ns, "list", "table", "inet", table)
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in table %s:\n%s", table, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// holdResponses makes ns drop the IKE responses it receives on port 4500
// (non-ESP marker, then the IKE header's Response flag): a request still
// reaches the peer and is answered, the answer is lost, so the requester
// retransmits after its timeout and gets the cached answer.
func holdResponses(t *testing.T, ns *netns) {
	t.Helper()
	nftIn(t, ns, "add", "table", "inet", "hold")
	nftIn(t, ns, "add", "chain", "inet", "hold", "in", "{ type filter hook input priority -300 ; }")
	// UDP payload octet 23 is the IKE header's flags (4-octet marker, 19
	// octets into the header); 0x20 is Response.
	nftIn(t, ns, "add", "rule", "inet", "hold", "in", "udp", "dport", "4500", "@th,64,32", "0", "@th,248,8", "&", "0x20", "==", "0x20", "counter", "drop")
}

// TestLifecycleSimultaneousRekey: two iked (userspace data plane, default
// lifetimes), ten rounds. In each, both namespaces first drop every IKE
// response they receive; then ikectl rekey runs on both daemons at the same
// moment for their Child SA (subtest child: ikectl rekey SA-ID SPI) or
// their IKE SA (subtest ike: ikectl rekey SA-ID). When each side's request
// reaches the other while its own is still open, it is a genuine collision
// (RFC 7296 §2.8.1, §2.8.2); when one side answered the peer's rekey before
// its own command ran, that side does not rekey again (the SA is rekeyed
// already). Once the answers have been dropped the rule goes and the
// retransmissions complete the exchanges. Asserted after every round: both
// rekey commands succeed,
// each side holds exactly one IKE SA (the same SPIs) with exactly one
// Child SA, the Child SA SPIs pair (spi_in on one side is spi_out on the
// other), they are new, and a ping crosses the tunnel.
func TestLifecycleSimultaneousRekey(t *testing.T) {
	for _, kind := range []string{"child", "ike"} {
		t.Run(kind, func(t *testing.T) {
			p := rekeyPair(t, nil, func(a, b *ikedOptions) {
				for _, o := range []*ikedOptions{a, b} {
					// 8 retransmissions (73 s in all): the responses are
					// held until both sides' requests were answered, which
					// takes longer on a busy machine.
					o.RetransmitTimeout, o.RetransmitTries = 300*time.Millisecond, 8
				}
			})
			sa, sb := onePair(t, p.a, p.b, 5*time.Second)
			ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 1)
			rounds := 10
			if kind == "ike" {
				rounds = 5
			}
			seen := map[string]bool{sa.Children[0].SPIIn: true, sb.Children[0].SPIIn: true}
			for round := 1; round <= rounds; round++ {
				holdResponses(t, p.topo.I)
				holdResponses(t, p.topo.S)
				argsA, argsB := []string{"rekey", sa.ID}, []string{"rekey", sb.ID}
				if kind == "child" {
					argsA, argsB = append(argsA, sa.Children[0].SPIIn), append(argsB, sb.Children[0].SPIIn)
				}
				var wg sync.WaitGroup
				var outA, outB string
				var errA, errB error
				returned := make(chan struct{}, 2)
				wg.Add(2)
				go func() { defer wg.Done(); outA, errA = p.a.ikectl(2*hangGuard, argsA...); returned <- struct{}{} }()
				go func() { defer wg.Done(); outB, errB = p.b.ikectl(2*hangGuard, argsB...); returned <- struct{}{} }()
				// Both requests answered, both answers dropped: then
				// let the retransmissions through. A command that
				// returns first sent no request (or failed): no
				// collision then. The deadline is a hang guard.
				deadline := time.Now().Add(hangGuard)
				for nftCounter(t, p.topo.I, "hold") < 1 || nftCounter(t, p.topo.S, "hold") < 1 {
					early := false
					select {
					case <-returned:
						early = true
					default:
					}
					if early || time.Now().After(deadline) {
						// A side that has answered the peer's rekey (of the
						// IKE SA or of the Child SA) treats the old SA as
						// rekeyed and sends no rekey of its own (ikectl
						// succeeds): no collision then, only convergence to
						// check. ike's TestSimultaneousIKERekey and
						// TestSimultaneousChildRekey force the collision.
						t.Logf("round %d: responses dropped: A %d, B %d: no collision this round", round, nftCounter(t, p.topo.I, "hold"), nftCounter(t, p.topo.S, "hold"))
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				nftIn(t, p.topo.I, "delete", "table", "inet", "hold")
				nftIn(t, p.topo.S, "delete", "table", "inet", "hold")
				wg.Wait()
				if errA != nil || errB != nil {
					t.Errorf("round %d: ikectl %v on A: %v %s; ikectl %v on B: %v %s", round, argsA, errA, outA, argsB, errB, outB)
				}
				sa, sb = onePair(t, p.a, p.b, 5*time.Second)
				for _, spi := range []string{sa.Children[0].SPIIn, sb.Children[0].SPIIn} {
					if kind == "child" && seen[spi] {
						t.Errorf("round %d: Child SA %s is not new", round, spi)
					}
					seen[spi] = true
				}
				ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 1)
				t.Logf("round %d: A %s; B %s", round, describeSAs([]ike.SAInfo{sa}), describeSAs([]ike.SAInfo{sb}))
				if t.Failed() {
					break
				}
			}
			for _, side := range []struct {
				name string
				d    *iked
			}{{"A", p.a}, {"B", p.b}} {
				collisions := len(logLines(side.d.Log(), "simultaneous Child SA rekey"))
				t.Logf("iked %s: %d \"simultaneous Child SA rekey\" log lines; rekeys counted: child %v, ike %v", side.name, collisions,
					metric(t, side.d, "iked_rekeys_total", `type="child"`), metric(t, side.d, "iked_rekeys_total", `type="ike"`))
				// How many rounds were genuine collisions depends on
				// whether each side's command ran before the peer's
				// request arrived (a side that answered first does not
				// rekey again): only logged. ike's TestSimultaneousChildRekey
				// and TestSimultaneousIKERekey force the collisions.
			}
		})
	}
}

// TestLifecycleConfigRendering: the lifecycle knobs of the harness render
// as iked and strongSwan expect, and iked loads the result.
func TestLifecycleConfigRendering(t *testing.T) {
	o := userspaceIked("10.99.1.1", ikedInnerHost, ikedConn{Name: "c", Local: "10.99.1.1", Remote: "10.99.1.2", PSK: interopPSK,
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet},
		RekeyTime: "300ms", IKERekeyTime: "1s", DPDDelay: "2s", DPDAction: "clear", ForceEncap: true})
	o.RetransmitBase, o.NATKeepalive = 1.0, time.Second
	y := ikedConfig("/d/s", "/d/k", o)
	for _, want := range []string{`rekey_time: "300ms"`, `ike_rekey_time: "1s"`, `dpd_delay: "2s"`, `dpd_action: "clear"`, "force_encap: true",
		"retransmit_base: 1,", "nat_keepalive: 1s}"} {
		if !strings.Contains(y, want) {
			t.Errorf("iked config lacks %q:\n%s", want, y)
		}
	}
	path := filepath.Join(t.TempDir(), "iked.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Errorf("iked refuses the rendered configuration: %v\n%s", err, y)
	}
	sw := swanctlConf([]charonConn{{Name: "c", Child: "net", LocalAddr: "a", RemoteAddr: "%any", PSK: "x",
		IKERekeyTime: "1s", IKEOverTime: "10s", IKERandTime: "0s", ChildRekeyTime: "2s", ChildLifeTime: "20s", ChildRandTime: "0s"}})
	for _, want := range []string{"\t\trekey_time = 1s\n", "\t\tover_time = 10s\n", "\t\trand_time = 0s\n",
		"\t\t\t\trekey_time = 2s\n", "\t\t\t\tlife_time = 20s\n", "\t\t\t\trand_time = 0s\n", "remote_addrs = %any"} {
		if !strings.Contains(sw, want) {
			t.Errorf("swanctl.conf lacks %q:\n%s", want, sw)
		}
	}
}
