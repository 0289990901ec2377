package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/iked/iked/ike"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeSource returns its stats, counting calls.
type fakeSource struct {
	mu    sync.Mutex
	stats ike.Stats
	calls int
}

func (f *fakeSource) Stats() ike.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.stats
}

func sampleStats() ike.Stats {
	return ike.Stats{
		IKESAs: map[string]int{"established": 3, "connecting": 1},
		EstablishedByProposal: map[string]ike.ProposalCount{
			"aes256gcm16-prfsha384-x25519-ke1_mlkem768": {SAs: 2, PostQuantum: true},
			"aes256gcm16-prfsha256-x25519":              {SAs: 1},
		},
		ChildSAs:            5,
		HalfOpen:            2,
		HandshakesCompleted: map[string]uint64{"initiator": 7},
		HandshakesFailed:    map[string]uint64{"auth_failed": 2, "timeout": 1},
		Retransmissions:     11,
		RetransmitsAnswered: 4,
		PacketsReceived:     100,
		PacketsSent:         90,
		PacketsDropped:      map[string]uint64{ike.DropIntegrity: 6, "martian": 1},
		NotifiesSent:        map[string]uint64{"NO_PROPOSAL_CHOSEN": 3},
		NotifiesReceived:    map[string]uint64{"AUTHENTICATION_FAILED": 1},
		HandshakeDuration: ike.Histogram{
			Bounds: []float64{0.01, 0.1, 1},
			Counts: []uint64{2, 5, 7},
			Count:  8,
			Sum:    3.25,
		},
	}
}

