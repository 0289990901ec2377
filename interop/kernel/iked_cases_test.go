package kernel

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// Identities of the two iked.
const (
	idA = "fqdn:a.kernel.test"
	idB = "fqdn:b.kernel.test"
)

// listenOn is the IKE listen list of an address: ports 500 and 4500.
func listenOn(a netip.Addr) []string {
	return []string{net.JoinHostPort(a.String(), "500"), net.JoinHostPort(a.String(), "4500")}
}

// ikedPair starts iked in both namespaces of p with the connection c (as
// A sees it; B gets the mirror image, responding to any address) and
// returns them once A's initiation established the Child SA.
func ikedPair(t *testing.T, p *pair, c conn) (a, b *iked) {
	t.Helper()
	if c.Name == "" {
		c.Name = "k"
	}
	ca := c
	ca.Local, ca.Remote, ca.LocalID, ca.RemoteID = p.AOut.String(), p.BOut.String(), idA, idB
	cb := c
	cb.Local, cb.Remote, cb.LocalID, cb.RemoteID = p.BOut.String(), "%any", idB, idA
	cb.LocalTS, cb.RemoteTS = c.RemoteTS, c.LocalTS
	b = startIked(t, p.B, "B", ikedOptions{Listen: listenOn(p.BOut), Conns: []conn{cb}})
	a = startIked(t, p.A, "A", ikedOptions{Listen: listenOn(p.AOut), Conns: []conn{ca}})
	a.Initiate(c.Name)
	a.established(1)
	b.established(1)
	return a, b
}

// childOf returns d's only Child SA.
func childOf(t testing.TB, d *iked) ike.ChildInfo {
	t.Helper()
	sas := d.SAs()
	if len(sas) != 1 || len(sas[0].Children) != 1 {
		t.Fatalf("iked %s: want one IKE SA with one Child SA: %s", d.name, describe(sas))
	}
	return sas[0].Children[0]
}

// flow is what one direction of a Child SA carried.
type flow struct{ packets, bytes uint64 }

// checkCarried asserts that the kernels of both sides and both iked agree
// on what the Child SA between a and b carried: the SPIs pair up, each
// direction's packets and bytes are the same in the sender's kernel, the
// receiver's kernel and both iked's ikectl sas --json, and the packets are
// those sent (aToB from A, bToA from B). It returns the kernel's SAs of
// A (out, in).
func checkCarried(t *testing.T, p *pair, a, b *iked, aToB, bToA uint64) (out, in xfrmState) {
	t.Helper()
	ca, cb := childOf(t, a), childOf(t, b)
	if ca.SPIOut != cb.SPIIn || ca.SPIIn != cb.SPIOut {
		t.Fatalf("SPIs do not pair: A in %s out %s, B in %s out %s", ca.SPIIn, ca.SPIOut, cb.SPIIn, cb.SPIOut)
	}
	aOut, aIn := stateBySPI(t, p.A, ca.SPIOut), stateBySPI(t, p.A, ca.SPIIn)
	bOut, bIn := stateBySPI(t, p.B, cb.SPIOut), stateBySPI(t, p.B, cb.SPIIn)
	t.Logf("kernel A: out %v; in %v", aOut, aIn)
	t.Logf("kernel B: out %v; in %v", bOut, bIn)
	for _, d := range []struct {
		name                string
		sent                uint64
		sender, receiver    xfrmState
		ikedSent, ikedRecvd flow
	}{
		{"A->B", aToB, aOut, bIn, flow{ca.PacketsOut, ca.BytesOut}, flow{cb.PacketsIn, cb.BytesIn}},
		{"B->A", bToA, bOut, aIn, flow{cb.PacketsOut, cb.BytesOut}, flow{ca.PacketsIn, ca.BytesIn}},
	} {
		kSent, kRecvd := flow{d.sender.Packets, d.sender.Bytes}, flow{d.receiver.Packets, d.receiver.Bytes}
		if kSent.packets != d.sent || kRecvd != kSent || d.ikedSent != kSent || d.ikedRecvd != kRecvd {
			t.Errorf("%s: %d packets sent; kernel counted %+v out, %+v in; iked reports %+v out, %+v in",
				d.name, d.sent, kSent, kRecvd, d.ikedSent, d.ikedRecvd)
		}
		if d.receiver.Replay+d.receiver.ReplayWin+d.receiver.Failed != 0 {
			t.Errorf("%s: the receiver dropped packets: %v", d.name, d.receiver)
		}
	}
	return aOut, aIn
}

