package interop

import (
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// NAT traversal through a real NAT: the initiator (iked, userspace data
// plane) sits behind a router namespace that masquerades with nftables.

// natKeepaliveInterval is the ike.nat_keepalive the NATed iked runs with,
// and natKeepalives how many keepalives the test waits for.
const (
	natKeepaliveInterval = time.Second
	natKeepalives        = 3
)

// waitKeepalives waits until the capture c at S holds natKeepalives NAT
// keepalives from the router's outside address (the wait is a hang guard:
// how many arrive in a given time depends on the machine).
func waitKeepalives(t *testing.T, tp *natTopology, c *capture) {
	t.Helper()
	waitFor(t, hangGuard, func() string {
		frames, err := readPcap(c.path)
		if err != nil {
			return err.Error()
		}
		n := 0
		for _, f := range frames {
			if f.src == tp.ROutside && f.dst == tp.SAddr && f.dport == 4500 && len(f.udp) == 1 && f.udp[0] == 0xff {
				n++
			}
		}
		if n < natKeepalives {
			return fmt.Sprintf("%d NAT keepalives captured at S, want %d", n, natKeepalives)
		}
		return ""
	})
}

// keepalive is a one-octet UDP datagram as tshark shows it.
type keepalive struct {
	at       float64
	src, dst string
	sport    string
	dport    string
	payload  string
}

// keepalives returns the captured UDP datagrams with one octet of payload.
func keepalives(t *testing.T, c *capture) []keepalive {
	t.Helper()
	out, err := c.tshark(nil, "-Y", "udp.length == 9", "-T", "fields", "-e", "frame.time_relative", "-e", "ip.src", "-e", "udp.srcport",
		"-e", "ip.dst", "-e", "udp.dstport", "-e", "udp.payload")
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var ks []keepalive
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 6 {
			continue
		}
		at, _ := strconv.ParseFloat(f[0], 64)
		ks = append(ks, keepalive{at: at, src: f[1], sport: f[2], dst: f[3], dport: f[4], payload: f[5]})
	}
	return ks
}

// natWireCheck asserts what S saw: nothing from the private subnet (the
// router masqueraded everything), no plain ESP, everything from the NATed
// side after IKE_SA_INIT on UDP 4500 (ESP in UDP with the Child SA's SPI,
// IKE behind the non-ESP marker, keepalives); NAT keepalives (one octet,
// 0xff) from the router's outside address to port 4500 about every
// natKeepaliveInterval (never sooner; a timer may fire late on a busy
// machine, not ten intervals late), none from S. It returns the keepalive
// count.
func natWireCheck(t *testing.T, tp *natTopology, c *capture, spiToS uint32) int {
	t.Helper()
	c.Stop()
	frames, err := readPcap(c.path)
	if err != nil {
		t.Fatal(err)
	}
	inside := netip.MustParsePrefix(tp.insideNet)
	var private, plainESP, espIn, ike500, ike4500, otherFromR int
	for _, f := range frames {
		if !f.src.IsValid() {
			continue
		}
		if inside.Contains(f.src) || inside.Contains(f.dst) {
			private++
		}
		if f.proto == 50 {
			plainESP++
			continue
		}
		if f.src != tp.ROutside {
			continue
		}
		spi, _, isESP := f.esp()
		switch {
		case isESP && f.dport == 4500 && spi == spiToS:
			espIn++
		case f.dport == 500:
			ike500++
		case f.dport == 4500 && len(f.udp) >= 4 && string(f.udp[:4]) == "\x00\x00\x00\x00":
			ike4500++
		case f.dport == 4500 && len(f.udp) == 1 && f.udp[0] == 0xff:
		default:
			otherFromR++
		}
	}
	t.Logf("at S: %d frames; from the NAT %s: %d ESP in UDP 4500 (SPI %08x), %d IKE on 500, %d IKE on 4500, %d other; private-address frames %d, plain ESP %d",
		len(frames), tp.ROutside, espIn, spiToS, ike500, ike4500, otherFromR, private, plainESP)
	if private != 0 || plainESP != 0 || otherFromR != 0 || espIn == 0 || ike4500 == 0 {
		t.Errorf("on the wire at S: want only NATed traffic, ESP and IKE in UDP 4500; got %d private-address frames, %d plain ESP, %d other frames from the NAT, %d ESP in UDP, %d IKE on 4500",
			private, plainESP, otherFromR, espIn, ike4500)
	}
	var fromNAT []keepalive
	for _, k := range keepalives(t, c) {
		switch {
		case k.src == tp.ROutside.String() && k.dst == tp.SAddr.String() && k.dport == "4500" && k.payload == "ff":
			fromNAT = append(fromNAT, k)
		case k.src == tp.SAddr.String():
			t.Errorf("S sent a one-octet datagram (%+v): it is not behind a NAT", k)
		default:
			t.Errorf("unexpected one-octet datagram %+v", k)
		}
	}
	var gaps []string
	for i := 1; i < len(fromNAT); i++ {
		gap := fromNAT[i].at - fromNAT[i-1].at
		gaps = append(gaps, fmt.Sprintf("%.2f", gap))
		// The upper bound catches keepalives at the default 20 s instead
		// of nat_keepalive.
		if gap < 0.8*natKeepaliveInterval.Seconds() || gap > 10*natKeepaliveInterval.Seconds() {
			t.Errorf("NAT keepalives %.2f s apart, want every %v", gap, natKeepaliveInterval)
		}
	}
	t.Logf("NAT keepalives from %s:%s to %s:4500: %d, intervals %v s", tp.ROutside, firstPort(fromNAT), tp.SAddr, len(fromNAT), gaps)
	if len(fromNAT) < natKeepalives {
		t.Errorf("%d NAT keepalives with nat_keepalive %v, want >= %d", len(fromNAT), natKeepaliveInterval, natKeepalives)
	}
	return len(fromNAT)
}

