package metrics

import (
	"strings"
	"testing"

	"github.com/iked/iked/sadb"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeDataPlane struct{ s sadb.DataPlaneStats }

func (f fakeDataPlane) DataPlaneStats() sadb.DataPlaneStats { return f.s }

func TestDataPlaneCollector(t *testing.T) {
	c := NewDataPlaneCollector(fakeDataPlane{sadb.DataPlaneStats{Sent: 7, Received: 5, Dropped: map[string]uint64{"replay": 2, "integrity": 1},
		Events: map[string]uint64{"tso_segmented": 3, "acquire_held": 4}}})
	want := `
# HELP iked_dataplane_events_total What the data plane did besides carrying packets, by event (tso_segmented, gro_coalesced, acquire_held, acquire_released).
# TYPE iked_dataplane_events_total counter
iked_dataplane_events_total{event="acquire_held"} 4
iked_dataplane_events_total{event="tso_segmented"} 3
# HELP iked_esp_packets_dropped_total Packets the data plane did not carry, by reason (replay, integrity, unknown_spi, malformed, policy, no_route, send_error).
# TYPE iked_esp_packets_dropped_total counter
iked_esp_packets_dropped_total{reason="integrity"} 1
iked_esp_packets_dropped_total{reason="replay"} 2
# HELP iked_esp_packets_received_total ESP and AH packets the data plane received and accepted (authentic, not replayed).
# TYPE iked_esp_packets_received_total counter
iked_esp_packets_received_total 5
# HELP iked_esp_packets_sent_total ESP and AH packets the data plane sent.
# TYPE iked_esp_packets_sent_total counter
iked_esp_packets_sent_total 7
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}
