package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// fakeV1 is the IKEv1 engine: it answers InitiateWith with answer and
// records the calls.
type fakeV1 struct {
	mu         sync.Mutex
	initiated  []*ikev1.Connection
	terminated []string
	sas        []ikev1.SAInfo
	answer     func(ctx context.Context, o ikev1.InitiateOptions) (ikev1.SAInfo, error)
}

func (f *fakeV1) InitiateWith(ctx context.Context, c *ikev1.Connection, o ikev1.InitiateOptions) (ikev1.SAInfo, error) {
	f.mu.Lock()
	f.initiated = append(f.initiated, c)
	f.mu.Unlock()
	return f.answer(ctx, o)
}

func (f *fakeV1) SAs() []ikev1.SAInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sas)
}

func (f *fakeV1) Terminate(_ context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminated = append(f.terminated, id)
	return 1, nil
}

func (f *fakeV1) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.initiated)
}

func mustV1(t *testing.T, parse func(string) (transform.Proposal, error), ss ...string) []transform.Proposal {
	t.Helper()
	var out []transform.Proposal
	for _, s := range ss {
		p, err := parse(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// newV1Agent is newTestAgent with an IKEv1 engine and auto's wait.
func newV1Agent(t *testing.T, p *policy.Policy, eng *fakeEngine, v1 *fakeV1) (*Agent, *fakeEnforcer) {
	t.Helper()
	enf := &fakeEnforcer{}
	a, err := New(Config{
		Policy: p, Enforcer: enf,
		Auth:       map[string]auth.Method{"krb": &method{name: "kerberos", cannotErr: errors.New("no service")}, "psk": &method{name: "psk"}},
		LocalAddrs: func() []netip.Addr { return []netip.Addr{me} },
		TemplateV1: ikev1.Connection{IKEProposals: mustV1(t, transform.ParseIKEv1Proposal, "aes128-sha256-modp2048"),
			ESPProposals: mustV1(t, transform.ParseIKEv1ESPProposal, "aes128-sha256"), Mode: sadb.Tunnel, IKELifetime: 4 * time.Hour},
		AutoWait: 50 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(enf, nil)), RetryAfter: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	a.SetIKEv1(v1)
	if err := a.Start(eng); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	return a, enf
}

// windowsPolicy is secure-server-require-security with Windows-style key
// exchange settings and a quick mode of its own.
func windowsPolicy(t *testing.T, km policy.KeyModule) *policy.Policy {
	t.Helper()
	methods := []policy.SecurityMethod{{Proposal: "aes256gcm16", Lifetime: 20 * time.Minute}, {Proposal: "aes256-sha256", Lifetime: 15 * time.Minute, LifetimeBytes: 100_000_000}}
	p, err := policy.Builtin(policy.SecureServerRequireSecurity, []string{"krb", "psk"}, methods)
	if err != nil {
		t.Fatal(err)
	}
	p.KeyExchange = policy.KeyExchange{KeyModule: km, Methods: []string{"aes256-sha256-ecp256", "aes256gcm16-prfsha384-ecp384"},
		Lifetime: 480 * time.Minute, MasterKeyPFS: true}
	for _, r := range p.Rules {
		r.PFS = r.Action == policy.Negotiate
	}
	return p
}

func waitFlows(t *testing.T, a *Agent, version, outcome string, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		s, _ := a.Stats(context.Background())
		if s.FlowsByVersion[version][outcome] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("flows %v, want %s %s = %d", s.FlowsByVersion, version, outcome, want)
		}
	}
}

func TestAnIKEv1RuleNegotiatesMainAndQuickModeFromThePolicy(t *testing.T) {
	eng := &fakeEngine{answer: func(context.Context, ike.InitiateOptions) (ike.SAInfo, error) {
		t.Error("an IKEv1 rule initiated IKEv2")
		return ike.SAInfo{}, errors.New("no")
	}}
	v1 := &fakeV1{answer: func(_ context.Context, o ikev1.InitiateOptions) (ikev1.SAInfo, error) {
		o.OnAnswer()
		return ikev1.SAInfo{ID: "isakmp-1", Auth: "psk"}, nil
	}}
	a, _ := newV1Agent(t, windowsPolicy(t, policy.KeyModuleIKEv1), eng, v1)
	acquire(a, policy.TCP, 445)
	waitFlows(t, a, policy.VersionIKEv1, FlowSecured, 1)
	v1.mu.Lock()
	c := v1.initiated[0]
	v1.mu.Unlock()
	// Main mode: the policy's methods IKEv1 speaks, its lifetime, master
	// key PFS; quick mode: the rule's IKEv1 methods with the first main
	// mode group (session key PFS) and the first method's lifetimes.
	if got := fmt.Sprint(c.IKEProposals); got != "[AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256]" {
		t.Errorf("main mode proposals %s", got)
	}
	if c.IKELifetime != 8*time.Hour || c.QuickModeLimit != 1 {
		t.Errorf("main mode lifetime %s, quick modes per main mode %d; want 8h and 1 (master key PFS)", c.IKELifetime, c.QuickModeLimit)
	}
	if len(c.ESPProposals) != 1 || fmt.Sprint(c.ESPProposals[0].DH) != "[19]" {
		t.Errorf("quick mode proposals %v: want aes256-sha256 only (IKEv1 has no GCM), with ECP-256 for PFS", c.ESPProposals)
	}
	if c.Lifetime != 15*time.Minute || c.RekeyBytes != 100_000_000 {
		t.Errorf("quick mode lifetime %s, %d bytes; want the first IKEv1 method's 15m, 100000000", c.Lifetime, c.RekeyBytes)
	}
	if c.Auth.(auth.Method).Name() != "psk" || c.Local != me || c.Remote != netip.AddrPortFrom(peerB, 500) {
		t.Errorf("connection %s auth %v %s -> %s", c.Name, c.Auth, c.Local, c.Remote)
	}
	if len(c.LocalTS) != 1 || c.LocalTS[0].StartAddr != me || c.RemoteTS[0].StartAddr != peerB {
		t.Errorf("selectors %v %v", c.LocalTS, c.RemoteTS)
	}
	if eng.calls() != 0 {
		t.Errorf("%d IKEv2 initiations", eng.calls())
	}
	// With the ISAKMP SA in the engine, the peer reads as secured by
	// IKEv1, under the rule's key module.
	v1.mu.Lock()
	v1.sas = []ikev1.SAInfo{{ID: "isakmp-1", Connection: c.Name, LocalAddr: "10.0.0.1:500", RemoteAddr: "10.0.0.2:500", Auth: "psk",
		Children: []ikev1.ChildInfo{{SPIIn: "c0000001"}}}}
	v1.mu.Unlock()
	st := a.Peer(peerB, policy.TCP, 445)
	if st.Verdict != VerdictSecured || st.KeyModule != "ikev1" || fmt.Sprint(st.SAs, st.Versions) != "[isakmp-1] [ikev1]" || st.Negotiated != "ikev1" {
		t.Errorf("peer status %+v", st)
	}
	if len(a.Peers()) != 1 {
		t.Errorf("peers %+v", a.Peers())
	}
}

func TestAutoTriesIKEv2FirstThenIKEv1WhenThePeerDoesNotAnswerIt(t *testing.T) {
	eng := &fakeEngine{answer: func(ctx context.Context, _ ike.InitiateOptions) (ike.SAInfo, error) {
		<-ctx.Done() // an IKEv1-only peer ignores IKEv2: auto's wait ends it
		return ike.SAInfo{}, ctx.Err()
	}}
	v1 := &fakeV1{answer: func(_ context.Context, o ikev1.InitiateOptions) (ikev1.SAInfo, error) {
		o.OnAnswer()
		return ikev1.SAInfo{ID: "isakmp-1"}, nil
	}}
	a, enf := newV1Agent(t, windowsPolicy(t, policy.KeyModuleAuto), eng, v1)
	acquire(a, policy.TCP, 445)
	waitFlows(t, a, policy.VersionIKEv1, FlowSecured, 1)
	enf.logged(t, "the peer does not speak IKEv2: negotiating with IKEv1")
	if eng.calls() != 1 || v1.calls() != 1 {
		t.Errorf("%d IKEv2 and %d IKEv1 initiations, want one each", eng.calls(), v1.calls())
	}
	eng.mu.Lock()
	c2 := eng.initiated[0]
	eng.mu.Unlock()
	// IKEv2 has its own share of the policy: GCM and both main mode
	// methods.
	if len(c2.IKEProposals) != 2 || len(c2.ESPProposals) != 2 || c2.IKERekeyTime != 8*time.Hour {
		t.Errorf("IKEv2 connection: %v / %v, IKE rekey %s", c2.IKEProposals, c2.ESPProposals, c2.IKERekeyTime)
	}
	if s, _ := a.Stats(context.Background()); s.Flows[FlowSecured] != 1 || s.FlowsByVersion[policy.VersionIKEv2][FlowSecured] != 0 {
		t.Errorf("flows %v by version %v", s.Flows, s.FlowsByVersion)
	}
}

func TestAutoDoesNotRetryWithIKEv1WhatIKEv2Refused(t *testing.T) {
	eng := &fakeEngine{answer: func(_ context.Context, o ike.InitiateOptions) (ike.SAInfo, error) {
		o.OnAnswer()
		return ike.SAInfo{}, auth.Failf("the peer refused our proof")
	}}
	v1 := &fakeV1{answer: func(context.Context, ikev1.InitiateOptions) (ikev1.SAInfo, error) {
		return ikev1.SAInfo{ID: "isakmp-1"}, nil
	}}
	a, _ := newV1Agent(t, windowsPolicy(t, policy.KeyModuleAuto), eng, v1)
	acquire(a, policy.TCP, 445)
	waitFlows(t, a, policy.VersionIKEv2, FlowAuthMismatch, 1)
	if v1.calls() != 0 {
		t.Error("an IKEv2 authentication failure was retried with IKEv1")
	}
}

func TestAutoWithASilentPeerFallsBackToClearOnce(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	eng := &fakeEngine{answer: func(ctx context.Context, _ ike.InitiateOptions) (ike.SAInfo, error) {
		<-ctx.Done()
		return ike.SAInfo{}, ctx.Err()
	}}
	v1 := &fakeV1{answer: func(ctx context.Context, _ ikev1.InitiateOptions) (ikev1.SAInfo, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return ikev1.SAInfo{}, errors.New("ikev1: no answer from the peer")
	}}
	p := windowsPolicy(t, policy.KeyModuleAuto)
	for _, r := range p.Rules {
		if r.Action == policy.Negotiate {
			r.Fallback, r.FallbackDelay = true, 20*time.Millisecond
		}
	}
	a, enf := newV1Agent(t, p, eng, v1)
	acquire(a, policy.TCP, 445)
	if !enf.has(t, "clear+ 10.0.0.2") {
		t.Fatalf("no fallback to clear: %v", enf.log)
	}
	waitVerdict(t, a, VerdictClearFallback)
	for deadline := time.Now().Add(60 * time.Second); v1.calls() == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("auto never tried IKEv1 with a peer silent to IKEv2")
		}
	}
	s, _ := a.Stats(context.Background())
	if s.Flows[FlowClearFallback] != 1 {
		t.Errorf("flows %v", s.FlowsByVersion)
	}
}

