package kernel

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netns is a network namespace a guest test created.
type netns struct {
	name string
}

// command runs argv inside the namespace (ip netns exec, which also gives
// it a private mount namespace).
func (ns *netns) command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name}, argv...)...)
}

// run runs argv in the namespace and returns its output; failure ends the
// test.
func (ns *netns) run(t testing.TB, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := ns.command(ctx, argv...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", ns.name, strings.Join(argv, " "), err, out)
	}
	return string(out)
}

// ip runs ip(8) on the namespace (ip -n).
func (ns *netns) ip(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns.name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v\n%s", ns.name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// do runs fn on an OS thread switched into the namespace: sockets fn
// opens belong to the namespace for their whole life. The thread returns
// to its namespace afterwards (it may be the process's main thread, whose
// namespace is what ip netns pids looks at), or, if that fails, is never
// given back to other goroutines.
func (ns *netns) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		f, err := os.Open("/run/netns/" + ns.name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.name, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

var nsSeq atomic.Int32

// newNetns creates a namespace with its loopback up; t.Cleanup kills what
// still runs in it (by PID) and deletes it.
func newNetns(t testing.TB, role string) *netns {
	t.Helper()
	ns := &netns{name: fmt.Sprintf("k-%s-%d", role, nsSeq.Add(1))}
	if out, err := exec.Command("ip", "netns", "add", ns.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns.name, err, out)
	}
	t.Cleanup(func() {
		out, _ := exec.Command("ip", "netns", "pids", ns.name).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				t.Logf("namespace %s: killing leftover process %d", ns.name, pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns.name, err, out)
		}
	})
	ns.ip(t, "link", "set", "lo", "up")
	return ns
}

// pair is two namespaces, A and B, joined by a veth pair (va in A, vb in
// B) holding the outer (IKE) addresses. Each side also has an inner
// address on its loopback, inside the subnet it protects in tunnel mode,
// with a route to the other side's inner subnet through the veth whose
// source is the inner address.
type pair struct {
	A, B       *netns
	AOut, BOut netip.Addr // outer addresses
	AIn, BIn   netip.Addr // inner addresses
	ANet, BNet netip.Prefix
	v6         bool
}

