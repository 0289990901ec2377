package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText writes the report table.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	mode := "with a Child SA"
	if r.Childless {
		mode = "childless"
	}
	life := "deleted after each handshake"
	if r.Keep {
		life = "kept"
	}
	rate := "as fast as possible"
	if r.TargetRate > 0 {
		rate = fmt.Sprintf("target %.0f/s", r.TargetRate)
	}
	fmt.Fprintf(&b, "ikeload → %s  %s  %s  %s, SAs %s\n", r.Target, r.Proposal, r.Auth, mode, life)
	fmt.Fprintf(&b, "  concurrency %d, %d source address(es), %s\n", r.Concurrency, r.Sources, rate)
	row := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "  %-12s "+format+"\n", append([]any{k}, args...)...)
	}
	row("completed", "%d", r.Completed)
	if r.Failed == 0 {
		row("failed", "0")
	} else {
		var parts []string
		for _, k := range sortedFailures(r.Failures) {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Failures[k]))
		}
		row("failed", "%d (%s)", r.Failed, strings.Join(parts, ", "))
	}
	row("elapsed", "%.2f s", r.Elapsed)
	row("rate", "%.1f handshakes/s", r.Rate)
	row("latency", "p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms", r.LatencyP50, r.LatencyP90, r.LatencyP99, r.LatencyMax)
	row("cpu", "%.1f µs/handshake (user %.1f, sys %.1f)", r.CPUTotalUS, r.CPUUserUS, r.CPUSysUS)
	row("exchanges", "retransmits %d  cookies %d  invalid_ke %d  child_sas %d  deleted %d  delete_failed %d",
		r.Retransmits, r.Cookies, r.InvalidKE, r.ChildSAs, r.Deleted, r.DeleteFailed)
	if r.RateShortfall > 0 {
		row("shortfall", "%d handshakes not started in time (the target rate was not sustained)", r.RateShortfall)
	}
	if r.Childless && r.NotChildless > 0 {
		row("note", "the responder did not announce CHILDLESS_IKEV2_SUPPORTED in %d IKE_SA_INIT responses", r.NotChildless)
	}
	if r.FirstFailure != "" {
		row("first error", "%s", r.FirstFailure)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the result as one JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