func TestResponderConnectionsFollowEachRulesKeyModule(t *testing.T) {
	for _, tc := range []struct {
		km     policy.KeyModule
		v2, v1 []string
	}{
		{policy.KeyModuleIKEv2, []string{"policy/all-ip/krb", "policy/all-ip/psk", "policy/default-response/krb", "policy/default-response/psk"}, nil},
		{policy.KeyModuleIKEv1, nil, []string{"policy/all-ip/krb", "policy/all-ip/psk", "policy/default-response/krb", "policy/default-response/psk"}},
		{policy.KeyModuleAuto, []string{"policy/all-ip/krb", "policy/all-ip/psk", "policy/default-response/krb", "policy/default-response/psk"},
			[]string{"policy/all-ip/krb", "policy/all-ip/psk", "policy/default-response/krb", "policy/default-response/psk"}},
	} {
		a, _ := newV1Agent(t, windowsPolicy(t, tc.km), &fakeEngine{}, &fakeV1{})
		var v2, v1 []string
		for _, c := range a.Connections() {
			v2 = append(v2, c.Name)
		}
		for _, c := range a.ConnectionsV1() {
			v1 = append(v1, c.Name)
			// The same kerberos method serves IKEv1's GSS-API and
			// IKEv2's private method.
			if strings.HasSuffix(c.Name, "/krb") && c.Auth.(auth.Method).Name() != "kerberos" {
				t.Errorf("%s: auth %v", c.Name, c.Auth)
			}
			if c.Remote.Addr().IsValid() || len(c.ESPProposals) != 1 || c.QuickModeLimit != 1 {
				t.Errorf("%s: remote %s, quick modes %v, limit %d", c.Name, c.Remote, c.ESPProposals, c.QuickModeLimit)
			}
		}
		if fmt.Sprint(v2) != fmt.Sprint(tc.v2) || fmt.Sprint(v1) != fmt.Sprint(tc.v1) {
			t.Errorf("%s: IKEv2 responders %v, IKEv1 responders %v; want %v, %v", tc.km, v2, v1, tc.v2, tc.v1)
		}
	}
	// A rule of its own key module in an IKEv2 policy.
	p := windowsPolicy(t, policy.KeyModuleIKEv2)
	for _, r := range p.Rules {
		if r.Action == policy.Negotiate {
			r.KeyModule = policy.KeyModuleIKEv1
		}
	}
	a, _ := newV1Agent(t, p, &fakeEngine{}, &fakeV1{})
	var v1 []string
	for _, c := range a.ConnectionsV1() {
		v1 = append(v1, c.Name)
	}
	if len(v1) != 2 || len(a.Connections()) != 2 {
		t.Errorf("an IKEv1 rule in an IKEv2 policy: IKEv1 responders %v, %d IKEv2 ones", v1, len(a.Connections()))
	}
}

