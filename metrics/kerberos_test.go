package metrics

import (
	"strings"
	"testing"

	"github.com/iked/iked/auth/kerberos"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestKerberosCollector(t *testing.T) {
	c := NewKerberosCollector(func() kerberos.Stats {
		return kerberos.Stats{
			Authentications: map[kerberos.Outcome]uint64{
				{Role: "responder", Result: "success"}:                           4,
				{Role: "responder", Result: "failure", Error: "KRB_AP_ERR_SKEW"}: 2,
				{Role: "initiator", Result: "failure", Error: "kdc_unreachable"}: 1,
			},
			TicketCacheHits: 9, TicketCacheMisses: 2, KDCRequests: 5, KDCFailures: 1, KeytabReloads: 3, Retries: 1,
		}
	})
	want := `
# HELP iked_kerberos_authentications_total Kerberos authentications, by role of this side, result and error (Kerberos error name or iked reason; empty on success).
# TYPE iked_kerberos_authentications_total counter
iked_kerberos_authentications_total{error="",result="success",role="initiator"} 0
iked_kerberos_authentications_total{error="",result="success",role="responder"} 4
iked_kerberos_authentications_total{error="KRB_AP_ERR_SKEW",result="failure",role="responder"} 2
iked_kerberos_authentications_total{error="kdc_unreachable",result="failure",role="initiator"} 1
# HELP iked_kerberos_kdc_failures_total KDC exchanges that got no ticket (KDC error or no KDC reachable).
# TYPE iked_kerberos_kdc_failures_total counter
iked_kerberos_kdc_failures_total 1
# HELP iked_kerberos_kdc_requests_total AS and TGS exchanges sent to a KDC (round trips).
# TYPE iked_kerberos_kdc_requests_total counter
iked_kerberos_kdc_requests_total 5
# HELP iked_kerberos_keytab_reloads_total Keytab files read again after they changed.
# TYPE iked_kerberos_keytab_reloads_total counter
iked_kerberos_keytab_reloads_total 3
# HELP iked_kerberos_retries_total Handshakes restarted once after a KERBEROS_ERROR a fresh ticket or clock can cure.
# TYPE iked_kerberos_retries_total counter
iked_kerberos_retries_total 1
# HELP iked_kerberos_ticket_cache_lookups_total Service ticket lookups by an initiator, by result (hit: cached ticket used; miss: KDC asked).
# TYPE iked_kerberos_ticket_cache_lookups_total counter
iked_kerberos_ticket_cache_lookups_total{result="hit"} 9
iked_kerberos_ticket_cache_lookups_total{result="miss"} 2
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// The process collector reads the package's live counters.
	if n := testutil.CollectAndCount(KerberosCollector()); n < 8 {
		t.Fatalf("%d series", n)
	}
}
