package nft

import (
	"bytes"
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
)

const mark = 0x1e4ed

func builtin(t *testing.T, name string) *policy.Policy {
	t.Helper()
	p, err := policy.Builtin(name, []string{"psk"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func index(rules []string, sub string) int {
	for i, r := range rules {
		if strings.Contains(r, sub) {
			return i
		}
	}
	return -1
}

func TestRequireSecurityPermitsICMPBeforeMarkingAllTrafficAndRefusesClearInbound(t *testing.T) {
	p := builtin(t, policy.SecureServerRequireSecurity)
	r := Compile(p, mark)
	icmp := index(r.Out, `meta l4proto 1 counter name "permitted" accept`)
	secure := index(r.Out, `counter name "secured" meta mark set 0x1e4ed accept`)
	if icmp < 0 || secure < 0 || icmp > secure {
		t.Fatalf("outbound: ICMP permit at %d, all-traffic mark at %d:\n%s", icmp, secure, strings.Join(r.Out, "\n"))
	}
	if index(r.Out, "@clear4") >= 0 {
		t.Errorf("require security consults the clear set:\n%s", strings.Join(r.Out, "\n"))
	}
	// "Accept unsecured, always respond using IPsec": clear inbound is
	// accepted (the reply is marked outbound).
	if i := index(r.In, `counter name "unsecured_in" accept`); i < 0 {
		t.Errorf("inbound clear traffic is not accepted:\n%s", strings.Join(r.In, "\n"))
	}
	if index(r.ExemptOut, "udp dport { 500, 4500 } accept") < 0 || index(r.ExemptOut, "meta l4proto { esp, ah } accept") < 0 {
		t.Errorf("IKE and ESP are not exempt:\n%s", strings.Join(r.ExemptOut, "\n"))
	}
}

func TestRequestSecurityFallsBackThroughTheClearSet(t *testing.T) {
	r := Compile(builtin(t, policy.ServerRequestSecurity), mark)
	fb := index(r.Out, `ip daddr @clear4 counter name "fallback" accept`)
	secure := index(r.Out, `meta mark set`)
	if fb < 0 || fb > secure {
		t.Fatalf("the clear set is not consulted before marking:\n%s", strings.Join(r.Out, "\n"))
	}
}

func TestRespondOnlyHasNoStaticRules(t *testing.T) {
	r := Compile(builtin(t, policy.ClientRespondOnly), mark)
	if len(r.Out) != 0 || len(r.In) != 0 {
		t.Fatalf("respond-only has rules: %q %q", r.Out, r.In)
	}
}

func TestACustomBlockRuleDropsBothDirectionsOfItsPort(t *testing.T) {
	any, _ := policy.ParseAddress("any")
	me, _ := policy.ParseAddress("me")
	lab, _ := policy.ParseAddress("10.0.0.0/24")
	p := &policy.Policy{
		Rules: []*policy.Rule{
			{Name: "telnet", Action: policy.Block, Filters: &policy.FilterList{Filters: []policy.Filter{{Src: me, Dst: any, Protocol: policy.TCP, DstPort: 23, Mirrored: true}}}},
			{Name: "lab", Action: policy.Permit, Connection: policy.LAN, Filters: &policy.FilterList{Filters: []policy.Filter{{Src: me, Dst: lab, Mirrored: true}}}},
		},
		KDCs: []netip.Addr{netip.MustParseAddr("10.0.0.53")},
	}
	r := Compile(p, mark)
	want := map[string][]string{
		// me -> any tcp/23 mirrored: our requests to port 23 and their
		// replies; not a telnet server's traffic (that is any -> me).
		"out": {"ip daddr 10.0.0.0/24 meta oiftype ether counter name \"permitted\" accept", "meta l4proto 6 th dport 23 counter name \"blocked\" drop"},
		"in":  {"ip saddr 10.0.0.0/24 meta iiftype ether counter name \"permitted\" accept", "meta l4proto 6 th sport 23 counter name \"blocked\" drop"},
	}
	if index(r.Out, "th sport 23") >= 0 || index(r.In, "th dport 23") >= 0 {
		t.Errorf("a telnet server's traffic is blocked by a filter from me to port 23:\n%s\n%s", strings.Join(r.Out, "\n"), strings.Join(r.In, "\n"))
	}
	for dir, rules := range map[string][]string{"out": r.Out, "in": r.In} {
		for _, w := range want[dir] {
			if index(rules, w) < 0 {
				t.Errorf("%s lacks %q:\n%s", dir, w, strings.Join(rules, "\n"))
			}
		}
	}
	if index(r.ExemptOut, "ip daddr 10.0.0.53 meta l4proto { tcp, udp } th dport 88 accept") < 0 {
		t.Errorf("the KDC is not exempt:\n%s", strings.Join(r.ExemptOut, "\n"))
	}
}

// nsRunner runs nft inside a network namespace.
type nsRunner struct{ ns string }

func (n nsRunner) Run(ctx context.Context, script string, args ...string) (string, error) {
	full := append([]string{"netns", "exec", n.ns, "nft"}, args...)
	if script != "" {
		full = append(full, "-f", "-")
	}
	cmd := exec.CommandContext(ctx, "ip", full...)
	cmd.Stdin = strings.NewReader(script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("nft: %s (%v)", strings.TrimSpace(errb.String()), err)
	}
	return out.String(), nil
}

func requireNft(t *testing.T) string {
	t.Helper()
	need := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %s is required", what)
		}
		t.Skipf("needs %s", what)
	}
	if os.Geteuid() != 0 {
		need("root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		need("nft (Debian package nftables)")
	}
	ns := fmt.Sprintf("iked-nft-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	return ns
}

func TestTheKernelTakesTheTableAndItsChanges(t *testing.T) {
	ns := requireNft(t)
	ctx := context.Background()
	run := nsRunner{ns}
	tab, err := New(Config{Mark: mark, TUN: "iked0", Runner: run})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range policy.BuiltinNames() {
		p := builtin(t, name)
		p.KDCs = []netip.Addr{netip.MustParseAddr("10.0.0.53"), netip.MustParseAddr("2001:db8::53")}
		p.Exempt = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		if err := tab.Create(ctx, p); err != nil {
			t.Fatalf("%s: create: %v", name, err)
		}
	}
	// A reload swaps the static rules but keeps SA rules and the clear set.
	sel := sadb.Selector{Src: netip.MustParsePrefix("10.0.0.1/32"), Dst: netip.MustParsePrefix("10.0.0.2/32"), Proto: 6, DstPort: 80}
	if err := tab.AddSecured(ctx, sel); err != nil {
		t.Fatal(err)
	}
	if err := tab.AllowClear(ctx, netip.MustParseAddr("10.0.0.9"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := tab.Replace(ctx, builtin(t, policy.ServerRequestSecurity)); err != nil {
		t.Fatal(err)
	}
	list, err := run.Run(ctx, "", "list", "table", "inet", "iked")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ip saddr 10.0.0.1 ip daddr 10.0.0.2 tcp dport 80", "10.0.0.9 timeout 1m", `ip daddr @clear4 counter name "fallback" accept`} {
		if !strings.Contains(list, want) {
			t.Errorf("after the reload the table lacks %q:\n%s", want, list)
		}
	}
	if err := tab.RemoveSecured(ctx, sel); err != nil {
		t.Fatal(err)
	}
	if err := tab.EndClear(ctx, netip.MustParseAddr("10.0.0.9")); err != nil {
		t.Fatal(err)
	}
	if err := tab.EndClear(ctx, netip.MustParseAddr("10.0.0.9")); err != nil {
		t.Fatalf("ending a fallback twice: %v", err)
	}
	list, _ = run.Run(ctx, "", "list", "table", "inet", "iked")
	if strings.Contains(list, "10.0.0.2") || strings.Contains(list, "10.0.0.9") {
		t.Errorf("the SA rule or the clear element stayed:\n%s", list)
	}
	counters, err := tab.CounterValues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(counters) != len(Counters) {
		t.Errorf("counters: %v", counters)
	}
	if err := tab.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Run(ctx, "", "list", "table", "inet", "iked"); err == nil {
		t.Error("the table is still there after Delete")
	}
}