func TestIKEv1ObserverCountsAResponderAuthMismatchUnderIKEv1(t *testing.T) {
	a, enf := newV1Agent(t, windowsPolicy(t, policy.KeyModuleIKEv1), &fakeEngine{}, &fakeV1{})
	o := a.IKEv1Observer()
	o.HandshakeFailed(peerB, false, "auth_mismatch")
	o.HandshakeFailed(peerB, false, "timeout") // not a mismatch
	waitFlows(t, a, policy.VersionIKEv1, FlowAuthMismatch, 1)
	enf.logged(t, "authentication mismatch")
	sel := sadb.Selector{Src: netip.PrefixFrom(me, 32), Dst: netip.PrefixFrom(peerB, 32)}
	o.PoliciesAdded([]*sadb.Policy{{Selector: sel, Direction: sadb.Out, Action: sadb.Protect, ReqID: 1 << 30}})
	o.PoliciesRemoved([]sadb.PolicyID{{Selector: sel, Direction: sadb.Out}})
	if !enf.has(t, "secured+ "+sel.String()) || !enf.has(t, "secured- "+sel.String()) {
		t.Errorf("an IPsec SA's traffic was not steered and released: %v", enf.log)
	}
}

func TestAssigningAPolicyJudgesIKEv1SAsToo(t *testing.T) {
	v1 := &fakeV1{sas: []ikev1.SAInfo{
		{ID: "isakmp-1", Connection: "policy/all-ip/10.0.0.2", LocalAddr: "10.0.0.1:500", RemoteAddr: "10.0.0.2:500", Auth: "psk"},
		{ID: "isakmp-2", Connection: "policy/all-ip/10.0.0.3", LocalAddr: "10.0.0.1:500", RemoteAddr: "10.0.0.3:500", Auth: "rsa-sig"},
	}}
	eng := &fakeEngine{sas: []ike.SAInfo{
		{ID: "ike-1", Connection: "policy/all-ip/10.0.0.4", LocalAddr: "10.0.0.1:500", RemoteAddr: "10.0.0.4:500", Auth: "psk"},
	}}
	a, _ := newV1Agent(t, windowsPolicy(t, policy.KeyModuleIKEv1), eng, v1)
	// The same policy with IKEv2 for its rules: IKEv1's SAs go, IKEv2's
	// stays; a cert method keeps the rsa-sig SA by its method.
	next := windowsPolicy(t, policy.KeyModuleIKEv2)
	methods := map[string]auth.Method{"psk": &method{name: "psk"}, "krb": &method{name: "cert"}}
	removed, err := a.Assign(context.Background(), next, methods)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(removed) != "[isakmp-1 isakmp-2]" || fmt.Sprint(v1.terminated) != "[isakmp-1 isakmp-2]" || len(eng.terminated) != 0 {
		t.Errorf("removed %v (IKEv1 engine %v, IKEv2 engine %v), want both ISAKMP SAs through the IKEv1 engine", removed, v1.terminated, eng.terminated)
	}
	v1.terminated = nil
	auto := windowsPolicy(t, policy.KeyModuleAuto)
	if removed, _ := a.Assign(context.Background(), auto, methods); len(removed) != 0 {
		t.Errorf("auto removed %v: it speaks both versions, and cert covers rsa-sig", removed)
	}
}
