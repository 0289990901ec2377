package interop

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Inner (traffic selector) subnets and the host addresses the topology adds
// for them: iked protects 10.1.0.0/24, charon 10.2.0.0/24. They are kept
// apart from the IKE addresses because kernel-libipsec must not route the
// peer's IKE address into its tunnel.
const (
	ikedInnerNet    = "10.1.0.0/24"
	charonInnerNet  = "10.2.0.0/24"
	ikedInnerHost   = "10.1.0.1"
	charonInnerHost = "10.2.0.1"
)

// topoSeq numbers the topologies of this process: it picks the third octet
// of the veth subnet (10.99.<n>.0/24) and makes namespace names unique.
var topoSeq atomic.Int32

// netns is a network namespace this test created.
type netns struct {
	name string
}

// command returns a command that runs argv inside the namespace (ip netns
// exec, which also gives it a private mount namespace).
func (ns *netns) command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name}, argv...)...)
}

// topology is two namespaces joined by a veth pair: iked runs in I (veth
// "veth-i", address IkedAddr), charon in S ("veth-s", CharonAddr). Each
// side also carries its inner host address (10.1.0.1 and 10.2.0.1) as a
// /32 on its veth.
type topology struct {
	n          int
	I, S       *netns
	IkedAddr   netip.Addr
	CharonAddr netip.Addr
}

