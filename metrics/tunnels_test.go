package metrics

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/iked/iked/ike"
)

// fakeTunnels is a TunnelSource whose state the test sets.
type fakeTunnels struct {
	mu     sync.Mutex
	conns  []*ike.Connection
	sas    []ike.SAInfo
	extras map[string]ike.SAExtra
}

func (f *fakeTunnels) SAs() []ike.SAInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]ike.SAInfo(nil), f.sas...)
}

// ConnStates sums the SAs as the engine does.
func (f *fakeTunnels) ConnStates() map[string]ike.ConnState {
	out := map[string]ike.ConnState{}
	for _, sa := range f.SAs() {
		cs := out[sa.Connection]
		cs.IKESAs++
		if sa.State == "established" {
			cs.Established++
		}
		for _, c := range sa.Children {
			cs.ChildSAs++
			cs.BytesIn += c.BytesIn
			cs.BytesOut += c.BytesOut
			cs.PacketsIn += c.PacketsIn
			cs.PacketsOut += c.PacketsOut
		}
		out[sa.Connection] = cs
	}
	return out
}

func (f *fakeTunnels) SAExtras() map[string]ike.SAExtra {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.extras
}

func (f *fakeTunnels) Connections() []*ike.Connection {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func (f *fakeTunnels) set(sas ...ike.SAInfo) {
	f.mu.Lock()
	f.sas = sas
	f.mu.Unlock()
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func child(spiIn string, bytesIn, bytesOut uint64) ike.ChildInfo {
	return ike.ChildInfo{
		SPIIn: spiIn, SPIOut: "0d0e0f10", Protocol: "esp", Mode: "tunnel", LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24", "10.3.0.0/16"},
		Algorithms: "AES_GCM_16-256/NO_EXT_SEQ", BytesIn: bytesIn, BytesOut: bytesOut, PacketsIn: bytesIn / 100, PacketsOut: bytesOut / 100,
		Installed: t0.Add(-90 * time.Second),
	}
}

func siteA(children ...ike.ChildInfo) ike.SAInfo {
	return ike.SAInfo{
		ID: "ike-1", Connection: "site-a", State: "established", Role: "initiator", LocalAddr: "192.0.2.1:4500", RemoteAddr: "198.51.100.2:4500",
		LocalID: "fqdn:a.example", RemoteID: "fqdn:b.example", Auth: "psk", Algorithms: "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519",
		Established: t0.Add(-300 * time.Second), Children: children,
	}
}

func newFakeTunnels() *fakeTunnels {
	return &fakeTunnels{
		conns: []*ike.Connection{{Name: "site-a"}, {Name: "site-b"}},
		extras: map[string]ike.SAExtra{"ike-1": {IKERekey: t0.Add(time.Hour), Children: map[string]ike.ChildExtra{
			"c1a2b3c4": {Rekey: t0.Add(50 * time.Minute)},
		}}},
	}
}

const wantTunnels = `
# HELP iked_child_sa_bytes_total Octets the Child SA carried, by direction (in, out); a rekey makes a new Child SA and a new series.
# TYPE iked_child_sa_bytes_total counter
iked_child_sa_bytes_total{child="site-a",connection="site-a",direction="in",local_ts="10.1.0.0/24",remote_ts="10.2.0.0/24,10.3.0.0/16",spi_in="c1a2b3c4"} 1200
iked_child_sa_bytes_total{child="site-a",connection="site-a",direction="out",local_ts="10.1.0.0/24",remote_ts="10.2.0.0/24,10.3.0.0/16",spi_in="c1a2b3c4"} 300
# HELP iked_child_sa_info One series per Child SA, always 1: its state, IKE SA and what was negotiated in the labels.
# TYPE iked_child_sa_info gauge
iked_child_sa_info{algorithms="AES_GCM_16-256/NO_EXT_SEQ",child="site-a",connection="site-a",ike_sa="ike-1",local_ts="10.1.0.0/24",mode="tunnel",protocol="esp",remote_ts="10.2.0.0/24,10.3.0.0/16",spi_in="c1a2b3c4",spi_out="0d0e0f10",state="installed"} 1
# HELP iked_child_sa_installed_seconds Seconds since the Child SA was installed in the data plane.
# TYPE iked_child_sa_installed_seconds gauge
iked_child_sa_installed_seconds{child="site-a",connection="site-a",local_ts="10.1.0.0/24",remote_ts="10.2.0.0/24,10.3.0.0/16",spi_in="c1a2b3c4"} 90
# HELP iked_child_sa_rekey_seconds Seconds until the Child SA is rekeyed (negative: overdue).
# TYPE iked_child_sa_rekey_seconds gauge
iked_child_sa_rekey_seconds{child="site-a",connection="site-a",local_ts="10.1.0.0/24",remote_ts="10.2.0.0/24,10.3.0.0/16",spi_in="c1a2b3c4"} 3000
# HELP iked_connection_bytes_total Octets the connection's Child SAs carried, by direction (in, out); survives rekeys: Child SAs gone are summed in.
# TYPE iked_connection_bytes_total counter
iked_connection_bytes_total{connection="site-a",direction="in"} 1200
iked_connection_bytes_total{connection="site-a",direction="out"} 300
iked_connection_bytes_total{connection="site-b",direction="in"} 0
iked_connection_bytes_total{connection="site-b",direction="out"} 0
# HELP iked_connection_up 1 while the configured connection has an established IKE SA, else 0.
# TYPE iked_connection_up gauge
iked_connection_up{connection="site-a"} 1
iked_connection_up{connection="site-b"} 0
# HELP iked_ike_sa_established_seconds Seconds since the IKE SA was established.
# TYPE iked_ike_sa_established_seconds gauge
iked_ike_sa_established_seconds{connection="site-a",ike_sa="ike-1"} 300
# HELP iked_ike_sa_info One series per IKE SA, always 1: its state and what was negotiated in the labels.
# TYPE iked_ike_sa_info gauge
iked_ike_sa_info{algorithms="AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519",auth="psk",connection="site-a",ike_sa="ike-1",local="192.0.2.1",local_id="fqdn:a.example",remote="198.51.100.2",remote_id="fqdn:b.example",role="initiator",state="established"} 1
# HELP iked_ike_sa_rekey_seconds Seconds until the IKE SA is rekeyed (negative: overdue).
# TYPE iked_ike_sa_rekey_seconds gauge
iked_ike_sa_rekey_seconds{connection="site-a",ike_sa="ike-1"} 3600
# HELP iked_metrics_per_sa_exported 1 when this scrape carries the per-SA series (iked_ike_sa_*, iked_child_sa_*), 0 when metrics_per_sa_limit is 0 or exceeded.
# TYPE iked_metrics_per_sa_exported gauge
iked_metrics_per_sa_exported 1
`

func TestTunnels(t *testing.T) {
	src := newFakeTunnels()
	src.set(siteA(child("c1a2b3c4", 1200, 300)))
	c := NewTunnelCollector(src, nil, TunnelOptions{PerSALimit: func() int { return 10 }, Now: func() time.Time { return t0 }})
	if err := testutil.CollectAndCompare(c, strings.NewReader(wantTunnels),
		"iked_child_sa_bytes_total", "iked_child_sa_info", "iked_child_sa_installed_seconds", "iked_child_sa_rekey_seconds",
		"iked_connection_bytes_total", "iked_connection_up", "iked_ike_sa_established_seconds", "iked_ike_sa_info",
		"iked_ike_sa_rekey_seconds", "iked_metrics_per_sa_exported"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}

// TestTunnelsPerSALimit: the per-SA series go when the IKE SAs outnumber
// the limit, or with limit 0; the per-connection ones stay.
func TestTunnelsPerSALimit(t *testing.T) {
	src := newFakeTunnels()
	b := siteA(child("00000001", 1, 1))
	b.ID = "ike-2"
	src.set(siteA(child("c1a2b3c4", 1200, 300)), b)
	for _, tc := range []struct {
		limit, perSA int
	}{{2, 1}, {1, 0}, {0, 0}} {
		c := NewTunnelCollector(src, nil, TunnelOptions{PerSALimit: func() int { return tc.limit }})
		n := testutil.CollectAndCount(c, "iked_ike_sa_info", "iked_child_sa_info", "iked_child_sa_bytes_total")
		if want := tc.perSA * (2 + 2 + 4); n != want {
			t.Errorf("limit %d: %d per-SA series, want %d", tc.limit, n, want)
		}
		if n := testutil.CollectAndCount(c, "iked_connection_up"); n != 2 {
			t.Errorf("limit %d: %d connection series, want 2", tc.limit, n)
		}
		if got := testutil.ToFloat64(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
			ch <- collectOne(t, c, "iked_metrics_per_sa_exported")
		})); got != float64(tc.perSA) {
			t.Errorf("limit %d: iked_metrics_per_sa_exported %v", tc.limit, got)
		}
	}
}

// connBytes reads iked_connection_bytes_total{connection, direction="in"}.
func connBytes(t *testing.T, c prometheus.Collector, conn string) float64 {
	t.Helper()
	body := scrape(t, handlerOf(c))
	prefix := `iked_connection_bytes_total{connection="` + conn + `",direction="in"} `
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in\n%s", prefix, body)
	return 0
}

// TestConnectionCountersSurviveRekeys: a Child SA replaced by a rekey, or
// deleted, leaves its traffic in the connection's counters; the counter
// never goes down, even when a scrape misses a Child SA in flight.
func TestConnectionCountersSurviveRekeys(t *testing.T) {
	src := newFakeTunnels()
	totals := NewTotals()
	c := NewTunnelCollector(src, totals, TunnelOptions{})
	src.set(siteA(child("00000001", 1000, 0)))
	if got := connBytes(t, c, "site-a"); got != 1000 {
		t.Fatalf("before the rekey: %v", got)
	}
	// The rekey: the new Child SA is up, the old one carried 1500 in all.
	src.set(siteA(child("00000001", 1500, 0), child("00000002", 0, 0)))
	if got := connBytes(t, c, "site-a"); got != 1500 {
		t.Fatalf("during the rekey: %v", got)
	}
	totals.ChildSADown(ike.ChildSAEvent{Connection: "site-a", SPIIn: 1, BytesIn: 1600})
	src.set(siteA(child("00000002", 200, 0)))
	if got := connBytes(t, c, "site-a"); got != 1800 {
		t.Fatalf("after the rekey: %v, want 1600 of the old Child SA + 200 of the new", got)
	}
	// An IKE SA rekey hands the Child SAs over: a scrape between the two
	// steps sees them in neither SA. The counter holds.
	src.set()
	if got := connBytes(t, c, "site-a"); got != 1800 {
		t.Fatalf("with the Child SA in flight: %v, want 1800 (never down)", got)
	}
	src.set(siteA(child("00000002", 250, 0)))
	if got := connBytes(t, c, "site-a"); got != 1850 {
		t.Fatalf("after the hand-over: %v", got)
	}
	// A connection a reload removed, with no SAs left, goes with its total.
	src.mu.Lock()
	src.conns = src.conns[1:]
	src.mu.Unlock()
	src.set()
	if body := scrape(t, handlerOf(c)); strings.Contains(body, `connection="site-a"`) {
		t.Fatalf("removed connection still exported:\n%s", body)
	}
	if len(totals.snapshot()) != 0 {
		t.Fatalf("totals kept %v", totals.snapshot())
	}
}

func TestCertificates(t *testing.T) {
	mk := func(cn string, serial int64, notAfter time.Time) *x509.Certificate {
		return &x509.Certificate{Subject: pkix.Name{CommonName: cn}, Issuer: pkix.Name{CommonName: "Example CA"},
			SerialNumber: big.NewInt(serial), NotAfter: notAfter}
	}
	gw := mk("gw.example", 0x1a2b, t0.Add(30*24*time.Hour))
	ca := mk("Example CA", 1, t0.Add(3650*24*time.Hour))
	c := NewCertificateCollector(func() []Certificate {
		return []Certificate{{Cert: gw, Kind: CertEndEntity}, {Cert: ca, Kind: CertCA}, {Cert: gw, Kind: CertEndEntity}}
	})
	want := `
# HELP iked_certificate_expiry_timestamp_seconds When a loaded certificate expires (its notAfter, Unix time): own certificates, intermediates and CAs.
# TYPE iked_certificate_expiry_timestamp_seconds gauge
iked_certificate_expiry_timestamp_seconds{issuer="CN=Example CA",kind="ca",serial="01",subject="CN=Example CA"} 2.0561904e+09
iked_certificate_expiry_timestamp_seconds{issuer="CN=Example CA",kind="end_entity",serial="1a:2b",subject="CN=gw.example"} 1.7434224e+09
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestLimits(t *testing.T) {
	c := NewLimitCollector(func() map[string]int {
		return map[string]int{LimitCookieThreshold: 10, LimitHalfOpenPerPeer: 0, LimitPerSAIKESAs: 1000}
	})
	want := `
# HELP iked_limit The configured limits that SA counts run into, by name; a limit that is off is not exported.
# TYPE iked_limit gauge
iked_limit{limit="cookie_threshold"} 10
iked_limit{limit="metrics_per_sa_limit"} 1000
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestKerberosOnlyWhenConfigured: the Kerberos families are served only
// while Kerberos is configured.
func TestKerberosOnlyWhenConfigured(t *testing.T) {
	var on bool
	var mu sync.Mutex
	h := Handler(&fakeSource{}, KerberosCollectorWhen(func() bool { mu.Lock(); defer mu.Unlock(); return on }))
	if body := scrape(t, h); strings.Contains(body, "iked_kerberos_") {
		t.Fatal("Kerberos families served with no Kerberos configured")
	}
	mu.Lock()
	on = true
	mu.Unlock()
	if body := scrape(t, h); !strings.Contains(body, "\niked_kerberos_kdc_requests_total ") {
		t.Fatal("Kerberos families missing with Kerberos configured")
	}
	if body := scrape(t, Handler(&fakeSource{})); strings.Contains(body, "iked_kerberos_") {
		t.Fatal("Handler serves Kerberos families on its own")
	}
}

func handlerOf(c prometheus.Collector) http.Handler {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// scrape GETs h and returns the body.
func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
