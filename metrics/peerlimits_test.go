package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/iked/iked/ike"
)

// limitedSource is an engine with per-address limits.
type limitedSource struct {
	fakeSource
	limits ike.PeerLimitStats
}

func (l *limitedSource) PeerLimitStats() ike.PeerLimitStats { return l.limits }

// TestPeerLimitMetrics: a Source with per-address limits has them served
// by Handler, beside the drop reasons that count what they dropped.
func TestPeerLimitMetrics(t *testing.T) {
	src := &limitedSource{fakeSource: fakeSource{stats: sampleStats()}, limits: ike.PeerLimitStats{Blocked: 2, Blocks: 7, Unrecorded: 1}}
	src.stats.PacketsDropped = map[string]uint64{ike.DropRateLimited: 12, ike.DropHalfOpenLimit: 3}
	srv := httptest.NewServer(Handler(src))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\niked_blocked_peers 2\n",
		"\niked_peer_blocks_total 7\n",
		"\niked_auth_failures_unrecorded_total 1\n",
		"\niked_packets_dropped_total{reason=\"rate_limited\",version=\"ikev2\"} 12\n",
		"\niked_packets_dropped_total{reason=\"half_open_limit\",version=\"ikev2\"} 3\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("scrape lacks %q", strings.TrimSpace(want))
		}
	}
	// A Source without them serves none.
	plain := httptest.NewServer(Handler(&fakeSource{stats: sampleStats()}))
	defer plain.Close()
	resp2, err := http.Get(plain.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	b, _ = io.ReadAll(resp2.Body)
	if strings.Contains(string(b), "iked_blocked_peers") {
		t.Error("a source without limits serves iked_blocked_peers")
	}
}
