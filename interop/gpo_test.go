package interop

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/internal/sambaad"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/policy/adsource"
	"github.com/iked/iked/policy/agent"
	"github.com/iked/iked/policy/gpipsec"
)

// The assigned policy from Active Directory (issue 23): a Samba AD DC in
// its own namespace, linked to both hosts of a matrix topology; each
// host's iked reads its policy from the DC (policy.source: ldap) bound with
// its machine account's keytab, and authenticates IKE with Kerberos
// through the same DC.

// adTopology is the matrix topology with a domain controller.
type adTopology struct {
	topo     *topology
	dc       *sambaad.DC
	dcA, dcB netip.Addr // the DC's address on A's and on B's link
	cache    string     // the hosts' cache files' directory
	hostA    string     // machine account of A ("left") and B ("right")
	hostB    string
}

func newADTopology(t *testing.T) *adTopology {
	t.Helper()
	requireRoot(t)
	requireTUN(t)
	requireTools(t, "nft", "tcpdump", "ping")
	sambaad.Require(t)
	topo := newTopology(t)
	dc := sambaad.Start(t, sambaad.Options{Hosts: []string{"left", "right"}, ComputersReadIPsec: true})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("samba log:\n%s", dc.Log())
		}
	})
	n := topo.n
	at := &adTopology{topo: topo, dc: dc, cache: t.TempDir(), hostA: "left", hostB: "right",
		dcA: netip.MustParseAddr(fmt.Sprintf("10.83.%d.1", n)), dcB: netip.MustParseAddr(fmt.Sprintf("10.83.%d.5", n))}
	dc.Connect(topo.I.name, netip.PrefixFrom(at.dcA, 30), netip.MustParsePrefix(fmt.Sprintf("10.83.%d.2/30", n)))
	dc.Connect(topo.S.name, netip.PrefixFrom(at.dcB, 30), netip.MustParsePrefix(fmt.Sprintf("10.83.%d.6/30", n)))
	return at
}

// hostYAML is a host's configuration: its Kerberos machine credentials,
// and either a directory policy (ref) or a built-in (assign).
func (at *adTopology) hostYAML(side string, ref, assign string) string {
	self, peer, dcAddr := at.hostA, at.hostB, at.dcA
	if side == "B" {
		self, peer, dcAddr = at.hostB, at.hostA, at.dcB
	}
	dom := at.dc.DNSDomain()
	y := fmt.Sprintf(`authentication:
  corp: {method: kerberos, realm: %q, kdcs: ["%s:88"], keytab: %q, principal: "host/%s.%s", service: "host/%s.%s", allowed: ["@%s"], max_skew: 2m}
policy:
  retry_after: 5s
`, at.dc.Realm, dcAddr, at.dc.Keytab(self), self, dom, peer, dom, at.dc.Realm)
	if assign != "" {
		return y + "  assign: " + assign + "\n"
	}
	return y + fmt.Sprintf(`  source: ldap
  ldap: {domain: %q, dcs: ["%s"], spn: "ldap/dc1.%s", policy: %q, interval: 2s, cache: %q}
`, dom, dcAddr, dom, ref, filepath.Join(at.cache, side+".json"))
}

func (at *adTopology) start(t *testing.T, side, ref, assign string) *iked {
	t.Helper()
	ns, addr := at.topo.I, at.topo.IkedAddr
	if side == "B" {
		ns, addr = at.topo.S, at.topo.CharonAddr
	}
	return startIked(t, ns, policyIked(addr, at.hostYAML(side, ref, assign), nil))
}

func policyInfo(t *testing.T, d *iked) agent.PolicyInfo {
	t.Helper()
	out, err := d.ikectl(10*time.Second, "policy", "--json")
	if err != nil {
		t.Fatalf("ikectl policy: %v\n%s", err, out)
	}
	var p agent.PolicyInfo
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("ikectl policy --json: %v\n%s", err, out)
	}
	return p
}

type sourceInfo struct {
	adsource.Status
	Notes []string `json:"notes"`
}

func policySource(t *testing.T, d *iked) sourceInfo {
	t.Helper()
	out, err := d.ikectl(10*time.Second, "policy", "--source", "--json")
	if err != nil {
		t.Fatalf("ikectl policy --source: %v\n%s", err, out)
	}
	var s sourceInfo
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("ikectl policy --source --json: %v\n%s", err, out)
	}
	return s
}

