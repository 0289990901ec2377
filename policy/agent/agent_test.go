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
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

var (
	me    = netip.MustParseAddr("10.0.0.1")
	peerB = netip.MustParseAddr("10.0.0.2")
)

// fakeEngine answers InitiateWith with answer and records the calls.
type fakeEngine struct {
	mu         sync.Mutex
	initiated  []*ike.Connection
	terminated []string
	sas        []ike.SAInfo
	answer     func(ctx context.Context, o ike.InitiateOptions) (ike.SAInfo, error)
}

func (f *fakeEngine) InitiateWith(ctx context.Context, c *ike.Connection, o ike.InitiateOptions) (ike.SAInfo, error) {
	f.mu.Lock()
	f.initiated = append(f.initiated, c)
	f.mu.Unlock()
	return f.answer(ctx, o)
}

func (f *fakeEngine) SAs() []ike.SAInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sas)
}

func (f *fakeEngine) Terminate(_ context.Context, id string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.terminated = append(f.terminated, id)
	return 1, nil
}

func (f *fakeEngine) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.initiated)
}

// fakeEnforcer records what the agent asks of the data plane, and holds
// the agent's log.
type fakeEnforcer struct {
	mu   sync.Mutex
	log  []string
	text strings.Builder // the agent's log lines; mu guards it
}

func (f *fakeEnforcer) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.text.Write(p)
}

// logged waits (up to a hang guard of 60 s) until the agent logged a line
// containing want.
func (f *fakeEnforcer) logged(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.mu.Lock()
		ok := strings.Contains(f.text.String(), want)
		f.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent did not log %q", want)
		}
	}
}

func (f *fakeEnforcer) rec(s string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, s)
	return nil
}
func (f *fakeEnforcer) Create(context.Context, *policy.Policy) error  { return f.rec("create") }
func (f *fakeEnforcer) Replace(context.Context, *policy.Policy) error { return f.rec("replace") }
func (f *fakeEnforcer) Delete(context.Context) error                  { return f.rec("delete") }
func (f *fakeEnforcer) AddSecured(_ context.Context, sel sadb.Selector) error {
	return f.rec("secured+ " + sel.String())
}
func (f *fakeEnforcer) RemoveSecured(_ context.Context, sel sadb.Selector) error {
	return f.rec("secured- " + sel.String())
}
func (f *fakeEnforcer) AllowClear(_ context.Context, p netip.Addr, _ time.Duration) error {
	return f.rec("clear+ " + p.String())
}
func (f *fakeEnforcer) EndClear(_ context.Context, p netip.Addr) error {
	return f.rec("clear- " + p.String())
}
func (f *fakeEnforcer) CounterValues(context.Context) (map[string]uint64, error) {
	return map[string]uint64{"secured": 7}, nil
}

// has waits for an entry, up to a hang guard of 60 s.
func (f *fakeEnforcer) has(t *testing.T, want string) bool {
	t.Helper()
	return f.hasWithin(t, want, 60*time.Second)
}

// hasWithin waits up to wait for an entry. Only for an entry that must
// not come: a short wait can let a wrong entry slip by, never fail a
// right run.
func (f *fakeEnforcer) hasWithin(t *testing.T, want string, wait time.Duration) bool {
	t.Helper()
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		f.mu.Lock()
		ok := slices.Contains(f.log, want)
		f.mu.Unlock()
		if ok {
			return true
		}
	}
	return false
}

// method is an auth method that may lack initiator credentials.
type method struct {
	name      string
	cannotErr error
}

func (m *method) Name() string                                  { return m.name }
func (m *method) Accepts(wire.AuthMethod) bool                  { return true }
func (m *method) NewSession(*auth.Params) (auth.Session, error) { return nil, errors.New("unused") }
func (m *method) CanInitiate() error                            { return m.cannotErr }

func newTestAgent(t *testing.T, p *policy.Policy, eng *fakeEngine) (*Agent, *fakeEnforcer) {
	t.Helper()
	enf := &fakeEnforcer{}
	a, err := New(Config{
		Policy: p, Enforcer: enf,
		Auth:       map[string]auth.Method{"krb": &method{name: "kerberos", cannotErr: errors.New("no service")}, "psk": &method{name: "psk"}},
		LocalAddrs: func() []netip.Addr { return []netip.Addr{me} },
		Logger:     slog.New(slog.NewTextHandler(enf, nil)), RetryAfter: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(eng); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Stop(context.Background()) })
	return a, enf
}