// carried returns the packets A's kernel counts on the Child SA, out
// (A to B) and in.
func carried(t testing.TB, p *pair, a *iked) (aToB, bToA uint64) {
	t.Helper()
	c := childOf(t, a)
	return stateBySPI(t, p.A, c.SPIOut).Packets, stateBySPI(t, p.A, c.SPIIn).Packets
}

// pingBoth pings n times each way between a and b (from and to the given
// addresses) and requires every echo answered.
func pingBoth(t *testing.T, p *pair, fromA, fromB netip.Addr, n int) {
	t.Helper()
	mustPing(t, p.A, fromA, fromB, n)
	mustPing(t, p.B, fromB, fromA, n)
}

// testTunnelGCM: tunnel mode between the inner subnets, AES-GCM-256; the
// kernel's counters match iked's and what was sent.
func testTunnelGCM(t *testing.T) {
	p := newPair(t, false)
	a, b := ikedPair(t, p, conn{ESP: []string{"aes256gcm16"}, LocalTS: []string{p.ANet.String()}, RemoteTS: []string{p.BNet.String()}})
	pingBoth(t, p, p.AIn, p.BIn, 5)
	out, _ := checkCarried(t, p, a, b, 10, 10)
	if out.Mode != "tunnel" || !hasAlg(out, "aead rfc4106(gcm(aes))") || out.Src != p.AOut.String() || out.Dst != p.BOut.String() {
		t.Errorf("A's outbound SA: %s", out.Raw)
	}
	// 10 ICMP echo packets of 84 octets (56 of data) each way: the kernel
	// counts inner octets.
	if out.Bytes != 10*84 {
		t.Errorf("A's outbound SA carried %d octets, want %d", out.Bytes, 10*84)
	}
	wantPolicies(t, p.A, p.ANet.String()+" dst "+p.BNet.String(), "dir out", "tmpl src "+p.AOut.String()+" dst "+p.BOut.String())
	a.stop()
	b.stop()
	wantNothingLeft(t, p.A, p.B)
}

// wantNothingLeft: once iked stopped, the namespaces' kernels hold none of
// its SAs or policies. Larval states (SPI 0), which the kernel makes for
// an acquire and lets expire (net.core.xfrm_acq_expires, 30 s), are not
// iked's to remove.
func wantNothingLeft(t *testing.T, nss ...*netns) {
	t.Helper()
	for _, ns := range nss {
		var left []string
		for _, s := range states(t, ns) {
			if s.SPI != "00000000" {
				left = append(left, s.Raw)
			}
		}
		if pol := ns.ip(t, "xfrm", "policy"); strings.TrimSpace(pol) != "" {
			left = append(left, pol)
		}
		if len(left) > 0 {
			t.Errorf("after iked stopped %s still holds:\n%s", ns.name, strings.Join(left, ""))
		}
	}
}

// testTransportCBC: transport mode between the two hosts' own (IKE)
// addresses, AES-CBC-256 with HMAC-SHA2-256-128: IKE keeps flowing
// outside the SA (its sockets bypass the policies).
func testTransportCBC(t *testing.T) {
	p := newPair(t, false)
	a, b := ikedPair(t, p, conn{ESP: []string{"aes256-sha256"}, Mode: "transport"})
	pingBoth(t, p, p.AOut, p.BOut, 4)
	out, _ := checkCarried(t, p, a, b, 8, 8)
	if out.Mode != "transport" || !hasAlg(out, "enc cbc(aes)") || !hasAlg(out, "auth-trunc hmac(sha256)") {
		t.Errorf("A's outbound SA: %s", out.Raw)
	}
	// IKE still works beside the SA: a liveness check round trip.
	sa := a.SAs()[0]
	if _, err := a.ikectl(30*time.Second, "rekey", sa.ID); err != nil {
		t.Fatalf("rekeying the IKE SA over the transport-mode policies: %v", err)
	}
	waitFor(t, 30*time.Second, "IKE SA rekeyed", func() string {
		sas := a.SAs()
		if len(sas) == 1 && sas[0].SPIi != sa.SPIi && sas[0].State == "established" {
			return ""
		}
		return describe(sas)
	})
	mustPing(t, p.A, p.AOut, p.BOut, 2)
}

func hasAlg(s xfrmState, alg string) bool {
	for _, a := range s.Algs {
		if strings.HasPrefix(a, alg) {
			return true
		}
	}
	return false
}

// wantPolicies asserts that `ip xfrm policy` in ns has a policy whose text
// contains every fragment.
func wantPolicies(t *testing.T, ns *netns, fragments ...string) {
	t.Helper()
	out := ns.ip(t, "xfrm", "policy")
	for _, block := range strings.Split("\n"+out, "\nsrc ")[1:] {
		flat := "src " + strings.Join(strings.Fields(block), " ")
		ok := true
		for _, f := range fragments {
			if !strings.Contains(flat, f) {
				ok = false
				break
			}
		}
		if ok {
			return
		}
	}
	t.Errorf("no policy in %s with %q:\n%s", ns.name, fragments, out)
}