// sameRules compares two policies as ikectl policy shows them, rule by
// rule (matched by their filters) and field by field: action, security
// methods, authentication methods, accept unsecured, fallback, PFS,
// connection type, tunnel; then the default response rule. Names and
// descriptions are not compared.
func sameRules(got, want agent.PolicyInfo) []string {
	var diffs []string
	if len(got.Rules) != len(want.Rules) {
		diffs = append(diffs, fmt.Sprintf("%d rules, want %d", len(got.Rules), len(want.Rules)))
	}
	key := func(r agent.RuleInfo) string {
		f := slices.Clone(r.Filters)
		slices.Sort(f)
		return strings.Join(f, "; ")
	}
	norm := func(r agent.RuleInfo) agent.RuleInfo { r.Name = ""; r.Filters = nil; return r }
	for _, w := range want.Rules {
		i := slices.IndexFunc(got.Rules, func(g agent.RuleInfo) bool { return key(g) == key(w) })
		if i < 0 {
			diffs = append(diffs, fmt.Sprintf("no rule with the filters %s", key(w)))
			continue
		}
		if g := got.Rules[i]; !reflect.DeepEqual(norm(g), norm(w)) {
			diffs = append(diffs, fmt.Sprintf("rule %s:\n got %+v\nwant %+v", w.Name, norm(g), norm(w)))
		}
	}
	g, w := got.DefaultResponse, want.DefaultResponse
	if (g == nil) != (w == nil) || g != nil && !reflect.DeepEqual(norm(*g), norm(*w)) {
		diffs = append(diffs, fmt.Sprintf("default response:\n got %+v\nwant %+v", g, w))
	}
	return diffs
}

