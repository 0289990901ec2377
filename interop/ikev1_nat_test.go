package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// natIkedV1 is natIked for IKEv1.
func natIkedV1(tp *natTopology, remoteID string) ikedOptions {
	o := natIked(tp, remoteID)
	c := &o.Conns[0]
	c.Version, c.IKEProposals, c.ESPProposals = "ikev1", []string{v1IKE}, []string{v1ESP}
	return o
}

// TestIKEv1NAT: NAT traversal (RFC 3947, RFC 3948) through the masquerading
// router of TestLifecycleNAT, iked (userspace data plane) behind it
// initiating Main Mode and Quick Mode to iked and to charon: NAT-D tells
// both sides where the NAT is, the SA floats to port 4500 from message 5,
// the IPsec SA uses UDP-encapsulated tunnel mode, pings cross, only UDP
// 4500 arrives from the NAT after Main Mode's first messages, and NAT
// keepalives go out every nat_keepalive.
func TestIKEv1NAT(t *testing.T) {
	requireTUN(t)
	requireTools(t, "ping", "tcpdump", "tshark", "nft")
	t.Run("iked-iked", func(t *testing.T) {
		tp := newNATTopology(t)
		c := startCaptureFilter(t, tp.S, "veth-s", "")
		var a, b *iked
		t.Cleanup(func() {
			if (t.Failed() || verbose()) && a != nil {
				t.Logf("capture at S:\n%s", tail(c.Summary(a.KeyLogPrefs()), 20000))
			}
		})
		s := tp.SAddr.String()
		b = startIked(t, tp.S, userspaceIked(s, charonInnerHost, ikedConn{Name: connName, Local: s, Remote: "%any", LocalID: ikedBID, RemoteID: ikedAID,
			PSK: interopPSK, Version: "ikev1", IKEProposals: []string{v1IKE}, ESPProposals: []string{v1ESP},
			LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}))
		a = startIked(t, tp.I, natIkedV1(tp, ikedBID))
		if out, err := a.Initiate(connName); err != nil {
			t.Fatalf("iked A initiate: %v\n%s", err, out)
		}
		sa, sb := onePair(t, a, b, 10*time.Second)
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
		checkV1WireDecrypts(t, c, a, tp.ROutside.String())
	})
	t.Run("iked-charon", func(t *testing.T) {
		requireCharon(t)
		tp := newNATTopology(t)
		if err := ipCmd("-n", tp.S.name, "addr", "add", charonInnerHost+"/32", "dev", "veth-s"); err != nil {
			t.Fatal(err)
		}
		c := startCaptureFilter(t, tp.S, "veth-s", "")
		var a *iked
		t.Cleanup(func() {
			if (t.Failed() || verbose()) && a != nil {
				t.Logf("capture at S:\n%s", tail(c.Summary(a.KeyLogPrefs()), 20000))
			}
		})
		s := tp.SAddr.String()
		ch := startCharon(t, tp.S, charonOptions{InstallRoutes: true, Conns: []charonConn{{Name: connName, Child: childName, LocalAddr: s, RemoteAddr: "%any",
			LocalID: charonID, RemoteID: ikedAID, PSK: interopPSK, Version: 1, IKEProposals: []string{v1IKE}, ESPProposals: []string{v1ESP},
			LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}}})
		a = startIked(t, tp.I, natIkedV1(tp, charonID))
		if out, err := a.Initiate(connName); err != nil {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		var sa ike.SAInfo
		var cs charonIKESA
		waitFor(t, 10*time.Second, func() string {
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
		if sa.SPIi != spiHex(cs.SPIi, 16) || sa.Children[0].SPIIn != spiHex(cc.SPIOut, 8) || sa.Children[0].SPIOut != spiHex(cc.SPIIn, 8) {
			t.Errorf("SAs differ: iked %s, charon %+v", describeSAs([]ike.SAInfo{sa}), cs)
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
		checkV1WireDecrypts(t, c, a, tp.ROutside.String())
	})
}

// TestIKEv1RacoonNAT: iked behind the masquerading router initiates to
// racoon (nat_traversal on): both sides see the NAT, the SA floats to
// 4500 and the IPsec SAs, UDP-encapsulated, are equal on both sides.
func TestIKEv1RacoonNAT(t *testing.T) {
	requireRacoon(t)
	requireTools(t, "nft")
	tp := newNATTopology(t)
	c := startCaptureFilter(t, tp.S, "veth-s", "")
	i, s := tp.IAddr.String(), tp.SAddr.String()
	ic := ikedConn{Name: connName, Local: i, Remote: s, LocalID: "ip:" + i, RemoteID: "ip:" + s, PSK: interopPSK,
		Version: "ikev1", IKEProposals: []string{v1IKE}, ESPProposals: []string{v1ESP},
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}
	d := startIked(t, tp.I, ikedOptions{Listen: []string{i + ":500", i + ":4500"}, Conns: []ikedConn{ic}})
	t.Cleanup(func() {
		if t.Failed() || verbose() {
			t.Logf("capture at S:\n%s", tail(c.Summary(d.KeyLogPrefs()), 20000))
		}
	})
	ro := racoonOptions{LocalAddr: s, RemoteAddr: tp.ROutside.String(), LocalID: "ip:" + s, RemoteID: "ip:" + i, PSK: interopPSK,
		LocalTS: charonInnerNet, RemoteTS: ikedInnerNet, NATT: true}
	r := startRacoon(t, tp.S, ro)
	if out, err := d.Initiate(connName); err != nil {
		t.Fatalf("iked initiate: %v\n%s", err, out)
	}
	p := &racoonPair{cap: c, iked: d, racoon: r, ic: ic, ro: ro}
	is, _ := checkRacoonEstablished(t, p, "initiator", v1WantIKE, v1WantESP)
	if !is.NATLocal || is.RemoteAddr != s+":4500" {
		t.Errorf("iked SA %+v: want nat_local and the peer on 4500", is)
	}
	if log := r.Log(); !strings.Contains(log, "NAT detected") {
		t.Errorf("racoon did not detect the NAT")
	}
	checkV1WireDecrypts(t, c, d, tp.ROutside.String())
}
