package kernel

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// testNATT: iked I behind a masquerading router initiates to iked S: both
// detect the NAT, float to port 4500, and the kernels carry ESP in UDP
// (XFRMA_ENCAP on the SAs, UDP_ENCAP_ESPINUDP on the sockets) both ways;
// at S nothing but UDP arrives from the NAT, and no plain ESP.
func testNATT(t *testing.T) {
	tp := newNATTopology(t)
	c := startCapture(t, tp.S, "vs")
	s := startIked(t, tp.S, "S", ikedOptions{Listen: listenOn(tp.SAddr), Conns: []conn{{Name: "k", Local: tp.SAddr.String(), Remote: "%any",
		LocalID: idB, RemoteID: idA, ESP: []string{"aes256gcm16"}, LocalTS: []string{"10.2.0.0/24"}, RemoteTS: []string{"10.1.0.0/24"}}}})
	i := startIked(t, tp.I, "I", ikedOptions{Listen: listenOn(tp.IAddr), Conns: []conn{{Name: "k", Local: tp.IAddr.String(), Remote: tp.SAddr.String(),
		LocalID: idA, RemoteID: idB, ESP: []string{"aes256gcm16"}, LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"}}}})
	i.Initiate("k")
	si, ss := i.established(1), s.established(1)
	if !si.NATLocal || !ss.NATRemote || ss.NATLocal {
		t.Errorf("NAT detection: I nat_local %v (want true), S nat_remote %v (want true), nat_local %v (want false)", si.NATLocal, ss.NATRemote, ss.NATLocal)
	}
	if !strings.HasSuffix(si.RemoteAddr, ":4500") || !strings.HasPrefix(ss.RemoteAddr, tp.ROutside.String()+":") {
		t.Errorf("addresses: I %s === %s, S %s === %s; want I to S on 4500, S seeing the NAT %s", si.LocalAddr, si.RemoteAddr, ss.LocalAddr, ss.RemoteAddr, tp.ROutside)
	}
	mustPing(t, tp.I, tp.IIn, tp.SIn, 4)
	mustPing(t, tp.S, tp.SIn, tp.IIn, 4)
	ci, cs := si.Children[0], ss.Children[0]
	iOut, sOut := stateBySPI(t, tp.I, ci.SPIOut), stateBySPI(t, tp.S, cs.SPIOut)
	t.Logf("kernel I: %s\nkernel S: %s", iOut.Raw, sOut.Raw)
	natPort := strings.TrimPrefix(ss.RemoteAddr, tp.ROutside.String()+":")
	if !strings.HasPrefix(iOut.Encap, "espinudp sport 4500 dport 4500 ") || !strings.HasPrefix(sOut.Encap, "espinudp sport 4500 dport "+natPort+" ") {
		t.Errorf("encapsulation: I's outbound SA %q, S's %q; want ESP in UDP 4500, S's to the NAT's port %s", iOut.Encap, sOut.Encap, natPort)
	}
	for _, x := range []struct {
		d    *iked
		ns   *netns
		want uint64
	}{{i, tp.I, 8}, {s, tp.S, 8}} {
		ch := x.d.SAs()[0].Children[0]
		out, in := stateBySPI(t, x.ns, ch.SPIOut), stateBySPI(t, x.ns, ch.SPIIn)
		if out.Packets != x.want || in.Packets != x.want || ch.PacketsOut != out.Packets || ch.PacketsIn != in.Packets {
			t.Errorf("%s: kernel %d out / %d in, iked %d out / %d in; want %d each way", x.d.name, out.Packets, in.Packets, ch.PacketsOut, ch.PacketsIn, x.want)
		}
	}
	c.Stop()
	frames, err := readPcap(c.path)
	if err != nil {
		t.Fatal(err)
	}
	var plainESP, udpESP int
	for _, f := range frames {
		if _, _, ok := f.esp(); ok {
			plainESP++
		}
		if isESPInUDP(f.data, tp.ROutside.String()) {
			udpESP++
		}
	}
	t.Logf("at S: %d frames, %d ESP in UDP from the NAT, %d plain ESP", len(frames), udpESP, plainESP)
	if plainESP != 0 || udpESP < 8 {
		t.Errorf("at S: %d plain ESP frames (want 0), %d ESP-in-UDP from the NAT (want >= 8)", plainESP, udpESP)
	}
}

// isESPInUDP reports whether an Ethernet frame is IPv4 UDP to port 4500
// from src carrying ESP (not IKE's non-ESP marker, not a keepalive).
func isESPInUDP(d []byte, src string) bool {
	if len(d) < 14+20+8+8 || d[12] != 0x08 || d[13] != 0 {
		return false
	}
	ip := d[14:]
	h := int(ip[0]&0x0f) * 4
	if ip[9] != 17 || len(ip) < h+16 || net.IP(ip[12:16]).String() != src {
		return false
	}
	udp := ip[h:]
	if int(udp[2])<<8|int(udp[3]) != 4500 {
		return false
	}
	payload := udp[8:]
	return len(payload) >= 8 && (payload[0]|payload[1]|payload[2]|payload[3]) != 0
}

// policyPSK is the assigned policy's authentication method.
const policyYAML = `authentication:
  lab: {method: psk, secret: "kernel data plane lab secret"}
policy:
  assign: secure-server-require-security
  retry_after: 5s
`

// testPolicyAcquire: both hosts are assigned the Windows-style "Secure
// Server (Require Security)" policy and have no connections. The kernel
// enforces it with XFRM policies (policy/xfrmpolicy): A's first TCP SYN to
// B meets a policy that requires ESP and has no SA, the kernel raises an
// acquire, iked negotiates a transport-mode Child SA, and the connection
// completes through it; on the link no TCP travels in clear.
func testPolicyAcquire(t *testing.T) {
	p := newPair(t, false)
	c := startCapture(t, p.B, "vb")
	b := startIked(t, p.B, "B", ikedOptions{Listen: listenOn(p.BOut), Extra: policyYAML})
	a := startIked(t, p.A, "A", ikedOptions{Listen: listenOn(p.AOut), Extra: policyYAML})
	wantPolicies(t, p.A, "dir out", "proto esp", "mode transport")
	echo := echoServer(t, p.B, p.BOut.String()+":8080")
	start := time.Now()
	var reply string
	err := p.A.do(func() error {
		// The SYN waits for the SA: TCP retransmits it (1 s, 3 s, 7 s ...).
		conn, err := net.DialTimeout("tcp", echo, 60*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := io.WriteString(conn, "hello through the kernel\n"); err != nil {
			return err
		}
		reply, err = bufio.NewReader(conn).ReadString('\n')
		return err
	})
	if err != nil {
		t.Fatalf("TCP to B through the policy: %v", err)
	}
	t.Logf("TCP connected and echoed after %v", time.Since(start).Round(time.Millisecond))
	if reply != "hello through the kernel\n" {
		t.Errorf("echo %q", reply)
	}
	sa := a.established(1)
	b.established(1)
	ch := sa.Children[0]
	if ch.Mode != "transport" {
		t.Errorf("the policy's Child SA: %s", describe(a.SAs()))
	}
	in := stateBySPI(t, p.B, ch.SPIOut)
	if in.Packets == 0 || in.Mode != "transport" {
		t.Errorf("B's inbound SA carried nothing: %s", in.Raw)
	}
	if !strings.Contains(a.Log(), "acquire") && !strings.Contains(a.Log(), "Acquire") {
		t.Errorf("A logged no acquire")
	}
	clear, err := c.tshark(nil, "-Y", "tcp.port == 8080", "-T", "fields", "-e", "frame.number")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(clear) != "" {
		t.Errorf("TCP to port 8080 in clear on the link: frames %s", strings.Fields(clear))
	}
	a.stop()
	b.stop()
	wantNothingLeft(t, p.A, p.B)
}

// echoServer listens on addr in ns and echoes one line per connection;
// t.Cleanup closes it. It returns the address.
func echoServer(t testing.TB, ns *netns, addr string) string {
	t.Helper()
	var ln net.Listener
	if err := ns.do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns.name, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				l, err := bufio.NewReader(c).ReadString('\n')
				if err == nil {
					fmt.Fprint(c, l)
				}
			}()
		}
	}()
	return ln.Addr().String()
}