// TestPolicyFromADWindowsDefaults: the three Windows default policies the
// domain starts with are read from the DC, decoded and shown by ikectl
// policy with the same rules, actions, methods and flags as iked's
// built-ins, compared field by field; ikectl policy --source says they came
// from the DC, and when.
func TestPolicyFromADWindowsDefaults(t *testing.T) {
	at := newADTopology(t)
	for windows, builtin := range map[string]string{
		"Client (Respond Only)":            policy.ClientRespondOnly,
		"Server (Request Security)":        policy.ServerRequestSecurity,
		"Secure Server (Require Security)": policy.SecureServerRequireSecurity,
	} {
		t.Run(strings.Fields(windows)[0], func(t *testing.T) {
			before := time.Now()
			a := at.start(t, "A", windows, "")
			b := at.start(t, "B", "", builtin)
			got, want := policyInfo(t, a), policyInfo(t, b)
			if got.Name != windows {
				t.Errorf("policy name %q, want %q", got.Name, windows)
			}
			for _, d := range sameRules(got, want) {
				t.Errorf("%s vs %s: %s", windows, builtin, d)
			}
			src := policySource(t, a)
			if src.Origin != adsource.FromDirectory || src.DC != at.dcA.String()+":389" || src.ReadAt.Before(before.Add(-time.Second)) || src.Stamp.Count < 22 {
				t.Errorf("policy source: %+v", src.Status)
			}
			if !strings.Contains(strings.Join(src.Notes, "\n"), "cannot be negotiated by iked") {
				t.Errorf("the notes do not report the replaced security methods:\n%s", strings.Join(src.Notes, "\n"))
			}
			a.stop()
			b.stop()
		})
	}

	// The domain controllers found by DNS: iked asks the DC's DNS server for
	// _ldap._tcp.dc._msdcs.<domain> (SRV), binds to the target (whose
	// ldap/ principal Samba's KDC does not know: host/ is used) and
	// exempts its address. The provisioned records name dc1 at 10.80.0.1:
	// the DC gets that address too, routed from A's namespace.
	t.Run("DCsByDNSSRV", func(t *testing.T) {
		srvAddr := "10.80.0.1"
		if err := ipCmd("-n", at.dc.NS, "addr", "add", srvAddr+"/32", "dev", "lo"); err != nil {
			t.Fatal(err)
		}
		if err := ipCmd("-n", at.topo.I.name, "route", "add", srvAddr+"/32", "via", at.dcA.String()); err != nil {
			t.Fatal(err)
		}
		// ip netns exec mounts /etc/netns/NAME/resolv.conf over the
		// namespace's /etc/resolv.conf.
		etc := filepath.Join("/etc/netns", at.topo.I.name)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(etc) })
		if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+at.dcA.String()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		dom := at.dc.DNSDomain()
		y := strings.SplitAfter(at.hostYAML("A", "", policy.ClientRespondOnly), "policy:\n")[0] + fmt.Sprintf(`  retry_after: 5s
  source: ldap
  ldap: {domain: %q, policy: "Server (Request Security)", interval: 2s, cache: %q}
`, dom, filepath.Join(at.cache, "srv.json"))
		a := startIked(t, at.topo.I, ikedOptions{Listen: []string{at.topo.IkedAddr.String() + ":500"}, Backend: "memory", Extra: y})
		src := policySource(t, a)
		if src.Origin != adsource.FromDirectory || src.DC != "dc1."+dom+":389" {
			t.Fatalf("policy source: %+v", src.Status)
		}
		if p := policyInfo(t, a); !slices.Contains(p.Exempt, srvAddr+"/32") {
			t.Errorf("the DC found by SRV is not exempt: %v", p.Exempt)
		}
	})

	// A GPO assigns the policy (its IPSEC object's ipsecOwnersReference,
	// [MS-GPIPSEC] §2.2.2): iked follows the assignment, and a new one
	// applies at the next poll.
	t.Run("AssignedByGPO", func(t *testing.T) {
		const gpo = "{31B2F340-016D-11D2-945F-00C04FB984F9}" // the Default Domain Policy
		base := at.dc.BaseDN()
		machine := "CN=Machine,CN=" + gpo + ",CN=Policies,CN=System," + base
		for _, cn := range []string{"CN=Microsoft," + machine, "CN=Windows,CN=Microsoft," + machine} {
			if err := at.dc.LDIF("dn: " + cn + "\nobjectClass: container\n"); err != nil && !strings.Contains(err.Error(), "already exists") {
				t.Fatal(err)
			}
		}
		policyDN := func(guid string) string { return "CN=ipsecPolicy" + guid + ",CN=IP Security,CN=System," + base }
		ipsec := adsource.GPOIPsecDN(gpo, base)
		if err := at.dc.LDIF(fmt.Sprintf("dn: %s\nobjectClass: ipsecPolicy\nipsecName: Secure Server (Require Security)\nipsecOwnersReference: %s\n",
			ipsec, policyDN("{7238523C-70FA-11D1-864C-14A300000000}"))); err != nil {
			t.Fatal(err)
		}
		dom := at.dc.DNSDomain()
		y := strings.SplitAfter(at.hostYAML("A", "", policy.ClientRespondOnly), "policy:\n")[0] + fmt.Sprintf(`  retry_after: 5s
  source: ldap
  ldap: {domain: %q, dcs: ["%s"], spn: "ldap/dc1.%s", gpo: %q, interval: 1s, cache: %q}
`, dom, at.dcA, dom, gpo, filepath.Join(at.cache, "gpo.json"))
		a := startIked(t, at.topo.I, ikedOptions{Listen: []string{at.topo.IkedAddr.String() + ":500"}, Backend: "memory", Extra: y})
		if got := policyInfo(t, a).Name; got != "Secure Server (Require Security)" {
			t.Fatalf("the GPO's policy is %q", got)
		}
		if src := policySource(t, a); src.Assigned != policyDN("{7238523C-70FA-11D1-864C-14A300000000}") {
			t.Errorf("ikectl policy --source: assigned %q", src.Assigned)
		}
		if err := at.dc.LDIF(fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: ipsecOwnersReference\nipsecOwnersReference: %s\n",
			ipsec, policyDN("{72385230-70FA-11D1-864C-14A300000000}"))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, func() string {
			if got := policyInfo(t, a).Name; got != "Server (Request Security)" {
				return "the new assignment is not applied: " + got
			}
			return ""
		})
	})

	// The other way: ikectl policy export --ldif writes a built-in as
	// MS-GPIPSEC objects; imported into the domain, iked reads it back
	// (iked --check-policy-ldap, then a running iked) with the same rules.
	t.Run("ExportedBuiltin_ImportedAndReadBack", func(t *testing.T) {
		b := at.start(t, "B", "", policy.SecureServerRequireSecurity)
		ldif, err := b.ikectl(10*time.Second, "policy", "export", "--ldif", "--base-dn", at.dc.BaseDN())
		if err != nil {
			t.Fatalf("ikectl policy export: %v\n%s", err, ldif)
		}
		if !strings.Contains(ldif, "# ") || !strings.Contains(ldif, "changetype: modify") {
			t.Errorf("the export lacks its notes or its reference records:\n%s", ldif)
		}
		if err := at.dc.LDIF(ldif); err != nil {
			t.Fatal(err)
		}
		a := at.start(t, "A", policy.SecureServerRequireSecurity, "")
		out, err := at.topo.I.command(t.Context(), filepath.Join(binDir, "iked"), "--check-policy-ldap", a.config).CombinedOutput()
		if err != nil || !strings.Contains(string(out), fmt.Sprintf("policy %q read from %s:389", policy.SecureServerRequireSecurity, at.dcA)) {
			t.Errorf("iked --check-policy-ldap: %v\n%s", err, out)
		}
		for _, d := range sameRules(policyInfo(t, a), policyInfo(t, b)) {
			t.Errorf("read back: %s", d)
		}
	})
}

