package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/iked/iked/bench/flood"
)

// The flood phase: IKE_SA_INIT requests from spoofed addresses (bench/flood)
// arrive at the responder, started with cookies on, while ikeload runs
// legitimate handshakes at a fixed rate; what counts is the share of
// those that complete. The flooder runs as this program's "flood"
// subcommand in ikeload's namespace, pinned with ikeload to CPU 1.
//
// The spoofed sources are off-link, as an attacker's on the Internet
// would be: the responder routes its answers to them through ikeload's
// namespace, which drops them. (Sources on the responder's own subnet
// that answer no ARP are another matter: every answer waits in the
// kernel's neighbour queue, charged to the responder's socket, until
// resolution fails; see docs/performance.md.)

// spoofedNet holds the flood's source addresses.
const spoofedNet = "10.78.0.0/16"

// spoofedSources are the flood's source addresses: 10.78.0.1-32.
func spoofedSources() []netip.Addr {
	var out []netip.Addr
	for i := 1; i <= 32; i++ {
		out = append(out, netip.AddrFrom4([4]byte{10, 78, 0, byte(i)}))
	}
	return out
}

// floodMeasurement is a responder's flood phase.
type floodMeasurement struct {
	Rate             float64           `json:"flood_rate"`
	Sent             int               `json:"flood_sent"`
	Seconds          float64           `json:"flood_s"`
	LegitRate        float64           `json:"legit_rate"`
	Attempted        uint64            `json:"legit_attempted"`
	Completed        uint64            `json:"legit_completed"`
	Failed           uint64            `json:"legit_failed"`
	Failures         map[string]uint64 `json:"legit_failures"`
	CompletedPercent float64           `json:"legit_completed_percent"`
	Cookies          uint64            `json:"legit_cookies"`
	Retransmits      uint64            `json:"legit_retransmits"`
	Shortfall        uint64            `json:"legit_rate_shortfall"`
	P99              float64           `json:"legit_p99_ms"`
	ResponderCPUUtil float64           `json:"responder_cpu_utilisation"`
}

// floodPhase measures m's responder under the flood.
func (c *config) floodPhase(m *measurement) error {
	if m.Responder != "iked" {
		m.Notes = append(m.Notes, "flood phase not measured (cookies are configured for iked only)")
		return nil
	}
	c.cookies = true
	defer func() { c.cookies = false }()
	d, _, err := c.start(m.Responder)
	if err != nil {
		return err
	}
	defer d.stop()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf("%s: flood of %.0f spoofed IKE_SA_INIT/s for %v, ikeload at %.0f/s", m.Responder, c.floodRate, c.floodFor, c.floodLegit)
	count := int(c.floodRate * c.floodFor.Seconds())
	cmd := exec.Command("ip", "netns", "exec", c.nsL, "taskset", "-c", "1", self, "flood",
		"--target", respAddr+":500", "--rate", fmt.Sprint(c.floodRate), "--count", strconv.Itoa(count),
		"--duration", c.floodFor.String())
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	t0, err := cpuTicks(d.pid())
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	// The legitimate load starts once the flood has filled the half-open
	// table, and ends before the flood does.
	time.Sleep(time.Second)
	// A count rather than a duration: every handshake started is
	// finished (completed, or failed after its retransmissions) before
	// ikeload reports, so the share completed is over all attempted.
	legit := int(c.floodLegit * (c.floodFor - 2*time.Second).Seconds())
	res, lerr := c.ikeload("--rate", fmt.Sprint(c.floodLegit), "--count", strconv.Itoa(legit),
		"--duration", (c.floodFor + time.Minute).String(), "--concurrency", "256")
	werr := cmd.Wait()
	t1, _ := cpuTicks(d.pid())
	elapsed := time.Since(start)
	if lerr != nil {
		return lerr
	}
	if werr != nil {
		return fmt.Errorf("flooder: %v: %s", werr, errOut.String())
	}
	var fr flood.Result
	if err := json.Unmarshal(out.Bytes(), &fr); err != nil {
		return fmt.Errorf("flooder output: %v: %s", err, out.String())
	}
	f := &floodMeasurement{
		Rate: float64(fr.Sent) / fr.Elapsed.Seconds(), Sent: fr.Sent, Seconds: fr.Elapsed.Seconds(),
		LegitRate: c.floodLegit, Completed: res.Completed, Failed: res.Failed, Failures: res.Failures,
		Cookies: res.Cookies, Retransmits: res.Retrans, Shortfall: res.Shortfall, P99: res.P99,
		ResponderCPUUtil: float64(t1-t0) / clockTicks / elapsed.Seconds(),
	}
	f.Attempted = uint64(legit)
	f.CompletedPercent = 100 * float64(res.Completed) / float64(legit)
	m.Flood = f
	logf("%s: flood %d sent (%.0f/s); ikeload %d completed, %d failed (%.2f%%) %v %s, %d cookies, %d retransmits, %d not started in time, p99 %.2f ms; responder CPU %.0f%%",
		m.Responder, fr.Sent, f.Rate, res.Completed, res.Failed, f.CompletedPercent, res.Failures, res.FirstError, res.Cookies,
		res.Retrans, res.Shortfall, res.P99, 100*f.ResponderCPUUtil)
	return nil
}

// floodMain is the "flood" subcommand: one bounded flood, its result as
// JSON on stdout.
func floodMain(args []string) {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	target := fs.String("target", "", "responder address:port")
	rate := fs.Float64("rate", 10000, "requests per second")
	count := fs.Int("count", 0, "stop after this many requests")
	dur := fs.Duration("duration", 0, "stop after this long")
	_ = fs.Parse(args)
	to, err := netip.ParseAddrPort(*target)
	if err != nil {
		fatalf("flood: --target: %v", err)
	}
	res, err := flood.Run(context.Background(), flood.Options{Target: to, Sources: spoofedSources(), Rate: *rate, Count: *count, Duration: *dur})
	if err != nil {
		fatalf("flood: %v", err)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// printFlood prints the flood phase's table, if it ran.
func printFlood(w io.Writer, rows []*measurement, c config) {
	if c.floodRate == 0 {
		return
	}
	fmt.Fprintf(w, "\nFlood: spoofed IKE_SA_INIT from %d addresses for %v, cookies on (threshold 10); ikeload at %.0f/s meanwhile.\n\n",
		len(spoofedSources()), c.floodFor, c.floodLegit)
	fmt.Fprintln(w, "| responder | flood requests/s | flood requests | legitimate attempted | completed | failed | completed % | cookies returned | retransmits | p99 (ms) | responder CPU |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, m := range rows {
		f := m.Flood
		if f == nil {
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f | %d | %d | %d | %d | %.2f | %d | %d | %.2f | %.0f%% |\n", m.Responder, f.Rate, f.Sent,
			f.Attempted, f.Completed, f.Failed, f.CompletedPercent, f.Cookies, f.Retransmits, f.P99, 100*f.ResponderCPUUtil)
	}
}