// testChaCha: tunnel mode with ChaCha20-Poly1305 (rfc7539esp in the
// kernel).
func testChaCha(t *testing.T) {
	p := newPair(t, false)
	a, b := ikedPair(t, p, tunnelConn(p, "chacha20poly1305"))
	pingBoth(t, p, p.AIn, p.BIn, 3)
	out, _ := checkCarried(t, p, a, b, 6, 6)
	if !hasAlg(out, "aead rfc7539esp(chacha20,poly1305)") {
		t.Errorf("A's outbound SA: %s", out.Raw)
	}
}

// testIPv6: tunnel mode over IPv6 between IPv6 subnets, and transport
// mode between the IPv6 hosts.
func testIPv6(t *testing.T) {
	t.Run("tunnel", func(t *testing.T) {
		p := newPair(t, true)
		a, b := ikedPair(t, p, tunnelConn(p, "aes128gcm16"))
		pingBoth(t, p, p.AIn, p.BIn, 3)
		out, _ := checkCarried(t, p, a, b, 6, 6)
		if out.Src != p.AOut.String() || out.Dst != p.BOut.String() || out.Mode != "tunnel" || out.Bytes != 6*104 {
			t.Errorf("A's outbound SA (want 6 ICMPv6 echo packets of 104 octets): %s", out.Raw)
		}
	})
	t.Run("transport", func(t *testing.T) {
		p := newPair(t, true)
		a, b := ikedPair(t, p, conn{ESP: []string{"aes256-sha384"}, Mode: "transport"})
		pingBoth(t, p, p.AOut, p.BOut, 3)
		out, _ := checkCarried(t, p, a, b, 6, 6)
		if out.Mode != "transport" || !hasAlg(out, "auth-trunc hmac(sha384)") {
			t.Errorf("A's outbound SA: %s", out.Raw)
		}
	})
}

// testKeyLog: a capture taken in the guest during an xfrm-backend session
// is decrypted with iked's key log (docs/keylog.md): tshark reads both
// identities inside IKE_AUTH and every ICMP echo inside ESP.
func testKeyLog(t *testing.T) {
	p := newPair(t, false)
	w := startWire(t, p)
	a, _ := ikedPair(t, p, tunnelConn(p, "aes256gcm16"))
	pingBoth(t, p, p.AIn, p.BIn, 3)
	c := w.Stop()
	prefs := a.KeyLogPrefs()
	if len(prefs) < 3 {
		t.Fatalf("key log with %d lines, want the IKE SA and two ESP SAs", len(prefs))
	}
	// One pass of tshark (slow to start in the guest) over every frame:
	// the IKE identities it decrypts, and for each ICMP packet whether it
	// came out of ESP. tshark prints a field of the outer and of the
	// decrypted inner header comma-separated: the inner one is last.
	out, err := c.tshark(append(prefs, "esp.enable_encryption_decode:TRUE"), "-T", "fields",
		"-e", "isakmp.id.data.fqdn", "-e", "esp.spi", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 5 {
			continue
		}
		for _, id := range strings.Split(f[0], ",") {
			if id != "" {
				ids[id] = true
			}
		}
		if f[4] == "" {
			continue
		}
		last := func(s string) string { v := strings.Split(s, ","); return v[len(v)-1] }
		key := last(f[2]) + " " + last(f[3]) + " " + f[4]
		if f[1] == "" {
			t.Errorf("ICMP in clear on the link: %s", l)
			continue
		}
		count[key]++
	}
	for _, want := range []string{strings.TrimPrefix(idA, "fqdn:"), strings.TrimPrefix(idB, "fqdn:")} {
		if !ids[want] {
			t.Errorf("decrypted IKE_AUTH lacks the identity %s; tshark saw %v", want, ids)
		}
	}
	t.Logf("ICMP decrypted from ESP (inner source, destination, type): %v", count)
	req, rep := p.AIn.String()+" "+p.BIn.String(), p.BIn.String()+" "+p.AIn.String()
	// 3 pings from A and 3 from B: 6 requests and 6 replies.
	if count[req+" 8"] != 3 || count[rep+" 0"] != 3 || count[rep+" 8"] != 3 || count[req+" 0"] != 3 || len(count) != 4 {
		t.Errorf("decrypted ICMP %v, want 3 echo requests and 3 replies each way", count)
	}
}
