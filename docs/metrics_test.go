package docs

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iked/iked/metrics"
	"github.com/iked/iked/policy/adsource"
)

// families returns the metric families iked's collectors describe.
func families(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{"iked_build_info": true} // cmd/iked's gauge
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range []prometheus.Collector{
		metrics.NewCollector(nil), metrics.NewTunnelCollector(nil, nil, metrics.TunnelOptions{}),
		metrics.NewCertificateCollector(nil), metrics.NewLimitCollector(nil), metrics.NewDataPlaneCollector(nil),
		metrics.NewPolicyCollector(nil), metrics.NewPeerLimitCollector(nil), metrics.KerberosCollectorWhen(nil),
		adsource.NewCollector(nil),
	} {
		ch := make(chan *prometheus.Desc, 64)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			m := fq.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			out[m[1]] = true
		}
	}
	return out
}

// TestMetricsDocumented: every family iked serves is documented in
// metrics.md (Kerberos's in kerberos.md), and every iked_ name the
// documents give is one iked serves.
func TestMetricsDocumented(t *testing.T) {
	fams := families(t)
	read := func(name string) string {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	docs := map[string]string{"metrics.md": read("metrics.md"), "kerberos.md": read("kerberos.md")}
	for f := range fams {
		doc := "metrics.md"
		if strings.HasPrefix(f, "iked_kerberos_") {
			doc = "kerberos.md"
		}
		if !strings.Contains(docs[doc], "`"+f+"`") {
			t.Errorf("%s does not document %s", doc, f)
		}
	}
	named := regexp.MustCompile("`(iked_[a-z0-9_]+)")
	for doc, text := range docs {
		for _, m := range named.FindAllStringSubmatch(text, -1) {
			name := m[1]
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				name = strings.TrimSuffix(name, s)
			}
			if !fams[name] {
				t.Errorf("%s names %s, which iked does not serve", doc, m[1])
			}
		}
	}
}
