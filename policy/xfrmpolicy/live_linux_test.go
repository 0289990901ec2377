package xfrmpolicy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/xfrm"
)

// liveBackend opens the xfrm backend in a fresh namespace with a veth
// pair, 10.0.0.1/24 on one end; root is needed (under CI=true it must be there).
func liveBackend(t *testing.T) (*xfrm.Backend, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true: the XFRM policy test needs root")
		}
		t.Skip("needs root for a network namespace")
	}
	ns := fmt.Sprintf("iked-xfrmpol-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	for _, argv := range [][]string{
		{"-n", ns, "link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"-n", ns, "addr", "add", "10.0.0.1/24", "dev", "v0"},
		{"-n", ns, "link", "set", "v0", "up"},
		{"-n", ns, "link", "set", "v1", "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", argv, err, out)
		}
	}
	b, err := xfrm.New(xfrm.Options{Namespace: "/run/netns/" + ns, SkipProbe: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, ns
}

func xfrmPolicies(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "-n", ns, "xfrm", "policy").CombinedOutput()
	if err != nil {
		t.Fatalf("ip xfrm policy: %v: %s", err, out)
	}
	return string(out)
}

func TestTheKernelEnforcesThePolicyAndRaisesAcquiresForNegotiatedTraffic(t *testing.T) {
	b, ns := liveBackend(t)
	ctx := context.Background()
	e := New(b)
	p, err := policy.Builtin(policy.SecureServerRequireSecurity, []string{"psk"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.KDCs = []netip.Addr{netip.MustParseAddr("10.0.0.53")}
	if err := e.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	list := xfrmPolicies(t, ns)
	for _, want := range []string{
		"src 0.0.0.0/0 dst 0.0.0.0/0 proto icmp \n\tdir out priority 2000", // ICMP permitted, most specific first
		"dir out priority 2002",
		"tmpl src 0.0.0.0 dst 0.0.0.0\n\t\tproto esp reqid 0 mode transport",
		"level use", // accept unsecured inbound
		"src 0.0.0.0/0 dst 10.0.0.53/32 proto tcp dport 88 \n\tdir out priority 1000",
	} {
		if !strings.Contains(list, want) {
			t.Errorf("the kernel's policies lack %q:\n%s", want, list)
		}
	}

	// A TCP SYN to a peer needs security: the kernel asks for an SA.
	go func() {
		_ = exec.Command("ip", "netns", "exec", ns, "timeout", "2", "bash", "-c", "echo > /dev/tcp/10.0.0.2/445").Run()
	}()
	select {
	case ev := <-b.Events():
		if ev.Kind != sadb.Acquire || ev.Packet.Dst.Addr() != netip.MustParseAddr("10.0.0.2") || ev.Packet.Proto != policy.TCP {
			t.Errorf("event %+v, want an acquire for the SYN to 10.0.0.2", ev)
		}
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatal("no acquire for traffic a negotiate rule covers")
	}

	// A fallback to clear puts allow policies for the peer first.
	peer := netip.MustParseAddr("10.0.0.9")
	if err := e.AllowClear(ctx, peer, time.Hour); err != nil {
		t.Fatal(err)
	}
	if list := xfrmPolicies(t, ns); !strings.Contains(list, "src 0.0.0.0/0 dst 10.0.0.9/32 \n\tdir out priority 100") {
		t.Errorf("no allow policy for the peer in fallback:\n%s", list)
	}
	if err := e.EndClear(ctx, peer); err != nil {
		t.Fatal(err)
	}
	if list := xfrmPolicies(t, ns); strings.Contains(list, "10.0.0.9") {
		t.Errorf("the fallback's policies stayed:\n%s", list)
	}

	// A reload to a policy with only a block rule leaves only it and the
	// exemptions; deleting leaves nothing.
	me := policy.Address{Kind: policy.MyAddress}
	block := &policy.Policy{Name: "block-telnet", Rules: []*policy.Rule{{Name: "telnet", Action: policy.Block,
		Filters: &policy.FilterList{Filters: []policy.Filter{{Src: me, Dst: policy.Address{Kind: policy.AnyAddress}, Protocol: policy.TCP, DstPort: 23}}}}}}
	if err := e.Replace(ctx, block); err != nil {
		t.Fatal(err)
	}
	list = xfrmPolicies(t, ns)
	if strings.Contains(list, "proto esp") || !strings.Contains(list, "src 0.0.0.0/0 dst 0.0.0.0/0 proto tcp dport 23 \n\tdir out action block priority 2000") {
		t.Errorf("after the reload:\n%s", list)
	}
	if err := e.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if list := strings.TrimSpace(xfrmPolicies(t, ns)); list != "" {
		t.Errorf("policies left after Delete:\n%s", list)
	}
}

func TestTunnelRulesAreRefusedByTheXFRMEnforcement(t *testing.T) {
	lists := policy.BuiltinFilterLists()
	p := &policy.Policy{Rules: []*policy.Rule{{Name: "to-site", Action: policy.Negotiate, Filters: lists[policy.AllIPTraffic],
		Tunnel: netip.MustParseAddr("192.0.2.1"), Methods: policy.DefaultSecurityMethods(), Auth: []string{"psk"}}}}
	if _, err := Compile(p); err == nil || !strings.Contains(err.Error(), "tunnel rules are not enforced by the xfrm data plane") {
		t.Fatalf("err %v", err)
	}
}