const wantSample = `
# HELP iked_ike_sas Current IKE SAs by state.
# TYPE iked_ike_sas gauge
iked_ike_sas{state="authenticating",version="ikev2"} 0
iked_ike_sas{state="connecting",version="ikev2"} 1
iked_ike_sas{state="deleting",version="ikev2"} 0
iked_ike_sas{state="established",version="ikev2"} 3
# HELP iked_ike_sas_by_proposal Current established IKE SAs by negotiated proposal (proposal syntax) and whether it has a post-quantum key exchange.
# TYPE iked_ike_sas_by_proposal gauge
iked_ike_sas_by_proposal{post_quantum="false",proposal="aes256gcm16-prfsha256-x25519",version="ikev2"} 1
iked_ike_sas_by_proposal{post_quantum="true",proposal="aes256gcm16-prfsha384-x25519-ke1_mlkem768",version="ikev2"} 2
# HELP iked_child_sas Current installed Child SAs.
# TYPE iked_child_sas gauge
iked_child_sas{version="ikev2"} 5
# HELP iked_half_open_ike_sas Current responder IKE SAs between IKE_SA_INIT and IKE_AUTH.
# TYPE iked_half_open_ike_sas gauge
iked_half_open_ike_sas{version="ikev2"} 2
# HELP iked_handshakes_completed_total IKE SAs established, by role of this side.
# TYPE iked_handshakes_completed_total counter
iked_handshakes_completed_total{role="initiator",version="ikev2"} 7
iked_handshakes_completed_total{role="responder",version="ikev2"} 0
# HELP iked_handshakes_failed_total IKE handshakes that failed, by reason.
# TYPE iked_handshakes_failed_total counter
iked_handshakes_failed_total{reason="auth_failed",version="ikev2"} 2
iked_handshakes_failed_total{reason="auth_mismatch",version="ikev2"} 0
iked_handshakes_failed_total{reason="authentication_failed",version="ikev2"} 0
iked_handshakes_failed_total{reason="childless_mismatch",version="ikev2"} 0
iked_handshakes_failed_total{reason="dead_peer",version="ikev2"} 0
iked_handshakes_failed_total{reason="half_open_timeout",version="ikev2"} 0
iked_handshakes_failed_total{reason="invalid_ke",version="ikev2"} 0
iked_handshakes_failed_total{reason="invalid_syntax",version="ikev2"} 0
iked_handshakes_failed_total{reason="no_connection",version="ikev2"} 0
iked_handshakes_failed_total{reason="no_proposal_chosen",version="ikev2"} 0
iked_handshakes_failed_total{reason="other",version="ikev2"} 0
iked_handshakes_failed_total{reason="pq_required",version="ikev2"} 0
iked_handshakes_failed_total{reason="timeout",version="ikev2"} 1
iked_handshakes_failed_total{reason="ts_unacceptable",version="ikev2"} 0
# HELP iked_retransmissions_total Requests this side sent again after a timeout.
# TYPE iked_retransmissions_total counter
iked_retransmissions_total{version="ikev2"} 11
# HELP iked_retransmits_answered_total Peer retransmissions answered from the cached response.
# TYPE iked_retransmits_answered_total counter
iked_retransmits_answered_total{version="ikev2"} 4
# HELP iked_packets_received_total IKE datagrams received.
# TYPE iked_packets_received_total counter
iked_packets_received_total{version="ikev2"} 100
# HELP iked_packets_sent_total IKE datagrams sent.
# TYPE iked_packets_sent_total counter
iked_packets_sent_total{version="ikev2"} 90
# HELP iked_packets_dropped_total Received IKE datagrams not processed, by reason.
# TYPE iked_packets_dropped_total counter
iked_packets_dropped_total{reason="cookie_required",version="ikev2"} 0
iked_packets_dropped_total{reason="half_open_limit",version="ikev2"} 0
iked_packets_dropped_total{reason="integrity",version="ikev2"} 6
iked_packets_dropped_total{reason="invalid_message_id",version="ikev2"} 0
iked_packets_dropped_total{reason="malformed",version="ikev2"} 0
iked_packets_dropped_total{reason="martian",version="ikev2"} 1
iked_packets_dropped_total{reason="oversize",version="ikev2"} 0
iked_packets_dropped_total{reason="rate_limited",version="ikev2"} 0
iked_packets_dropped_total{reason="unexpected",version="ikev2"} 0
iked_packets_dropped_total{reason="unknown_spi",version="ikev2"} 0
iked_packets_dropped_total{reason="unsupported",version="ikev2"} 0
# HELP iked_notifies_sent_total Error notifications sent, by notify type.
# TYPE iked_notifies_sent_total counter
iked_notifies_sent_total{type="AUTHENTICATION_FAILED",version="ikev2"} 0
iked_notifies_sent_total{type="CHILD_SA_NOT_FOUND",version="ikev2"} 0
iked_notifies_sent_total{type="COOKIE",version="ikev2"} 0
iked_notifies_sent_total{type="FAILED_CP_REQUIRED",version="ikev2"} 0
iked_notifies_sent_total{type="INTERNAL_ADDRESS_FAILURE",version="ikev2"} 0
iked_notifies_sent_total{type="INVALID_IKE_SPI",version="ikev2"} 0
iked_notifies_sent_total{type="INVALID_KE_PAYLOAD",version="ikev2"} 0
iked_notifies_sent_total{type="INVALID_MAJOR_VERSION",version="ikev2"} 0
iked_notifies_sent_total{type="INVALID_MESSAGE_ID",version="ikev2"} 0
iked_notifies_sent_total{type="INVALID_SELECTORS",version="ikev2"} 0
iked_notifies_sent_total{type="INVALID_SPI",version="ikev2"} 0
iked_notifies_sent_total{type="INVALID_SYNTAX",version="ikev2"} 0
iked_notifies_sent_total{type="NO_ADDITIONAL_SAS",version="ikev2"} 0
iked_notifies_sent_total{type="NO_PROPOSAL_CHOSEN",version="ikev2"} 3
iked_notifies_sent_total{type="SINGLE_PAIR_REQUIRED",version="ikev2"} 0
iked_notifies_sent_total{type="STATE_NOT_FOUND",version="ikev2"} 0
iked_notifies_sent_total{type="TEMPORARY_FAILURE",version="ikev2"} 0
iked_notifies_sent_total{type="TS_UNACCEPTABLE",version="ikev2"} 0
iked_notifies_sent_total{type="UNSUPPORTED_CRITICAL_PAYLOAD",version="ikev2"} 0
# HELP iked_notifies_received_total Notifications peers sent in INFORMATIONAL requests, by notify type.
# TYPE iked_notifies_received_total counter
iked_notifies_received_total{type="AUTHENTICATION_FAILED",version="ikev2"} 1
# HELP iked_rekeys_total Rekeys completed, by type: child, ike, reauth.
# TYPE iked_rekeys_total counter
iked_rekeys_total{type="child",version="ikev2"} 0
iked_rekeys_total{type="ike",version="ikev2"} 0
iked_rekeys_total{type="reauth",version="ikev2"} 0
# HELP iked_handshake_duration_seconds Time from the start of IKE_SA_INIT to the end of IKE_AUTH.
# TYPE iked_handshake_duration_seconds histogram
iked_handshake_duration_seconds_bucket{le="0.01",version="ikev2"} 2
iked_handshake_duration_seconds_bucket{le="0.1",version="ikev2"} 5
iked_handshake_duration_seconds_bucket{le="1",version="ikev2"} 7
iked_handshake_duration_seconds_bucket{le="+Inf",version="ikev2"} 8
iked_handshake_duration_seconds_sum{version="ikev2"} 3.25
iked_handshake_duration_seconds_count{version="ikev2"} 8
`

func TestCollect(t *testing.T) {
	src := &fakeSource{stats: sampleStats()}
	if err := testutil.CollectAndCompare(NewCollector(src), strings.NewReader(wantSample)); err != nil {
		t.Error(err)
	}
}

