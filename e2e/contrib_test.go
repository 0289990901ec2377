package e2e

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/iked/iked/internal/testpki"
	"github.com/iked/iked/metrics"
	"github.com/iked/iked/policy/adsource"
)

// The shipped Prometheus rules and Grafana dashboard (contrib/) against a
// running iked: every metric they query is one iked exports, the rules
// pass promtool's checks and unit tests (one per alert), and iked's
// /metrics passes promtool check metrics.

const (
	rulesFile     = "../contrib/prometheus/iked.rules.yml"
	rulesTestFile = "../contrib/prometheus/iked.rules.test.yml"
	dashboardFile = "../contrib/grafana/iked-dashboard.json"
)

// promtool finds promtool (Debian's prometheus package); under CI=true a
// missing one fails the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("promtool not found (CI=true, not skipping): install Debian's prometheus package")
	}
	t.Skip("promtool not found: install Debian's prometheus package")
	return ""
}

// metricNames are the metric names an expression uses: iked's, and the
// process and Go runtime metrics iked serves too. Histogram series are
// named by their family.
var metricName = regexp.MustCompile(`\b((?:iked|process|go)_[a-z0-9_]+)\b`)

func metricNames(expr string) []string {
	var out []string
	for _, m := range metricName.FindAllString(expr, -1) {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if f, ok := strings.CutSuffix(m, suffix); ok && strings.HasPrefix(f, "iked_handshake_duration_seconds") {
				m = f
			}
		}
		out = append(out, m)
	}
	return out
}

// dashboardExprs returns every query of the dashboard: the panels'
// targets and the template variables'.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d any
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var out []string
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch x := v.(type) {
		case map[string]any:
			for k, v := range x {
				walk(v, k)
			}
		case []any:
			for _, v := range x {
				walk(v, key)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				out = append(out, x)
			}
		}
	}
	walk(d, "")
	return out
}

// ruleExprs returns the alert names and expressions of the rules file.
func ruleExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// conditionalFamilies are the families iked serves only with a setting a
// loopback test daemon does not have: the userspace data plane, an
// assigned policy, Kerberos, a policy from the directory. They are the
// families the collectors iked registers for them describe.
func conditionalFamilies() map[string]string {
	out := map[string]string{}
	for why, c := range map[string]prometheus.Collector{
		"the userspace data plane":   metrics.NewDataPlaneCollector(nil),
		"an assigned IPsec policy":   metrics.NewPolicyCollector(nil),
		"Kerberos configured":        metrics.KerberosCollectorWhen(nil),
		"policy.source: ldap":        adsource.NewCollector(nil),
		"an address blocked (limit)": metrics.NewPeerLimitCollector(nil),
	} {
		ch := make(chan *prometheus.Desc, 32)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			if m := regexp.MustCompile(`fqName: "([^"]+)"`).FindStringSubmatch(d.String()); m != nil {
				out[m[1]] = why
			}
		}
	}
	return out
}

// TestContribNamesIkedMetrics: the dashboard's and the alert rules' every
// metric name is in a running iked's /metrics (one with an established
// SA, certificates and a connection that is down), or, for a family
// that needs a data plane, policy or method the test daemon lacks, is
// what iked's collector for it describes; and promtool check metrics
// passes on the scrape.
func TestContribNamesIkedMetrics(t *testing.T) {
	pki := testpki.New(t, "E2E contrib", "p256", 0)
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.8"), uint16(freePort(t, "127.0.0.8")))
	da := startDaemon(t, "alice", a, certConfig(t, t.TempDir(), pki, "alice.example", a, b, "bob.example", pki)+
		"    local_id: fqdn:alice.example\n    start_action: initiate\n    reauth_time: 2h\n")
	startDaemon(t, "bob", b, certConfig(t, t.TempDir(), pki, "bob.example", b, a, "alice.example", pki)+"    local_id: fqdn:bob.example\n")
	waitUntil(t, "alice's start action to bring the SA up", func() bool {
		sas := da.sas()
		return len(sas) == 1 && sas[0].State == "established" && len(sas[0].Children) == 1
	})
	body := scrapeAll(t, da)
	served := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			served[f[2]] = true
		}
	}
	cond := conditionalFamilies()
	check := func(where, expr string) {
		t.Helper()
		for _, name := range metricNames(expr) {
			if served[name] {
				continue
			}
			if why, ok := cond[name]; ok {
				t.Logf("%s: %s is served with %s", where, name, why)
				continue
			}
			t.Errorf("%s queries %s, which iked does not export (expression %q)", where, name, expr)
		}
	}
	exprs := dashboardExprs(t)
	if len(exprs) < 20 {
		t.Fatalf("only %d queries found in the dashboard", len(exprs))
	}
	for _, e := range exprs {
		check("the dashboard", e)
	}
	for alert, e := range ruleExprs(t) {
		check("alert "+alert, e)
	}

	pt := promtool(t)
	cmd := exec.Command(pt, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestAlertRules: promtool check rules passes, and promtool test rules
// passes with a test for every alert.
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	if out, err := exec.Command(pt, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(pt, "test", "rules", filepath.Base(rulesTestFile))
	cmd.Dir = filepath.Dir(rulesTestFile)
	if out, err := cmd.CombinedOutput(); err != nil || !bytes.Contains(out, []byte("SUCCESS")) {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
	b, err := os.ReadFile(rulesTestFile)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	alerts := ruleExprs(t)
	for alert := range alerts {
		if !fires[alert] || !quiet[alert] {
			t.Errorf("alert %s: a test where it fires %v, one where it does not %v", alert, fires[alert], quiet[alert])
		}
	}
	for _, want := range []string{"IkedPeerDown", "IkedHandshakeFailures", "IkedCertificateExpiringSoon", "IkedSACountNearLimit", "IkedPacketsDropped"} {
		if _, ok := alerts[want]; !ok {
			t.Errorf("no alert %s", want)
		}
	}
}