// newPair builds a pair: IPv4 outer 10.99.0.1 and .2, inner 10.1.0.1 in
// 10.1.0.0/24 and 10.2.0.1 in 10.2.0.0/24; with v6, fd00:99::1 and ::2,
// inner fd00:1::1 and fd00:2::1 in /64s.
func newPair(t testing.TB, v6 bool) *pair {
	t.Helper()
	p := &pair{A: newNetns(t, "a"), B: newNetns(t, "b"), v6: v6}
	if v6 {
		p.AOut, p.BOut = netip.MustParseAddr("fd00:99::1"), netip.MustParseAddr("fd00:99::2")
		p.AIn, p.BIn = netip.MustParseAddr("fd00:1::1"), netip.MustParseAddr("fd00:2::1")
		p.ANet, p.BNet = netip.MustParsePrefix("fd00:1::/64"), netip.MustParsePrefix("fd00:2::/64")
	} else {
		p.AOut, p.BOut = netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2")
		p.AIn, p.BIn = netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.2.0.1")
		p.ANet, p.BNet = netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("10.2.0.0/24")
	}
	p.A.ip(t, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", p.B.name)
	outBits, inBits := 24, 32
	var nodad []string
	if v6 {
		outBits, inBits = 64, 128
		nodad = []string{"nodad"} // usable at once, no duplicate address detection
	}
	for _, s := range []struct {
		ns      *netns
		dev     string
		out, in netip.Addr
	}{{p.A, "va", p.AOut, p.AIn}, {p.B, "vb", p.BOut, p.BIn}} {
		s.ns.ip(t, append([]string{"addr", "add", fmt.Sprintf("%s/%d", s.out, outBits), "dev", s.dev}, nodad...)...)
		s.ns.ip(t, append([]string{"addr", "add", fmt.Sprintf("%s/%d", s.in, inBits), "dev", "lo"}, nodad...)...)
		s.ns.ip(t, "link", "set", s.dev, "up")
	}
	waitUp(t, p.A, "va")
	waitUp(t, p.B, "vb")
	p.A.ip(t, "route", "add", p.BNet.String(), "via", p.BOut.String(), "src", p.AIn.String())
	p.B.ip(t, "route", "add", p.ANet.String(), "via", p.AOut.String(), "src", p.BIn.String())
	return p
}

// waitUp waits for a veth end to report operstate UP (both ends are up).
func waitUp(t testing.TB, ns *netns, dev string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := exec.Command("ip", "-n", ns.name, "-o", "link", "show", dev).Output()
		if err == nil && bytes.Contains(out, []byte("state UP")) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s is not up: %s", dev, ns.name, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// natTopology is three namespaces: I behind a NAT router R, and S. I
// (10.98.0.1) reaches S (10.99.0.2) only through R, which masquerades with
// nftables what leaves towards S: S sees I as R's outside address
// 10.99.0.1. I and S carry inner addresses as a pair does.
type natTopology struct {
	I, R, S  *netns
	IAddr    netip.Addr
	ROutside netip.Addr
	SAddr    netip.Addr
	IIn, SIn netip.Addr
}

func newNATTopology(t testing.TB) *natTopology {
	t.Helper()
	tp := &natTopology{I: newNetns(t, "i"), R: newNetns(t, "r"), S: newNetns(t, "s"),
		IAddr: netip.MustParseAddr("10.98.0.1"), ROutside: netip.MustParseAddr("10.99.0.1"), SAddr: netip.MustParseAddr("10.99.0.2"),
		IIn: netip.MustParseAddr("10.1.0.1"), SIn: netip.MustParseAddr("10.2.0.1")}
	tp.I.ip(t, "link", "add", "vi", "type", "veth", "peer", "name", "vri", "netns", tp.R.name)
	tp.R.ip(t, "link", "add", "vro", "type", "veth", "peer", "name", "vs", "netns", tp.S.name)
	tp.I.ip(t, "addr", "add", "10.98.0.1/24", "dev", "vi")
	tp.I.ip(t, "addr", "add", "10.1.0.1/32", "dev", "lo")
	tp.R.ip(t, "addr", "add", "10.98.0.254/24", "dev", "vri")
	tp.R.ip(t, "addr", "add", "10.99.0.1/24", "dev", "vro")
	tp.S.ip(t, "addr", "add", "10.99.0.2/24", "dev", "vs")
	tp.S.ip(t, "addr", "add", "10.2.0.1/32", "dev", "lo")
	for _, l := range []struct {
		ns  *netns
		dev string
	}{{tp.I, "vi"}, {tp.R, "vri"}, {tp.R, "vro"}, {tp.S, "vs"}} {
		l.ns.ip(t, "link", "set", l.dev, "up")
	}
	for _, l := range []struct {
		ns  *netns
		dev string
	}{{tp.I, "vi"}, {tp.R, "vri"}, {tp.R, "vro"}, {tp.S, "vs"}} {
		waitUp(t, l.ns, l.dev)
	}
	tp.I.ip(t, "route", "add", "default", "via", "10.98.0.254", "src", "10.98.0.1")
	tp.I.ip(t, "route", "add", "10.2.0.0/24", "via", "10.98.0.254", "src", "10.1.0.1")
	tp.S.ip(t, "route", "add", "10.1.0.0/24", "via", "10.99.0.1", "src", "10.2.0.1")
	tp.R.run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	tp.R.run(t, "nft", "add table ip nat")
	tp.R.run(t, "nft", "add chain ip nat post { type nat hook postrouting priority 100 ; }")
	tp.R.run(t, "nft", `add rule ip nat post oifname "vro" counter masquerade`)
	return tp
}

// ping sends count echo requests from src to dst in ns, 0.2 s apart,
// and returns how many were answered.
func ping(t testing.TB, ns *netns, src, dst netip.Addr, count int) int {
	t.Helper()
	return pingN(t, ns, src, dst, count, "0.2")
}

// pingN is ping with an interval (ping -i, seconds).
func pingN(t testing.TB, ns *netns, src, dst netip.Addr, count int, interval string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(count+30)*time.Second)
	defer cancel()
	out, _ := ns.command(ctx, "ping", "-n", "-c", strconv.Itoa(count), "-i", interval, "-W", "3", "-I", src.String(), dst.String()).CombinedOutput()
	var sent, recv int
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "packets transmitted") {
			fmt.Sscanf(l, "%d packets transmitted, %d received", &sent, &recv)
		}
	}
	if sent != count {
		t.Fatalf("ping %s -> %s in %s: %d sent, want %d:\n%s", src, dst, ns.name, sent, count, out)
	}
	return recv
}

// mustPing pings and fails the test unless every echo was answered.
func mustPing(t testing.TB, ns *netns, src, dst netip.Addr, count int) {
	t.Helper()
	if got := ping(t, ns, src, dst, count); got != count {
		t.Fatalf("ping %s -> %s: %d of %d answered", src, dst, got, count)
	}
}

// sink counts the UDP datagrams it receives.
type sink struct {
	addr netip.AddrPort
	n    atomic.Int64
}

func (s *sink) count() int { return int(s.n.Load()) }

// udpSink listens on addr in ns and counts datagrams; t.Cleanup closes it.
func udpSink(t testing.TB, ns *netns, addr netip.AddrPort) *sink {
	t.Helper()
	s := &sink{addr: addr}
	var c *net.UDPConn
	if err := ns.do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	}); err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns.name, err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := c.ReadFromUDP(buf); err != nil {
				return
			}
			s.n.Add(1)
		}
	}()
	return s
}

// sendUDP sends n datagrams of size octets from src to dst in ns, gap
// apart.
func sendUDP(t testing.TB, ns *netns, src netip.Addr, dst netip.AddrPort, n, size int, gap time.Duration) {
	t.Helper()
	err := ns.do(func() error {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		payload := make([]byte, size)
		for i := range n {
			if _, err := c.Write(payload); err != nil {
				return fmt.Errorf("datagram %d: %w", i, err)
			}
			time.Sleep(gap)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending UDP to %s: %v", dst, err)
	}
}

// xfrmStat reads a counter of /proc/net/xfrm_stat in ns.
func xfrmStat(t testing.TB, ns *netns, name string) uint64 {
	t.Helper()
	for _, l := range strings.Split(ns.run(t, "cat", "/proc/net/xfrm_stat"), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseUint(f[1], 10, 64)
			return v
		}
	}
	t.Fatalf("no %s in /proc/net/xfrm_stat", name)
	return 0
}