// gpoDomainDN etc. are the directory objects the enforcement test makes.
const (
	encodedPolicy = "iked lab policy"
	copiedPolicy  = "Secure Server (copy)"
	blockedPortA  = 24 // blocked by A's copied policy
)

// encodedLab is the policy B gets, written to the directory by iked's own
// encoder: telnet blocked, all IP traffic negotiated (unsecured inbound
// accepted, answered secured), ICMP permitted, the default response rule.
func encodedLab(telnet uint16) *policy.Policy {
	lists := policy.BuiltinFilterLists()
	me, any := policy.Address{Kind: policy.MyAddress}, policy.Address{Kind: policy.AnyAddress}
	tel := &policy.FilterList{Name: "telnet", Filters: []policy.Filter{
		{Src: me, Dst: any, Protocol: policy.TCP, DstPort: telnet, Mirrored: true},
		{Src: any, Dst: me, Protocol: policy.TCP, DstPort: telnet, Mirrored: true}}}
	m := policy.DefaultSecurityMethods()
	return &policy.Policy{Name: encodedPolicy, Description: "written by iked's MS-GPIPSEC encoder",
		Rules: []*policy.Rule{
			{Name: "no-telnet", Filters: tel, Action: policy.Block},
			{Name: "secure-all", Filters: lists[policy.AllIPTraffic], Action: policy.Negotiate, Methods: m, Auth: []string{"corp"}, AcceptUnsecured: true},
			{Name: "icmp", Filters: lists[policy.AllICMPTraffic], Action: policy.Permit},
		},
		DefaultResponse: policy.DefaultResponse{Active: true, Methods: m, Auth: []string{"corp"}}}
}

func exportLDIF(t *testing.T, p *policy.Policy, base string) (string, []*gpipsec.Object) {
	t.Helper()
	objs, _ := gpipsec.Export(p, gpipsec.ExportOptions{DomainDN: base, Auth: func(string) (gpipsec.AuthMethod, bool) {
		return gpipsec.AuthMethod{Type: gpipsec.AuthKerberos}, true
	}})
	var buf bytes.Buffer
	if err := gpipsec.WriteLDIF(&buf, objs); err != nil {
		t.Fatal(err)
	}
	return buf.String(), objs
}

