package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The post-quantum comparison (docs/performance.md, "Hybrid key
// exchange"): the CPU a responder spends per handshake with X25519 alone
// and with X25519 followed by ML-KEM-768 in an IKE_INTERMEDIATE exchange
// (RFC 9370), for iked and for strongSwan 6.0.6 (built by
// scripts/strongswan6.sh), each answering ikeload in the same run, pinned
// as in the main comparison. Run as root:
//
//	go run ./bench/responders pq --bin DIR [--charon6 PREFIX]

// pqProposals are the two proposals compared: the same but for ML-KEM.
var pqProposals = []string{"aes256gcm16-prfsha384-x25519", "aes256gcm16-prfsha384-x25519-ke1_mlkem768"}

// pqRow is one responder and proposal.
type pqRow struct {
	Responder      string            `json:"responder"`
	Version        string            `json:"version"`
	Proposal       string            `json:"proposal"`
	Rate           float64           `json:"saturated_rate"`
	ResponderCPUUS float64           `json:"responder_cpu_us_per_handshake"`
	IkeloadCPUUS   float64           `json:"ikeload_cpu_us_per_handshake"`
	P99            float64           `json:"saturated_p99_ms"`
	Failures       map[string]uint64 `json:"failures"`
	Note           string            `json:"note,omitempty"`
}

func pqMain(args []string) {
	var c config
	fs := flag.NewFlagSet("pq", flag.ExitOnError)
	fs.StringVar(&c.bin, "bin", "", "directory with the iked and ikeload binaries")
	cache, _ := os.UserCacheDir()
	fs.StringVar(&c.charon6, "charon6", filepath.Join(cache, "iked", "strongswan-6.0.6"), "strongSwan 6.0.6's prefix (scripts/strongswan6.sh)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each saturated run")
	fs.IntVar(&c.concurr, "concurrency", 32, "ikeload concurrency")
	resp := fs.String("responders", "iked,charon6", "responders to measure")
	fs.StringVar(&c.out, "out", "", "write the measurements as JSON here")
	_ = fs.Parse(args)
	if c.bin == "" {
		fatalf("pq: --bin is required")
	}
	if os.Geteuid() != 0 {
		fatalf("pq: must run as root (network namespaces)")
	}
	var err error
	if c.work, err = os.MkdirTemp("", "ikebench-pq-"); err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(c.work)
	pid := os.Getpid()
	c.nsR, c.nsL, c.nsRef = fmt.Sprintf("ikb-r-%d", pid), fmt.Sprintf("ikb-l-%d", pid), fmt.Sprintf("ikb-ref-%d", pid)
	if err := c.topology(); err != nil {
		c.teardown()
		fatalf("topology: %v", err)
	}
	defer c.teardown()
	load, _ := os.ReadFile("/proc/loadavg")
	var rows []pqRow
	for _, r := range strings.Split(*resp, ",") {
		for _, p := range pqProposals {
			proposal = p
			m := &measurement{Responder: r, RSSPerSA: map[string]float64{}, Failures: map[string]uint64{}}
			row := pqRow{Responder: r, Proposal: p}
			if err := c.saturate(m); err != nil {
				row.Note = err.Error()
				logf("%s %s: %v", r, p, err)
			}
			row.Version, row.Rate, row.ResponderCPUUS, row.IkeloadCPUUS, row.P99, row.Failures = m.Version, m.SaturatedRate, m.ResponderCPUUS, m.IkeloadCPUUS, m.SaturatedP99, m.Failures
			rows = append(rows, row)
		}
	}
	printPQ(os.Stdout, rows, c, strings.TrimSpace(string(load)))
	if c.out != "" {
		b, _ := json.MarshalIndent(map[string]any{"duration_s": c.duration.Seconds(), "concurrency": c.concurr,
			"loadavg_before": strings.TrimSpace(string(load)), "rows": rows}, "", "  ")
		if err := os.WriteFile(c.out, append(b, '\n'), 0o644); err != nil {
			logf("writing %s: %v", c.out, err)
		}
	}
}

// printPQ writes the Markdown table: per responder, both proposals and the
// cost ML-KEM adds.
func printPQ(w io.Writer, rows []pqRow, c config, load string) {
	fmt.Fprintf(w, "\n%v saturated runs at concurrency %d, childless PSK handshakes each deleted once up; responder pinned to CPU 0, ikeload to CPU 1; load average before: %s\n\n",
		c.duration, c.concurr, load)
	fmt.Fprintln(w, "| responder | proposal | handshakes/s | responder CPU µs/handshake | ikeload CPU µs/handshake | p99 (ms) | failed |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	base := map[string]float64{}
	for _, r := range rows {
		var failed uint64
		for _, n := range r.Failures {
			failed += n
		}
		extra := ""
		if b, ok := base[r.Responder]; ok && b > 0 && r.ResponderCPUUS > 0 {
			extra = fmt.Sprintf(" (+%.0f)", r.ResponderCPUUS-b)
		} else {
			base[r.Responder] = r.ResponderCPUUS
		}
		fmt.Fprintf(w, "| %s (%s) | `%s` | %.0f | %.0f%s | %.0f | %.2f | %d |\n", r.Responder, r.Version, r.Proposal, r.Rate, r.ResponderCPUUS, extra, r.IkeloadCPUUS, r.P99, failed)
		if r.Note != "" {
			fmt.Fprintf(w, "|  | note: %s |  |  |  |  |  |\n", r.Note)
		}
	}
}
