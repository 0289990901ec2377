//go:build linux

package userspace

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/ipsec"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/userspace/esp"
)

// needRoot skips (or, under CI=true, fails) a test that needs root and tools.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	} else if _, err := os.Stat("/dev/net/tun"); err != nil {
		why = "needs /dev/net/tun"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = "needs " + tool
		}
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true)", why)
	}
	t.Skip(why)
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// inNS runs f on a thread switched into the named network namespace.
func inNS(name string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine.
			errc <- fmt.Errorf("restoring the namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func prefixTS(p string) []ipsec.TrafficSelector {
	pp := netip.MustParsePrefix(p)
	typ := ipsec.TSIPv4AddrRange
	if pp.Addr().Is6() {
		typ = ipsec.TSIPv6AddrRange
	}
	return []ipsec.TrafficSelector{{Type: typ, StartAddr: pp.Addr(), EndAddr: lastAddr(pp), EndPort: 0xffff}}
}

func testKey(n int, seed byte) sadb.Key {
	k := make(sadb.Key, n)
	for i := range k {
		k[i] = seed ^ byte(i*7)
	}
	return k
}

// pair returns the outbound SA on one side and the matching inbound SA on the other.
func saPair(spi uint32, src, dst string, lts, rts string, gcm bool) (out, in *sadb.SA) {
	out = &sadb.SA{SPI: spi, Protocol: sadb.ESP, Mode: sadb.Tunnel, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
		EncapSrcPort: 4500, EncapDstPort: 4500, ReqID: spi, LocalTS: prefixTS(lts), RemoteTS: prefixTS(rts)}
	if gcm {
		out.EncrID, out.EncrKeyBits, out.EncrKey, out.ESN = esp.EncrAESGCM16, 256, testKey(36, byte(spi)), true
	} else {
		out.EncrID, out.EncrKeyBits, out.EncrKey = esp.EncrAESCBC, 256, testKey(32, byte(spi))
		out.IntegID, out.IntegKey = esp.IntegHMACSHA2_256_128, testKey(32, byte(spi>>8))
	}
	c := *out
	in = &c
	in.Inbound = true
	in.LocalTS, in.RemoteTS = out.RemoteTS, out.LocalTS
	return out, in
}

// capture is an AF_PACKET socket on one interface, drained after the fact.
type capture struct{ fd, ifindex int }

func openCapture(ifname string) (*capture, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &capture{fd: fd, ifindex: ifi.Index}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// drain returns the frames captured so far.
func (c *capture) drain() [][]byte {
	var frames [][]byte
	for {
		buf := make([]byte, 65536)
		n, _, err := unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			return frames
		}
		frames = append(frames, buf[:n])
	}
}

// inject sends a whole Ethernet frame out of the interface.
func (c *capture) inject(frame []byte) error {
	return unix.Sendto(c.fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: c.ifindex, Halen: 6, Addr: [8]byte(frame[0:8])})
}

// classify returns an Ethernet frame's IPv4 payload protocol and, for
// UDP, its ports and payload.
func classify(frame []byte) (proto byte, sport, dport uint16, udp []byte) {
	if len(frame) < 34 || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 {
		return 0, 0, 0, nil
	}
	ip := frame[14:]
	ihl := int(ip[0]&0xf) * 4
	proto = ip[9]
	if proto == 17 && len(ip) >= ihl+8 {
		return proto, binary.BigEndian.Uint16(ip[ihl:]), binary.BigEndian.Uint16(ip[ihl+2:]), ip[ihl+8:]
	}
	return proto, 0, 0, nil
}