// copiedSecureServer copies the provisioned "Secure Server (Require
// Security)" objects under new GUIDs and adds a rule made of modified
// copies of provisioned blobs: the "All ICMP Traffic" filter with its
// protocol changed to TCP and a destination port set, and the "Permit"
// filter action turned into a block action.
func copiedSecureServer(t *testing.T, base string) string {
	t.Helper()
	f, err := os.Open("/usr/share/samba/setup/provision.ldif")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := gpipsec.ReadLDIF(f, map[string]string{"DOMAINDN": base})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := gpipsec.NewDirectory(objs)
	if err != nil {
		t.Fatal(err)
	}
	src, err := dir.Resolve("Secure Server (Require Security)")
	if err != nil {
		t.Fatal(err)
	}
	// New GUIDs: the last 12 digits of each GUID become C0DE…
	rename := func(s string) string {
		for _, o := range objs {
			id := strings.Trim(o.ID, "{}")
			s = strings.ReplaceAll(s, id, id[:24]+"C0DE"+id[28:])
		}
		return s
	}
	var out []*gpipsec.Object
	add := func(o *gpipsec.Object) *gpipsec.Object {
		c := *o
		c.DN, c.ID, c.ISAKMPRef, c.NegotiationRef = rename(o.DN), rename(o.ID), rename(o.ISAKMPRef), rename(o.NegotiationRef)
		c.NFARefs, c.FilterRefs, c.OwnersRefs = nil, nil, nil
		for _, r := range o.NFARefs {
			c.NFARefs = append(c.NFARefs, rename(r))
		}
		for _, r := range o.FilterRefs {
			c.FilterRefs = append(c.FilterRefs, rename(r))
		}
		c.Data = slices.Clone(o.Data)
		out = append(out, &c)
		return &c
	}
	pol := add(src.Object)
	pol.Name = copiedPolicy
	add(src.ISAKMP.Object)
	seen := map[string]bool{}
	var icmp, permit *gpipsec.Object
	for _, r := range src.Rules {
		add(r.Object)
		if !seen[r.Action.Object.DN] {
			seen[r.Action.Object.DN] = true
			a := add(r.Action.Object)
			if r.Action.Kind == gpipsec.ActionPermit {
				permit = r.Action.Object
				_ = a
			}
		}
		for _, fl := range r.Filters {
			if !seen[fl.Object.DN] {
				seen[fl.Object.DN] = true
				add(fl.Object)
				if fl.Object.Name == "All ICMP Traffic" {
					icmp = fl.Object
				}
			}
		}
	}
	if icmp == nil || permit == nil {
		t.Fatal("the provisioned Secure Server policy has no ICMP filter or permit action")
	}
	// The modified copies. The ICMP filter's single legacy filter ends
	// with protocol (4 bytes), source and destination port (2 each), is
	// tunnel, special (1 each), options (2) and the pad byte.
	fb := slices.Clone(icmp.Data)
	end := len(fb) - 1 - 2 - 1 - 1 - 2 - 2 - 4
	if fb[end] != 1 {
		t.Fatalf("ICMP filter blob: protocol byte at %d is %d", end, fb[end])
	}
	fb[end] = 6
	fb[end+4+2], fb[end+4+3] = blockedPortA, 0
	nfaID, filtID, negID := "{1CEDC0DE-0000-4000-8000-0000000000A1}", "{1CEDC0DE-0000-4000-8000-0000000000A2}", "{1CEDC0DE-0000-4000-8000-0000000000A3}"
	cont := "CN=IP Security,CN=System," + base
	block := &gpipsec.Object{Class: gpipsec.ClassNegotiation, DN: "CN=ipsecNegotiationPolicy" + negID + "," + cont, ID: negID, Name: "Block (modified copy of Permit)",
		DataType: permit.DataType, Data: slices.Clone(permit.Data), NegotiationType: permit.NegotiationType, NegotiationAction: gpipsec.ActionBlock.String()}
	filt := &gpipsec.Object{Class: gpipsec.ClassFilter, DN: "CN=ipsecFilter" + filtID + "," + cont, ID: filtID, Name: "TCP 24 (modified copy of All ICMP Traffic)",
		DataType: icmp.DataType, Data: fb}
	var nfaBlob []byte
	for _, o := range objs {
		if o.Class == gpipsec.ClassNFA && strings.Contains(o.DN, "7238523E") {
			nfaBlob = slices.Clone(o.Data)
		}
	}
	nfa := &gpipsec.Object{Class: gpipsec.ClassNFA, DN: "CN=ipsecNFA" + nfaID + "," + cont, ID: nfaID, Name: "block TCP 24",
		DataType: "598", Data: nfaBlob, NegotiationRef: block.DN, FilterRefs: []string{filt.DN}, OwnersRefs: []string{pol.DN}}
	pol.NFARefs = append(pol.NFARefs, nfa.DN)
	out = append(out, block, filt, nfa)
	var buf bytes.Buffer
	if err := gpipsec.WriteLDIF(&buf, out); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestPolicyFromADEnforced: a policy written to the directory by iked's
// encoder (B) and one made of copied and modified provisioned blobs (A)
// are assigned and enforced between the hosts (ESP for TCP, ICMP in
// clear, blocked ports dropped); the encoded one is changed in the
// directory and the change applies at the next poll without dropping the
// SA it still allows; with the DC stopped the running policy stays, and a
// restarted iked runs the cached one.
func TestPolicyFromADEnforced(t *testing.T) {
	at := newADTopology(t)
	base := at.dc.BaseDN()
	enc, encObjs := exportLDIF(t, encodedLab(telnetPort), base)
	if err := at.dc.LDIF(enc); err != nil {
		t.Fatal(err)
	}
	if err := at.dc.LDIF(copiedSecureServer(t, base)); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []*netns{at.topo.I, at.topo.S} {
		for _, port := range []int{matrixEchoPort, telnetPort, blockedPortA} {
			echoServer(t, ns, port)
		}
	}
	a := at.start(t, "A", copiedPolicy, "")
	b := at.start(t, "B", encodedPolicy, "")
	m := &matrix{t: t, topo: at.topo, a: a, b: b, addrA: at.topo.IkedAddr, addrB: at.topo.CharonAddr}
	if got := policyInfo(t, a); len(got.Rules) != 3 || !strings.Contains(fmt.Sprint(got.Rules), "tcp") {
		t.Fatalf("A's policy: %+v", got)
	}

	t.Run("Assigned_TCPSecuredICMPClearBlockedPortsDropped", func(t *testing.T) {
		m.t = t
		m.startCapture()
		m.wantTCP(at.topo.I, m.addrB, matrixEchoPort, 15*time.Second)
		if got := m.pings(at.topo.I, m.addrB, 3); got != 3 {
			t.Errorf("%d of 3 pings answered: ICMP is permitted", got)
		}
		m.wantNoTCP(at.topo.I, m.addrB, telnetPort, 3*time.Second) // B blocks telnet
		// A blocks connections it makes to port 24 (its rule's filter is
		// "me to any, TCP port 24, mirrored", as the copied ICMP filter
		// was "me to any"); B would have negotiated them.
		m.wantNoTCP(at.topo.I, m.addrB, blockedPortA, 3*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 || w.icmp == 0 {
			t.Errorf("want TCP only as ESP, ICMP in clear: %+v%s", w, m.logs())
		}
		sas, err := a.SAs()
		if err != nil || len(sas) != 1 || sas[0].Auth != "kerberos" {
			t.Fatalf("A's SAs: %+v %v", sas, err)
		}
		m.wantVerdict(a, m.addrB, matrixEchoPort, "secured")
		m.wantVerdict(b, m.addrA, telnetPort, "blocked")
		m.wantVerdict(a, m.addrB, blockedPortA, "blocked")
	})

	t.Run("ChangedInTheDirectory_AppliedAtThePollKeepingTheSA", func(t *testing.T) {
		m.t = t
		before := m.sasOf(a)
		srcBefore := policySource(t, b)
		// B's telnet rule now blocks port 25 instead: the blob iked's
		// encoder writes for the changed list replaces the old one.
		_, changed := exportLDIF(t, encodedLab(25), base)
		var filterDN string
		var blob []byte
		for i, o := range encObjs {
			if o.Class == gpipsec.ClassFilter && o.Name == "telnet" {
				filterDN, blob = o.DN, changed[i].Data
			}
		}
		mod := fmt.Sprintf("dn: %s\nchangetype: modify\nreplace: ipsecData\nipsecData:: %s\n", filterDN, b64(blob))
		if err := at.dc.LDIF(mod); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, func() string {
			if s := policySource(t, b); s.Fetches[adsource.OutcomeChanged] <= srcBefore.Fetches[adsource.OutcomeChanged] {
				return fmt.Sprintf("B has not applied the change yet: %+v", s.Status)
			}
			return ""
		})
		if s := policySource(t, b); s.Stamp.HighestUSN <= srcBefore.Stamp.HighestUSN {
			t.Errorf("the change stamp did not move: %v -> %v", srcBefore.Stamp, s.Stamp)
		}
		m.startCapture()
		m.wantTCP(at.topo.I, m.addrB, telnetPort, 10*time.Second) // port 23 is negotiated now
		m.wantNoTCP(at.topo.I, m.addrB, 25, 3*time.Second)
		if w := m.wire(); w.clearTCP[telnetPort] != 0 || w.esp == 0 {
			t.Errorf("telnet after the change: want ESP only, got %+v", w)
		}
		if after := m.sasOf(a); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Errorf("A's SAs %v became %v: the new policy still allows them", before, after)
		}
		wantLog(t, "B", b.Log(), "policy read from the directory")
		// SIGHUP re-reads the file; the directory's policy stays assigned,
		// mapped again with the file's methods, and the SA is kept.
		if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 10*time.Second, func() string {
			if !strings.Contains(b.Log(), "configuration reloaded") {
				return "B logged no reload"
			}
			return ""
		})
		if got := policyInfo(t, b); got.Name != encodedPolicy || len(got.Rules) != 3 {
			t.Errorf("B's policy after SIGHUP: %+v", got)
		}
		if after := m.sasOf(a); strings.Join(after, ",") != strings.Join(before, ",") {
			t.Errorf("A's SAs %v became %v after B's reload", before, after)
		}
	})

	t.Run("DCStopped_TheRunningAndTheCachedPolicyStay", func(t *testing.T) {
		m.t = t
		at.dc.Stop()
		errs := policySource(t, b).Fetches[adsource.OutcomeError]
		waitFor(t, 20*time.Second, func() string {
			if s := policySource(t, b); s.Fetches[adsource.OutcomeError] <= errs || s.LastError == "" {
				return "no failed poll yet"
			}
			return ""
		})
		if got := policyInfo(t, b); got.Name != encodedPolicy || len(got.Rules) != 3 {
			t.Errorf("B's policy with the DC down: %+v", got)
		}
		metrics, err := b.Metrics()
		if v, ok := metricValue(metrics, "iked_policy_source_fetches_total", `outcome="error"`); err != nil || !ok || v < 1 {
			t.Errorf("B: iked_policy_source_fetches_total{outcome=\"error\"} = %v (%v)", v, err)
		}
		if v, ok := metricValue(metrics, "iked_policy_source_fetches_total", `outcome="changed"`); !ok || v < 2 {
			t.Errorf("B: iked_policy_source_fetches_total{outcome=\"changed\"} = %v, want the first read and the change", v)
		}
		// A restarts while the DC is down: it runs the cached policy.
		a.stop()
		a2 := at.start(t, "A", copiedPolicy, "")
		m.a = a2
		s := policySource(t, a2)
		if s.Origin != adsource.FromCache || s.LastError == "" || s.Fetches[adsource.OutcomeCache] != 1 {
			t.Errorf("A's policy source after a restart with the DC down: %+v", s.Status)
		}
		if got := policyInfo(t, a2); got.Name != copiedPolicy || len(got.Rules) != 3 {
			t.Errorf("A's cached policy: %+v", got)
		}
		wantLog(t, "A", a2.Log(), "using the cached one")
		if metrics, err := a2.Metrics(); err != nil {
			t.Error(err)
		} else if v, ok := metricValue(metrics, "iked_policy_source_from_cache", ""); !ok || v != 1 {
			t.Errorf("A: iked_policy_source_from_cache = %v, want 1", v)
		}
		// The cached policy is enforced: ICMP permitted, port 24 blocked,
		// and everything else must be secured. With the KDC (the DC) down
		// no new Kerberos SA can be made, so B's connection, accepted in
		// clear, is answered by A only through IPsec: it fails, and not
		// one clear segment leaves A.
		m.startCapture()
		if got := m.pings(at.topo.S, m.addrA, 3); got != 3 {
			t.Errorf("%d of 3 pings answered", got)
		}
		m.wantNoTCP(at.topo.I, m.addrB, blockedPortA, 3*time.Second)
		m.wantNoTCP(at.topo.S, m.addrA, matrixEchoPort, 4*time.Second)
		w := m.wire()
		for _, f := range w.clear {
			if strings.HasPrefix(f, m.addrA.String()+":") {
				t.Errorf("A sent a clear TCP segment under its cached policy: %s", f)
			}
		}
		m.wantVerdict(a2, m.addrB, blockedPortA, "blocked")
	})
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