func firstPort(ks []keepalive) string {
	if len(ks) == 0 {
		return "-"
	}
	return ks[0].sport
}

// masqueraded returns the packets the router's masquerade rule counted.
func masqueraded(t *testing.T, tp *natTopology) int {
	t.Helper()
	out, err := tp.R.command(t.Context(), "nft", "list", "table", "ip", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table ip nat: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no masquerade counter:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// natIked returns the options of the NATed iked (userspace data plane,
// nat_keepalive natKeepaliveInterval) in tp.I, connecting to tp.S.
func natIked(tp *natTopology, remoteID string) ikedOptions {
	a := tp.IAddr.String()
	c, _ := ikedPeers(a, tp.SAddr.String(), "aes256gcm16")
	c.RemoteID = remoteID
	o := userspaceIked(a, ikedInnerHost, c)
	o.NATKeepalive = natKeepaliveInterval
	return o
}

// TestLifecycleNAT: iked behind a masquerading router (three namespaces)
// initiates to iked (iked-iked; the responder's remote is %any) or to
// charon (iked-charon; remote_addrs = %any, kernel-libipsec). Asserted: the
// NATed iked reports nat_local, the responder nat_remote (and not
// nat_local), the responder sees the router's address on port 4500;
// pings cross the userspace tunnel; at S only UDP 4500 arrives from the
// NAT after IKE_SA_INIT (ESP in UDP, IKE with the marker, keepalives) and
// nothing from the private subnet; with ike.nat_keepalive 1s, one-octet
// 0xff keepalives from the NATed side keep arriving, never less than a
// second apart (none from S).
func TestLifecycleNAT(t *testing.T) {
	requireTUN(t)
	requireTools(t, "ping", "tcpdump", "tshark", "nft")
	t.Run("iked-iked", func(t *testing.T) {
		tp := newNATTopology(t)
		c := startCaptureFilter(t, tp.S, "veth-s", "")
		var a, b *iked
		logCaptureOnFailure(t, c, "veth-s at S", func() *iked { return a })
		s := tp.SAddr.String()
		_, cb := ikedPeers(tp.IAddr.String(), s, "aes256gcm16")
		cb.Remote = "%any"
		b = startIked(t, tp.S, userspaceIked(s, charonInnerHost, cb))
		a = startIked(t, tp.I, natIked(tp, ikedBID))
		if out, err := a.Initiate(connName); err != nil {
			t.Fatalf("iked A initiate: %v\n%s", err, out)
		}
		sa, sb := onePair(t, a, b, 5*time.Second)
		t.Logf("A %s\nB %s", describeSAs([]ike.SAInfo{sa}), describeSAs([]ike.SAInfo{sb}))
		if !sa.NATLocal || !sb.NATRemote || sb.NATLocal {
			t.Errorf("NAT detection: A nat_local %v (want true); B nat_remote %v (want true), nat_local %v (want false)", sa.NATLocal, sb.NATRemote, sb.NATLocal)
		}
		if sa.RemoteAddr != s+":4500" || !strings.HasPrefix(sb.RemoteAddr, tp.ROutside.String()+":") || !strings.HasSuffix(sa.LocalAddr, ":4500") {
			t.Errorf("addresses: A %s === %s, B %s === %s; want A on 4500 to %s:4500, B seeing the NAT %s", sa.LocalAddr, sa.RemoteAddr, sb.LocalAddr, sb.RemoteAddr, s, tp.ROutside)
		}
		ping(t, tp.I, ikedInnerHost, charonInnerHost, 5)
		ping(t, tp.S, charonInnerHost, ikedInnerHost, 2)
		waitKeepalives(t, tp, c)
		natWireCheck(t, tp, c, spiValue(t, sa.Children[0].SPIOut))
		t.Logf("router masqueraded %d packets", masqueraded(t, tp))
	})
	t.Run("iked-charon", func(t *testing.T) {
		requireCharon(t)
		tp := newNATTopology(t)
		if err := ipCmd("-n", tp.S.name, "addr", "add", charonInnerHost+"/32", "dev", "veth-s"); err != nil {
			t.Fatal(err)
		}
		c := startCaptureFilter(t, tp.S, "veth-s", "")
		var a *iked
		logCaptureOnFailure(t, c, "veth-s at S", func() *iked { return a })
		s := tp.SAddr.String()
		_, conn := charonPeers(tp.IAddr.String(), s, "aes256gcm16")
		conn.RemoteAddr, conn.RemoteID = "%any", ikedAID
		ch := startCharon(t, tp.S, charonOptions{InstallRoutes: true, Conns: []charonConn{conn}})
		a = startIked(t, tp.I, natIked(tp, charonID))
		if out, err := a.Initiate(connName); err != nil {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		var sa ike.SAInfo
		var cs charonIKESA
		waitFor(t, 5*time.Second, func() string {
			isas, err := a.SAs()
			if err != nil {
				return err.Error()
			}
			csas, err := ch.ListSAs()
			if err != nil {
				return err.Error()
			}
			if len(isas) != 1 || len(csas) != 1 || len(isas[0].Children) != 1 || len(csas[0].Children) != 1 || csas[0].State != "ESTABLISHED" {
				return fmt.Sprintf("iked %s; charon %+v", describeSAs(isas), csas)
			}
			sa, cs = isas[0], csas[0]
			return ""
		})
		cc := cs.Children[0]
		t.Logf("iked %s\ncharon %s:%s === %s:%s nat-local=%v nat-remote=%v child %s_i %s_o encap=%v", describeSAs([]ike.SAInfo{sa}),
			cs.LocalHost, cs.LocalPort, cs.RemoteHost, cs.RemotePort, cs.NATLocal, cs.NATRemote, cc.SPIIn, cc.SPIOut, cc.Encap)
		if sa.SPIi != spiHex(cs.SPIi, 16) || sa.Children[0].SPIIn != spiHex(cc.SPIOut, 8) || sa.Children[0].SPIOut != spiHex(cc.SPIIn, 8) {
			t.Errorf("SAs differ")
		}
		if !sa.NATLocal || !cs.NATRemote || cs.NATLocal || !cc.Encap {
			t.Errorf("NAT detection: iked nat_local %v (want true); charon nat-remote %v (want true), nat-local %v (want false), encap %v (want true)",
				sa.NATLocal, cs.NATRemote, cs.NATLocal, cc.Encap)
		}
		if cs.RemoteHost != tp.ROutside.String() || cs.LocalPort != "4500" || sa.RemoteAddr != s+":4500" {
			t.Errorf("addresses: charon %s:%s === %s:%s, iked %s === %s; want charon seeing the NAT %s, both on 4500",
				cs.LocalHost, cs.LocalPort, cs.RemoteHost, cs.RemotePort, sa.LocalAddr, sa.RemoteAddr, tp.ROutside)
		}
		wantLog(t, "charon", ch.Log(), "remote host is behind NAT")
		ping(t, tp.I, ikedInnerHost, charonInnerHost, 5)
		waitKeepalives(t, tp, c)
		natWireCheck(t, tp, c, spiValue(t, sa.Children[0].SPIOut))
		t.Logf("router masqueraded %d packets", masqueraded(t, tp))
		if out, err := exec.Command("ip", "-n", tp.S.name, "route", "show", "table", "220").CombinedOutput(); err == nil {
			t.Logf("charon's table 220: %s", strings.TrimSpace(string(out)))
		}
	})
}