// ipCmd runs ip(8) in the root namespace.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newTopology creates the namespaces and the veth pair; t.Cleanup kills
// whatever still runs inside them and deletes them. Cleanups run last in,
// first out, so daemons started later are stopped by their own cleanups
// before this one runs.
func newTopology(t *testing.T) *topology {
	t.Helper()
	requireRoot(t)
	n := int(topoSeq.Add(1)-1)%250 + 1
	pid := os.Getpid()
	tp := &topology{
		n:          n,
		I:          &netns{name: fmt.Sprintf("iked-i-%d-%d", pid, n)},
		S:          &netns{name: fmt.Sprintf("iked-s-%d-%d", pid, n)},
		IkedAddr:   netip.MustParseAddr(fmt.Sprintf("10.99.%d.1", n)),
		CharonAddr: netip.MustParseAddr(fmt.Sprintf("10.99.%d.2", n)),
	}
	for _, ns := range []*netns{tp.I, tp.S} {
		if err := ipCmd("netns", "add", ns.name); err != nil {
			t.Fatalf("creating namespace: %v", err)
		}
		t.Cleanup(func() { deleteNetns(t, ns) })
	}
	steps := [][]string{
		{"-n", tp.I.name, "link", "add", "veth-i", "type", "veth", "peer", "name", "veth-s", "netns", tp.S.name},
		{"-n", tp.I.name, "link", "set", "lo", "up"},
		{"-n", tp.S.name, "link", "set", "lo", "up"},
		{"-n", tp.I.name, "addr", "add", tp.IkedAddr.String() + "/24", "dev", "veth-i"},
		{"-n", tp.S.name, "addr", "add", tp.CharonAddr.String() + "/24", "dev", "veth-s"},
		{"-n", tp.I.name, "addr", "add", ikedInnerHost + "/32", "dev", "veth-i"},
		{"-n", tp.S.name, "addr", "add", charonInnerHost + "/32", "dev", "veth-s"},
		{"-n", tp.I.name, "link", "set", "veth-i", "up"},
		{"-n", tp.S.name, "link", "set", "veth-s", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatalf("building topology: %v", err)
		}
	}
	// Both ends of a veth pair report operstate UP once both are up.
	deadline := time.Now().Add(hangGuard)
	for _, end := range []struct{ ns, dev string }{{tp.I.name, "veth-i"}, {tp.S.name, "veth-s"}} {
		for {
			out, err := exec.Command("ip", "-n", end.ns, "-o", "link", "show", end.dev).Output()
			if err == nil && strings.Contains(string(out), "state UP") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s in %s is not up: %s", end.dev, end.ns, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return tp
}

// deleteNetns kills the processes still inside ns (all of them started by
// this test) by PID and deletes the namespace.
func deleteNetns(t *testing.T, ns *netns) {
	out, _ := exec.Command("ip", "netns", "pids", ns.name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			t.Logf("namespace %s: killing leftover process %d", ns.name, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if err := ipCmd("netns", "del", ns.name); err != nil {
		t.Errorf("deleting namespace: %v", err)
	}
}

// natTopology is three namespaces: I behind a NAT router R, and S. I and R
// are joined by veth-i/veth-ri (10.98.<n>.0/24: I .1, R .254), R and S by
// veth-ro/veth-s (10.99.<n>.0/24: R .1, S .2). I's default route is R; S
// has no route to 10.98.<n>.0/24, so I reaches S only through R, which
// forwards and masquerades (nftables) what leaves veth-ro: S sees I as
// R's outside address. Inner host addresses are not added (the userspace
// data plane puts them on its TUN device; charon's are added by the test).
type natTopology struct {
	n         int
	I, R, S   *netns
	IAddr     netip.Addr // I's address, behind the NAT
	RInside   netip.Addr
	ROutside  netip.Addr // the address S sees I's packets from
	SAddr     netip.Addr
	insideNet string
}

// newNATTopology creates the three namespaces, the veth pairs and the
// masquerade; t.Cleanup deletes them.
func newNATTopology(t *testing.T) *natTopology {
	t.Helper()
	requireRoot(t)
	requireTools(t, "nft")
	n := int(topoSeq.Add(1)-1)%250 + 1
	pid := os.Getpid()
	tp := &natTopology{
		n:         n,
		I:         &netns{name: fmt.Sprintf("iked-i-%d-%d", pid, n)},
		R:         &netns{name: fmt.Sprintf("iked-r-%d-%d", pid, n)},
		S:         &netns{name: fmt.Sprintf("iked-s-%d-%d", pid, n)},
		IAddr:     netip.MustParseAddr(fmt.Sprintf("10.98.%d.1", n)),
		RInside:   netip.MustParseAddr(fmt.Sprintf("10.98.%d.254", n)),
		ROutside:  netip.MustParseAddr(fmt.Sprintf("10.99.%d.1", n)),
		SAddr:     netip.MustParseAddr(fmt.Sprintf("10.99.%d.2", n)),
		insideNet: fmt.Sprintf("10.98.%d.0/24", n),
	}
	for _, ns := range []*netns{tp.I, tp.R, tp.S} {
		if err := ipCmd("netns", "add", ns.name); err != nil {
			t.Fatalf("creating namespace: %v", err)
		}
		t.Cleanup(func() { deleteNetns(t, ns) })
	}
	steps := [][]string{
		{"-n", tp.I.name, "link", "add", "veth-i", "type", "veth", "peer", "name", "veth-ri", "netns", tp.R.name},
		{"-n", tp.R.name, "link", "add", "veth-ro", "type", "veth", "peer", "name", "veth-s", "netns", tp.S.name},
		{"-n", tp.I.name, "link", "set", "lo", "up"},
		{"-n", tp.R.name, "link", "set", "lo", "up"},
		{"-n", tp.S.name, "link", "set", "lo", "up"},
		{"-n", tp.I.name, "addr", "add", tp.IAddr.String() + "/24", "dev", "veth-i"},
		{"-n", tp.R.name, "addr", "add", tp.RInside.String() + "/24", "dev", "veth-ri"},
		{"-n", tp.R.name, "addr", "add", tp.ROutside.String() + "/24", "dev", "veth-ro"},
		{"-n", tp.S.name, "addr", "add", tp.SAddr.String() + "/24", "dev", "veth-s"},
		{"-n", tp.I.name, "link", "set", "veth-i", "up"},
		{"-n", tp.R.name, "link", "set", "veth-ri", "up"},
		{"-n", tp.R.name, "link", "set", "veth-ro", "up"},
		{"-n", tp.S.name, "link", "set", "veth-s", "up"},
		{"-n", tp.I.name, "route", "add", "default", "via", tp.RInside.String()},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			t.Fatalf("building NAT topology: %v", err)
		}
	}
	for _, argv := range [][]string{
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"nft", "add table ip nat"},
		{"nft", "add chain ip nat post { type nat hook postrouting priority 100 ; }"},
		{"nft", `add rule ip nat post oifname "veth-ro" counter masquerade`},
	} {
		if out, err := tp.R.command(context.Background(), argv...).CombinedOutput(); err != nil {
			t.Fatalf("NAT router: %s: %v\n%s", strings.Join(argv, " "), err, out)
		}
	}
	deadline := time.Now().Add(hangGuard)
	for _, end := range []struct{ ns, dev string }{{tp.I.name, "veth-i"}, {tp.R.name, "veth-ri"}, {tp.R.name, "veth-ro"}, {tp.S.name, "veth-s"}} {
		for {
			out, err := exec.Command("ip", "-n", end.ns, "-o", "link", "show", end.dev).Output()
			if err == nil && strings.Contains(string(out), "state UP") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s in %s is not up: %s", end.dev, end.ns, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return tp
}