func requestSecurity(t *testing.T, delay time.Duration) *policy.Policy {
	t.Helper()
	p, err := policy.Builtin(policy.ServerRequestSecurity, []string{"krb", "psk"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Rules {
		r.FallbackDelay = delay
	}
	return p
}

func acquire(a *Agent, proto uint8, port uint16) {
	a.Acquire(sadb.Event{Kind: sadb.Acquire, Packet: sadb.Selector{
		Src: netip.PrefixFrom(me, 32), Dst: netip.PrefixFrom(peerB, 32), Proto: proto, DstPort: port}})
}

func waitVerdict(t *testing.T, a *Agent, want string) PeerStatus {
	t.Helper()
	var st PeerStatus
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if st = a.Peer(peerB, policy.TCP, 80); st.Verdict == want {
			return st
		}
	}
	t.Fatalf("verdict %q (%s), want %q", st.Verdict, st.Detail, want)
	return st
}

func TestASilentPeerFallsBackToClearAfterTheDelayAndStaysThere(t *testing.T) {
	release := make(chan struct{})
	eng := &fakeEngine{answer: func(ctx context.Context, _ ike.InitiateOptions) (ike.SAInfo, error) {
		<-release // never answered
		return ike.SAInfo{}, errors.New("no answer")
	}}
	a, enf := newTestAgent(t, requestSecurity(t, 20*time.Millisecond), eng)
	acquire(a, policy.TCP, 80)
	if !enf.has(t, "clear+ 10.0.0.2") {
		t.Fatalf("no fallback to clear: %v", enf.log)
	}
	st := waitVerdict(t, a, VerdictClearFallback)
	if st.Until.IsZero() {
		t.Error("a fallback without an end")
	}
	close(release) // the negotiation finally gives up: the fallback stays
	enf.logged(t, "peer still does not answer IKE; traffic stays in clear")
	waitVerdict(t, a, VerdictClearFallback)
	acquire(a, policy.TCP, 80)
	if n := eng.calls(); n != 1 {
		t.Errorf("%d negotiations during a fallback, want 1", n)
	}
	s, _ := a.Stats(context.Background())
	if s.Flows[FlowClearFallback] != 1 || s.Packets["secured"] != 7 {
		t.Errorf("stats %+v", s)
	}
}

func TestAPeerThatAnswersAndFailsNeverGetsClear(t *testing.T) {
	eng := &fakeEngine{answer: func(ctx context.Context, o ike.InitiateOptions) (ike.SAInfo, error) {
		o.OnAnswer()
		// Past the fallback delay (20 ms), so that its timer fires while
		// the negotiation runs. On a busy machine the timer may fire only
		// later, after Stop: the test then proves less, never fails.
		time.Sleep(200 * time.Millisecond)
		return ike.SAInfo{}, auth.Failf("peerB refused")
	}}
	a, enf := newTestAgent(t, requestSecurity(t, 20*time.Millisecond), eng)
	acquire(a, policy.TCP, 80)
	st := waitVerdict(t, a, VerdictNotSecured)
	if enf.hasWithin(t, "clear+ 10.0.0.2", time.Second) {
		t.Fatal("fell back to clear with a peerB that answered IKE")
	}
	if s, _ := a.Stats(context.Background()); s.Flows[FlowAuthMismatch] != 1 {
		t.Errorf("flows %v, want one auth mismatch", s.Flows)
	}
	if st.Until.IsZero() {
		t.Error("no retry time")
	}
	acquire(a, policy.TCP, 80) // within retry_after: left alone
	if n := eng.calls(); n != 1 {
		t.Errorf("%d negotiations, want 1 until retry_after", n)
	}
}

func TestTheFirstAuthMethodWithCredentialsInitiatesWithTheFiltersSelectors(t *testing.T) {
	eng := &fakeEngine{answer: func(context.Context, ike.InitiateOptions) (ike.SAInfo, error) {
		return ike.SAInfo{ID: "ike-1", Auth: "psk"}, nil
	}}
	a, _ := newTestAgent(t, requestSecurity(t, time.Second), eng)
	acquire(a, policy.TCP, 80)
	// The fake engine holds no SA, so after the negotiation the peer
	// reads as negotiated on demand.
	waitVerdict(t, a, VerdictOnDemand)
	eng.mu.Lock()
	defer eng.mu.Unlock()
	if len(eng.initiated) != 1 {
		t.Fatalf("%d initiations", len(eng.initiated))
	}
	c := eng.initiated[0]
	if c.Auth.Name() != "psk" || c.Remote != netip.AddrPortFrom(peerB, 500) || c.Local != me {
		t.Errorf("connection %s auth %s %s -> %s", c.Name, c.Auth.Name(), c.Local, c.Remote)
	}
	if len(c.LocalTS) != 1 || c.LocalTS[0].StartAddr != me || c.RemoteTS[0].StartAddr != peerB || c.RemoteTS[0].IPProtocol != 0 {
		t.Errorf("selectors %v %v: want the two hosts, any protocol (the all-ip filter)", c.LocalTS, c.RemoteTS)
	}
}

// VerdictSecuredOrOnDemand: the fake engine holds no SA, so after a
// successful negotiation the peerB reads as on demand.
func VerdictSecuredOrOnDemand(*Agent) string { return VerdictOnDemand }

func TestPermittedTrafficStartsNoNegotiation(t *testing.T) {
	eng := &fakeEngine{answer: func(context.Context, ike.InitiateOptions) (ike.SAInfo, error) {
		return ike.SAInfo{}, nil
	}}
	a, _ := newTestAgent(t, requestSecurity(t, time.Second), eng)
	acquire(a, policy.ICMP, 0)
	// Acquire decides at once: a negotiation it started would be listed
	// before it returns (the engine is called on another goroutine).
	a.mu.Lock()
	_, negotiating := a.peers[peerB]
	a.mu.Unlock()
	if n := eng.calls(); n != 0 || negotiating {
		t.Fatalf("ICMP, permitted, started %d negotiations (peer listed: %v)", n, negotiating)
	}
	if st := a.Peer(peerB, policy.ICMP, 0); st.Verdict != VerdictClearPermit {
		t.Errorf("ICMP verdict %q", st.Verdict)
	}
}

func TestChildSAPoliciesAreMarkedAndUnmarked(t *testing.T) {
	a, enf := newTestAgent(t, requestSecurity(t, time.Second), &fakeEngine{})
	sel := sadb.Selector{Src: netip.PrefixFrom(me, 32), Dst: netip.PrefixFrom(peerB, 32)}
	a.PoliciesAdded([]*sadb.Policy{
		{Selector: sel, Direction: sadb.Out, Action: sadb.Protect, ReqID: 5},
		{Selector: sadb.Selector{Src: sel.Dst, Dst: sel.Src}, Direction: sadb.In, Action: sadb.Protect, ReqID: 5},
	})
	key := sel.String()
	if !enf.has(t, "secured+ "+key) {
		t.Fatalf("outbound SA policy not marked: %v", enf.log)
	}
	a.PoliciesRemoved([]sadb.PolicyID{{Selector: sel, Direction: sadb.Out}})
	if !enf.has(t, "secured- "+key) {
		t.Fatalf("not unmarked: %v", enf.log)
	}
	enf.mu.Lock()
	defer enf.mu.Unlock()
	if n := len(enf.log); n != 3 { // create, +, -
		t.Errorf("inbound policies touched the marks: %v", enf.log)
	}
}

func TestAssigningAPolicyDeletesOnlyThePolicySAsItRefuses(t *testing.T) {
	eng := &fakeEngine{sas: []ike.SAInfo{
		{ID: "ike-1", Connection: "policy/all-ip/10.0.0.2", LocalAddr: "10.0.0.1:4500", RemoteAddr: "10.0.0.2:4500", Auth: "psk"},
		{ID: "ike-2", Connection: "policy/default-response/psk", LocalAddr: "10.0.0.1:4500", RemoteAddr: "10.0.0.3:4500", Auth: "psk"},
		{ID: "ike-3", Connection: "site-b", LocalAddr: "10.0.0.1:4500", RemoteAddr: "10.0.0.2:4500", Auth: "psk"},
	}}
	a, enf := newTestAgent(t, requestSecurity(t, time.Second), eng)
	me := policy.Address{Kind: policy.MyAddress}
	blockB := &policy.Policy{Name: "block-b", Rules: []*policy.Rule{{Name: "b", Action: policy.Block,
		Filters: &policy.FilterList{Filters: []policy.Filter{{Src: me, Dst: policy.Address{Kind: policy.Host, Prefix: netip.PrefixFrom(peerB, 32)}, Mirrored: true}}}}},
		DefaultResponse: policy.DefaultResponse{Active: true, Methods: policy.DefaultSecurityMethods(), Auth: []string{"psk"}}}
	removed, err := a.Assign(context.Background(), blockB, map[string]auth.Method{"psk": &method{name: "psk"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(removed) != "[ike-1]" {
		t.Errorf("removed %v, want only ike-1 (ike-2 is kept by the default response rule, ike-3 is a configured connection)", removed)
	}
	if !enf.has(t, "replace") {
		t.Error("the data-plane rules were not replaced")
	}
	if a.Policy().Name != "block-b" || len(a.Connections()) != 1 {
		t.Errorf("after assign: policy %s, %d responder connections", a.Policy().Name, len(a.Connections()))
	}
}

// TestRequirePQRule: a negotiate rule with require_pq (and pfs) yields
// connections, initiating and responding, that offer the hybrid ML-KEM
// proposals first and accept only a post-quantum IKE SA; their Child SAs'
// PFS carries the additional key exchange too. A rule without it is
// unchanged.
func TestRequirePQRule(t *testing.T) {
	p := requestSecurity(t, time.Second)
	for _, r := range p.Rules {
		if r.Action == policy.Negotiate {
			r.RequirePQ, r.PFS = true, true
		}
	}
	eng := &fakeEngine{answer: func(context.Context, ike.InitiateOptions) (ike.SAInfo, error) {
		return ike.SAInfo{ID: "ike-1", Auth: "psk"}, nil
	}}
	a, _ := newTestAgent(t, p, eng)
	check := func(c *ike.Connection) {
		t.Helper()
		if !c.RequirePQ || len(c.IKEProposals) < 2 || c.IKEProposals[0].Keywords() != PQIKEProposals[0] || c.IKEProposals[1].Keywords() != PQIKEProposals[1] {
			t.Fatalf("%s: RequirePQ %v, IKE proposals %v", c.Name, c.RequirePQ, c.IKEProposals)
		}
		if esp := c.ESPProposals[0]; len(esp.DH) != 1 || esp.DH[0] != transform.DHCurve25519 || !esp.PostQuantum() {
			t.Fatalf("%s: ESP proposal %s", c.Name, esp)
		}
	}
	var responders int
	for _, c := range a.Connections() {
		if strings.HasPrefix(c.Name, "policy/default-response/") {
			if c.RequirePQ {
				t.Fatalf("the default response rule requires PQ: %s", c.Name)
			}
			continue
		}
		check(c)
		responders++
	}
	if responders == 0 {
		t.Fatal("no responder connections for the rule")
	}
	acquire(a, policy.TCP, 80)
	waitVerdict(t, a, VerdictOnDemand)
	eng.mu.Lock()
	defer eng.mu.Unlock()
	check(eng.initiated[0])
}

// TestPQRequiredFlows: a negotiation this host started that require_pq
// refused, and one it answered and refused, count as pq_required flows.
func TestPQRequiredFlows(t *testing.T) {
	eng := &fakeEngine{answer: func(context.Context, ike.InitiateOptions) (ike.SAInfo, error) {
		return ike.SAInfo{}, errors.New("responder chose a classical suite")
	}}
	a, _ := newTestAgent(t, requestSecurity(t, time.Second), eng)
	a.HandshakeFailed(peerB, false, FlowPQRequired)
	a.HandshakeFailed(peerB, true, FlowPQRequired) // the initiator's own outcome is counted where it initiated
	if s, _ := a.Stats(context.Background()); s.Flows[FlowPQRequired] != 1 {
		t.Errorf("flows %v, want one pq_required", s.Flows)
	}
}
