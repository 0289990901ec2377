package ike_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/metrics"
)

// scrapeSizes are the SA counts BenchmarkScrape holds: IKED_BENCH_SCRAPE_SAS
// (comma-separated; "10000,100000" for the figures in docs/metrics.md),
// else 10,000.
func scrapeSizes() []int {
	s := os.Getenv("IKED_BENCH_SCRAPE_SAS")
	if s == "" {
		return []int{10000}
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// BenchmarkScrape times one scrape of /metrics, as Prometheus makes it
// (gzip), of a responder holding n established IKE SAs with a Child SA
// each, with the per-SA series on (metrics_per_sa_limit above n) and off
// (per-connection series only): ns/op is the scrape, and it reports the
// body's size raw and gzipped and the samples in it.
func BenchmarkScrape(b *testing.B) {
	for _, n := range scrapeSizes() {
		eng := ike.HeldEngine(b, n)
		if got := eng.Stats().ChildSAs; got != n {
			b.Fatalf("%d Child SAs held, want %d", got, n)
		}
		for _, perSA := range []bool{true, false} {
			name := fmt.Sprintf("sas=%d/per_sa=%v", n, perSA)
			b.Run(name, func(b *testing.B) {
				limit := 0
				if perSA {
					limit = n
				}
				h := metrics.Handler(eng, metrics.NewTunnelCollector(eng, metrics.NewTotals(), metrics.TunnelOptions{PerSALimit: func() int { return limit }}))
				var raw, zipped, samples int
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
					req.Header.Set("Accept-Encoding", "gzip")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != http.StatusOK {
						b.Fatalf("scrape: %d %s", rec.Code, rec.Body.String())
					}
					zipped = rec.Body.Len()
				}
				b.StopTimer()
				// The body's size and samples, outside the timer.
				req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
				req.Header.Set("Accept-Encoding", "gzip")
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				zr, err := gzip.NewReader(rec.Body)
				if err != nil {
					b.Fatal(err)
				}
				body, err := io.ReadAll(zr)
				if err != nil {
					b.Fatal(err)
				}
				raw = len(body)
				for _, line := range bytes.Split(body, []byte("\n")) {
					if len(line) > 0 && line[0] != '#' {
						samples++
					}
				}
				wantChild := 0
				if perSA {
					wantChild = 4 * n
				}
				if got := bytes.Count(body, []byte("\niked_child_sa_bytes_total{")) + bytes.Count(body, []byte("\niked_child_sa_packets_total{")); got != wantChild {
					b.Fatalf("%d per-Child-SA counter series, want %d", got, wantChild)
				}
				b.ReportMetric(float64(raw), "bytes/scrape")
				b.ReportMetric(float64(zipped), "gzip-bytes/scrape")
				b.ReportMetric(float64(samples), "samples/scrape")
			})
		}
	}
}
