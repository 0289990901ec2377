package config

import "testing"

// TestMetricsPerSALimit: the per-SA series' bound is read, 0 (off) included.
func TestMetricsPerSALimit(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want int
	}{{"", DefaultMetricsPerSALimit}, {"metrics_per_sa_limit: 0\n", 0}, {"metrics_per_sa_limit: 100000\n", 100000}} {
		c, err := Parse([]byte(tc.src+"connections: {}\n"), "m.yaml", "")
		if err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		if c.MetricsPerSALimit != tc.want {
			t.Errorf("%q: MetricsPerSALimit = %d, want %d", tc.src, c.MetricsPerSALimit, tc.want)
		}
	}
}