func TestLiveNetns(t *testing.T) {
	needRoot(t, "ip", "ping")
	suffix := fmt.Sprintf("%d", os.Getpid())
	nsA, nsB := "iked-us-a-"+suffix, "iked-us-b-"+suffix
	vA, vB := "usva"+suffix, "usvb"+suffix
	if len(vA) > 15 {
		vA, vB = vA[:15], vB[:15]
	}
	run(t, "ip", "netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	run(t, "ip", "netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	run(t, "ip", "link", "add", vA, "netns", nsA, "type", "veth", "peer", "name", vB, "netns", nsB)
	run(t, "ip", "-n", nsA, "addr", "add", "192.0.2.1/24", "dev", vA)
	run(t, "ip", "-n", nsB, "addr", "add", "192.0.2.2/24", "dev", vB)
	for _, c := range [][]string{{nsA, vA}, {nsB, vB}} {
		run(t, "ip", "-n", c[0], "link", "set", c[1], "up")
		run(t, "ip", "-n", c[0], "link", "set", "lo", "up")
	}

	var a, b *Backend
	var capA *capture
	var probe *net.UDPConn // a plain socket in A, for forged packets
	if err := inNS(nsA, func() (err error) {
		// AcquireInterval a minute: the three pings below raise one
		// acquire however slowly a busy machine sends them.
		if a, err = New(Config{TUN: "ikedA", Listen: netip.MustParseAddrPort("192.0.2.1:4500"), Addresses: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/32")},
			ExpireCheck: 50 * time.Millisecond, AcquireInterval: time.Minute}); err != nil {
			return err
		}
		if capA, err = openCapture(vA); err != nil {
			return err
		}
		probe, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer unix.Close(capA.fd)
	defer probe.Close()
	if err := inNS(nsB, func() (err error) {
		b, err = New(Config{TUN: "ikedB", Listen: netip.MustParseAddrPort("192.0.2.2:4500"), Addresses: []netip.Prefix{netip.MustParsePrefix("10.2.0.1/32")}})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	abOut, abIn := saPair(0x1001, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.2.0.0/24", true)
	baOut, baIn := saPair(0x2002, "192.0.2.2", "192.0.2.1", "10.2.0.0/24", "10.1.0.0/24", false)
	for _, s := range []struct {
		be *Backend
		sa *sadb.SA
	}{{a, abOut}, {b, abIn}, {b, baOut}, {a, baIn}} {
		if err := s.be.AddSA(s.sa); err != nil {
			t.Fatal(err)
		}
	}
	if routes := run(t, "ip", "-n", nsA, "route", "show", "dev", "ikedA"); !strings.Contains(routes, "10.2.0.0/24") {
		t.Fatalf("no route for the remote selector:\n%s", routes)
	}

	for _, c := range []struct{ ns, src, dst string }{{nsA, "10.1.0.1", "10.2.0.1"}, {nsB, "10.2.0.1", "10.1.0.1"}} {
		out, err := exec.Command("ip", "netns", "exec", c.ns, "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", c.src, c.dst).CombinedOutput()
		if err != nil {
			t.Fatalf("ping %s -> %s: %v\n%s\nA: %+v\nB: %+v", c.src, c.dst, err, out, a.Stats(), b.Stats())
		}
		if !strings.Contains(string(out), "5 received") {
			t.Fatalf("ping %s -> %s:\n%s", c.src, c.dst, out)
		}
	}
	// Each side sent 5 requests and 5 replies of 84 octets (IPv4, ICMP, 56 octets of data).
	for _, c := range []struct {
		be   *Backend
		id   sadb.ID
		name string
	}{{a, abOut.ID(), "A out"}, {b, abIn.ID(), "B in"}, {b, baOut.ID(), "B out"}, {a, baIn.ID(), "A in"}} {
		got, err := c.be.Counters(c.id)
		if err != nil || got != (sadb.Counters{Packets: 10, Bytes: 840}) {
			t.Errorf("%s counters %+v (%v), want 10 packets, 840 octets", c.name, got, err)
		}
	}

	// What crossed the wire: ESP-in-UDP, never clear ICMP.
	frames := capA.drain()
	var espFrames [][]byte
	clearICMP := 0
	for _, f := range frames {
		proto, sport, dport, udp := classify(f)
		switch {
		case proto == 1:
			clearICMP++
		case proto == 17 && sport == 4500 && dport == 4500 && len(udp) > 8 && binary.BigEndian.Uint32(udp) != 0:
			if binary.BigEndian.Uint32(udp) == 0x1001 {
				espFrames = append(espFrames, f)
			}
		}
	}
	if clearICMP != 0 || len(espFrames) != 10 {
		t.Fatalf("on the veth: %d clear ICMP frames, %d ESP-in-UDP frames from A (want 0 and 10) of %d", clearICMP, len(espFrames), len(frames))
	}

	// A captured ESP packet sent again is a replay. (Outgoing frames are
	// captured before checksum offload fills in the UDP checksum: clear it,
	// which IPv4 allows.)
	replayed := espFrames[3]
	ihl := int(replayed[14]&0xf) * 4
	replayed[14+ihl+6], replayed[14+ihl+7] = 0, 0
	if err := capA.inject(replayed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replay counted", func() bool { st, _ := b.SAStats(abIn.ID()); return st.Replay == 1 })

	// A fresh packet with a corrupted ICV is dropped as forged, and does not
	// move the window: the intact packet is accepted after it.
	s := a.sas[abOut.ID()]
	inner := icmpEcho(netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1"))
	buf := make([]byte, headRoom+len(inner)+tailRoom)
	copy(buf[headRoom:], inner)
	s.mu.Lock()
	pkt, err := s.esp.Seal(buf, headRoom, len(inner), esp.NextIPv4)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), pkt...)
	bad[len(bad)-1] ^= 0x01
	if _, err := probe.WriteToUDPAddrPort(bad, netip.MustParseAddrPort("192.0.2.2:4500")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "forged packet counted", func() bool { st, _ := b.SAStats(abIn.ID()); return st.Auth == 1 })
	if _, err := probe.WriteToUDPAddrPort(pkt, netip.MustParseAddrPort("192.0.2.2:4500")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "intact packet accepted", func() bool { st, _ := b.SAStats(abIn.ID()); return st.Packets == 11 })

	// IKE shares the socket: messages with the non-ESP marker reach the
	// bind stripped; the bind adds the marker; keepalives are ignored.
	ka := b.Stats().Keepalives
	if _, err := probe.WriteToUDPAddrPort([]byte{0xff}, netip.MustParseAddrPort("192.0.2.2:4500")); err != nil {
		t.Fatal(err)
	}
	if _, err := probe.WriteToUDPAddrPort([]byte{0, 0, 0, 0, 'i', 'k', 'e'}, netip.MustParseAddrPort("192.0.2.2:4500")); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 100)
	n, from, err := b.IKEBind().ReadFrom(msg)
	if err != nil || string(msg[:n]) != "ike" || from != netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(probe.LocalAddr().(*net.UDPAddr).Port)) {
		t.Fatalf("IKE bind read %q from %s, %v", msg[:n], from, err)
	}
	if b.Stats().Keepalives != ka+1 {
		t.Errorf("keepalives %d, want %d", b.Stats().Keepalives, ka+1)
	}
	if err := b.IKEBind().WriteTo([]byte("reply"), from); err != nil {
		t.Fatal(err)
	}
	_ = probe.SetReadDeadline(time.Now().Add(60 * time.Second)) // a hang guard
	n, _, err = probe.ReadFromUDPAddrPort(msg)
	if err != nil || string(msg[:n]) != "\x00\x00\x00\x00reply" {
		t.Fatalf("IKE bind wrote %q, %v", msg[:n], err)
	}

	// A Protect policy without SA holds the packets and raises one Acquire
	// (one per policy and destination per AcquireInterval).
	pol := &sadb.Policy{Selector: sadb.Selector{Src: netip.MustParsePrefix("10.1.0.0/24"), Dst: netip.MustParsePrefix("10.3.0.0/24")},
		Direction: sadb.Out, Action: sadb.Protect, Level: sadb.Required, ReqID: 77, TunnelDst: netip.MustParseAddr("192.0.2.2")}
	if err := a.AddPolicy(pol); err != nil {
		t.Fatal(err)
	}
	pinger := exec.Command("ip", "netns", "exec", nsA, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.3.0.1")
	if err := pinger.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-a.Events():
		if ev.Kind != sadb.Acquire || ev.ReqID != 77 || ev.Policy != pol.ID() || ev.Packet.Dst != netip.MustParsePrefix("10.3.0.1/32") || ev.Packet.Proto != 1 {
			t.Fatalf("event %+v", ev)
		}
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatal("no acquire")
	}
	// The SA the acquire asked for arrives as soon as the three pings are
	// held (they are held for 3 s at most, a product constant): they leave
	// through it, without being sent again.
	waitFor(t, "the 3 pings held", func() bool { return a.Stats().Held == 3 })
	acqOut, acqIn := saPair(0x7007, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.3.0.0/24", true)
	acqOut.ReqID, acqIn.ReqID = 77, 77
	if err := b.AddSA(acqIn); err != nil {
		t.Fatal(err)
	}
	if err := a.AddSA(acqOut); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "held pings released through the new SA", func() bool {
		st, _ := b.SAStats(acqIn.ID())
		return a.Stats().Released == 3 && st.Packets == 3
	})
	_ = pinger.Wait() // no answer comes: 10.3.0.1 is nobody's
	if st := a.Stats(); st.Acquires != 1 || st.Held != 3 || st.Released != 3 || st.HeldExpired != 0 {
		t.Errorf("acquires %d (want 1), held %d (want the 3 pings), released %d (want 3), expired %d", st.Acquires, st.Held, st.Released, st.HeldExpired)
	}

	// Lifetimes: the soft byte limit is reported, then the hard one
	// removes the SA and says so. Each limit is crossed only once the
	// previous event came: the expiry check runs every 50 ms, and a busy
	// machine may run it late, after more than one limit was crossed.
	hardOut, _ := saPair(0x3003, "192.0.2.1", "192.0.2.2", "10.1.0.0/24", "10.4.0.0/24", true)
	hardOut.Lifetime = sadb.Lifetime{SoftBytes: 100, HardBytes: 200}
	if err := a.AddSA(hardOut); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		pings string // of 84 octets: 168 crosses the soft limit, 252 the hard
		want  sadb.EventKind
	}{{"2", sadb.SoftExpire}, {"1", sadb.HardExpire}} {
		_ = exec.Command("ip", "netns", "exec", nsA, "ping", "-c", step.pings, "-i", "0.2", "-W", "1", "-I", "10.1.0.1", "10.4.0.1").Run()
		select {
		case ev := <-a.Events():
			if ev.SA != hardOut.ID() || ev.Kind != step.want {
				t.Fatalf("event %+v, want %v of SA %v", ev, step.want, hardOut.ID())
			}
		case <-time.After(60 * time.Second): // a hang guard
			t.Fatalf("no %v event", step.want)
		}
	}
	if _, err := a.Counters(hardOut.ID()); err == nil {
		t.Fatal("SA still installed after its hard expiry")
	}
	if routes := run(t, "ip", "-n", nsA, "route", "show", "dev", "ikedA"); strings.Contains(routes, "10.4.0.0/24") {
		t.Fatalf("route of the expired SA remains:\n%s", routes)
	}
	// Optional throughput measurement: IKED_USERSPACE_IPERF=1 and iperf3.
	if os.Getenv("IKED_USERSPACE_IPERF") != "" {
		if _, err := exec.LookPath("iperf3"); err == nil {
			srv := exec.Command("ip", "netns", "exec", nsB, "iperf3", "-s", "-1", "-B", "10.2.0.1")
			if err := srv.Start(); err == nil {
				time.Sleep(300 * time.Millisecond)
				out, err := exec.Command("ip", "netns", "exec", nsA, "iperf3", "-c", "10.2.0.1", "-B", "10.1.0.1", "-t", "5", "-f", "m").CombinedOutput()
				t.Logf("iperf3 (A->B AES-GCM-256 ESN, B->A acks AES-CBC+SHA256): %v\n%s", err, out)
				_ = srv.Wait()
			}
		}
	}
	t.Logf("A: %+v", a.Stats())
	t.Logf("B: %+v", b.Stats())
}

// waitFor polls cond until it holds; the deadline is a hang guard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting: %s", what)
}

// icmpEcho builds an IPv4 ICMP echo request.
func icmpEcho(src, dst netip.Addr) []byte {
	p := make([]byte, 28)
	p[0], p[8], p[9] = 0x45, 64, 1
	binary.BigEndian.PutUint16(p[2:], 28)
	copy(p[12:16], src.AsSlice())
	copy(p[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(p[10:], checksum(p[:20]))
	p[20] = 8
	binary.BigEndian.PutUint16(p[22:], checksum(p[20:]))
	return p
}

func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