// TestCollectReadsState checks that each collection reads a new snapshot.
func TestCollectReadsState(t *testing.T) {
	src := &fakeSource{stats: sampleStats()}
	c := NewCollector(src)
	if got := testutil.ToFloat64(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		ch <- collectOne(t, c, "iked_packets_sent_total")
	})); got != 90 {
		t.Fatalf("packets sent = %v, want 90", got)
	}
	src.mu.Lock()
	src.stats.PacketsSent = 1234
	src.mu.Unlock()
	if got := testutil.ToFloat64(prometheus.CollectorFunc(func(ch chan<- prometheus.Metric) {
		ch <- collectOne(t, c, "iked_packets_sent_total")
	})); got != 1234 {
		t.Errorf("packets sent after update = %v, want 1234", got)
	}
	if src.calls != 2 {
		t.Errorf("Stats called %d times for 2 collections", src.calls)
	}
}

// collectOne collects c and returns its metric named name.
func collectOne(t *testing.T, c prometheus.Collector, name string) prometheus.Metric {
	t.Helper()
	ch := make(chan prometheus.Metric, 100)
	c.Collect(ch)
	close(ch)
	var found prometheus.Metric
	for m := range ch {
		if strings.Contains(m.Desc().String(), `"`+name+`"`) {
			found = m
		}
	}
	if found == nil {
		t.Fatalf("no metric %s", name)
	}
	return found
}

func TestEmptyStats(t *testing.T) {
	// A zero Stats (engine just started) collects without error: zero
	// gauges and counters, and an empty histogram.
	c := NewCollector(&fakeSource{})
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP iked_child_sas Current installed Child SAs.
# TYPE iked_child_sas gauge
iked_child_sas{version="ikev2"} 0
# HELP iked_handshake_duration_seconds Time from the start of IKE_SA_INIT to the end of IKE_AUTH.
# TYPE iked_handshake_duration_seconds histogram
iked_handshake_duration_seconds_bucket{le="+Inf",version="ikev2"} 0
iked_handshake_duration_seconds_sum{version="ikev2"} 0
iked_handshake_duration_seconds_count{version="ikev2"} 0
`), "iked_child_sas", "iked_handshake_duration_seconds"); err != nil {
		t.Error(err)
	}
	// 4 states + 1 + 1 + 2 roles + 13 failure reasons + 4 unlabelled + 10
	// drop reasons + 19 notifies sent + 1 received (AUTHENTICATION_FAILED)
	// + 3 rekey types + 1.
	if n := testutil.CollectAndCount(c); n != 59 {
		t.Errorf("collected %d metrics from empty stats, want 59", n)
	}
}

func TestMalformedHistogram(t *testing.T) {
	st := sampleStats()
	st.HandshakeDuration.Counts = st.HandshakeDuration.Counts[:2]
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(&fakeSource{stats: st}))
	_, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "3 bounds but 2 counts") {
		t.Errorf("Gather error = %v, want bounds/counts mismatch", err)
	}
}

func TestLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(NewCollector(&fakeSource{stats: sampleStats()}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// TestPedantic registers with a pedantic registry, which checks that the
// collected metrics match the descriptions.
func TestPedantic(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(NewCollector(&fakeSource{stats: sampleStats()})); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(&fakeSource{stats: sampleStats()}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	for _, want := range []string{
		"\niked_ike_sas{state=\"established\",version=\"ikev2\"} 3\n",
		"\niked_packets_dropped_total{reason=\"integrity\",version=\"ikev2\"} 6\n",
		"\niked_handshake_duration_seconds_bucket{version=\"ikev2\",le=\"0.1\"} 5\n",
		"\niked_handshake_duration_seconds_count{version=\"ikev2\"} 8\n",
		"\n# TYPE go_goroutines gauge\n",
		"\n# TYPE process_start_time_seconds gauge\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", strings.TrimSpace(want))
		}
	}
	// A second handler has its own registry: no duplicate registration panic.
	_ = Handler(&fakeSource{})
}

// TestVersioned: two engines' statistics side by side, each series under
// its version label.
func TestVersioned(t *testing.T) {
	v2, v1 := sampleStats(), sampleStats()
	v1.ChildSAs, v1.PacketsSent = 9, 33
	c := NewVersionedCollector(Versioned{Version: "ikev2", Source: &fakeSource{stats: v2}},
		Versioned{Version: "ikev1", Source: &fakeSource{stats: v1}})
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP iked_child_sas Current installed Child SAs.
# TYPE iked_child_sas gauge
iked_child_sas{version="ikev1"} 9
iked_child_sas{version="ikev2"} 5
# HELP iked_packets_sent_total IKE datagrams sent.
# TYPE iked_packets_sent_total counter
iked_packets_sent_total{version="ikev1"} 33
iked_packets_sent_total{version="ikev2"} 90
`), "iked_child_sas", "iked_packets_sent_total"); err != nil {
		t.Error(err)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Gather(); err != nil {
		t.Error(err)
	}
}
