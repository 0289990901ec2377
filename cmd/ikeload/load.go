package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// Options describe one load run.
type Options struct {
	// Target is the responder's IKE endpoint.
	Target netip.AddrPort
	// Sources are the local addresses to send from, one per worker in
	// turn; empty lets the kernel choose.
	Sources []netip.Addr
	// Auth proves our identity and verifies the responder's (PSK or cert).
	Auth auth.Method
	// AuthName is Auth's description for the report ("psk", "cert").
	AuthName string
	// LocalID is IDi: an identity ("fqdn:load.example"), a template with
	// %d numbered per handshake ("fqdn:load-%d.example"), or empty for
	// the source address.
	LocalID string
	// IDStart is the number of the first handshake for a LocalID template
	// (default 1), so that consecutive runs make distinct identities.
	IDStart uint64
	// RemoteID, when set, is sent as IDr and must match the responder's.
	RemoteID ike.Identity
	// IKEProposals are offered in IKE_SA_INIT, in order; the first's first
	// DH group goes in KE.
	IKEProposals []transform.Proposal
	// ProposalText is the proposals as given, for the report.
	ProposalText string
	// ESPProposals are offered for the Child SA unless Childless.
	ESPProposals []transform.Proposal
	// Childless makes IKE_AUTH carry no SA, TSi, TSr (RFC 6023).
	Childless bool
	// Concurrency is the number of handshakes in flight (one worker each).
	Concurrency int
	// Rate is the target of handshakes started per second; 0 means as
	// fast as the workers go.
	Rate float64
	// Duration and Count bound the run; whichever comes first. Zero means
	// unbounded (the other one, or ctx, ends it).
	Duration time.Duration
	Count    uint64
	// Keep leaves every IKE SA established at the responder; otherwise
	// each one is deleted (INFORMATIONAL Delete) after it is up.
	Keep bool
	// FreshDH makes a new Diffie-Hellman key per handshake; by default one
	// key per group is reused across handshakes, as a load generator may.
	FreshDH bool
	// RetransmitTimeout is the first retransmission timeout, doubled each
	// time; RetransmitTries is how many retransmissions before "timeout".
	RetransmitTimeout time.Duration
	RetransmitTries   int
	// Progress, when set, receives a line every ProgressEvery.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// Result is what a run measured; its JSON form is ikeload --json's output.
type Result struct {
	Target      string            `json:"target"`
	Proposal    string            `json:"proposal"`
	Auth        string            `json:"auth"`
	Childless   bool              `json:"childless"`
	Keep        bool              `json:"keep"`
	Concurrency int               `json:"concurrency"`
	TargetRate  float64           `json:"target_rate,omitempty"`
	Sources     int               `json:"sources"`
	Completed   uint64            `json:"completed"`
	Failed      uint64            `json:"failed"`
	Failures    map[string]uint64 `json:"failures"`
	Elapsed     float64           `json:"elapsed_s"`
	Rate        float64           `json:"rate"`
	// Latency of the completed handshakes (first IKE_SA_INIT sent to the
	// IKE_AUTH response verified), in milliseconds.
	LatencyP50 float64 `json:"latency_p50_ms"`
	LatencyP90 float64 `json:"latency_p90_ms"`
	LatencyP99 float64 `json:"latency_p99_ms"`
	LatencyMax float64 `json:"latency_max_ms"`
	// CPU is this process's user and system time, in microseconds per
	// completed handshake.
	CPUUserUS  float64 `json:"cpu_user_us_per_handshake"`
	CPUSysUS   float64 `json:"cpu_sys_us_per_handshake"`
	CPUTotalUS float64 `json:"cpu_us_per_handshake"`
	// Counters.
	Retransmits   uint64 `json:"retransmits"`
	Cookies       uint64 `json:"cookies"`
	InvalidKE     uint64 `json:"invalid_ke"`
	ChildSAs      uint64 `json:"child_sas"`
	Deleted       uint64 `json:"deleted"`
	DeleteFailed  uint64 `json:"delete_failed"`
	NotChildless  uint64 `json:"childless_not_announced"`
	RateShortfall uint64 `json:"rate_shortfall"`
	// FirstFailure is the first failure's text.
	FirstFailure string `json:"first_failure,omitempty"`
}

// workerStats are one worker's observations, merged at the end.
type workerStats struct {
	lat      []time.Duration
	failures map[string]uint64
	client   *client
}

// run is one load run.
type run struct {
	opts      *Options
	sh        *shared
	completed atomic.Uint64
	failed    atomic.Uint64
	claimed   atomic.Uint64
	seq       atomic.Uint64
	shortfall atomic.Uint64
	tokens    chan struct{}
	firstErr  sync.Once
	errText   atomic.Pointer[string]
}

func (o *Options) defaults() error {
	if !o.Target.IsValid() {
		return errors.New("no target")
	}
	if o.Auth == nil {
		return errors.New("no auth method")
	}
	if len(o.IKEProposals) == 0 {
		return errors.New("no IKE proposal")
	}
	if !o.Childless && len(o.ESPProposals) == 0 {
		return errors.New("no ESP proposal for the Child SA")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if o.RetransmitTimeout <= 0 {
		o.RetransmitTimeout = time.Second
	}
	if o.RetransmitTries < 0 {
		o.RetransmitTries = 0
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	if o.Duration == 0 && o.Count == 0 {
		o.Count = 1
	}
	if o.LocalID != "" && !strings.Contains(o.LocalID, "%d") {
		if _, err := ike.ParseIdentity(o.LocalID); err != nil {
			return fmt.Errorf("--id: %v", err)
		}
	}
	if strings.Contains(o.LocalID, "%d") {
		if _, err := ike.ParseIdentity(fmt.Sprintf(o.LocalID, 1)); err != nil {
			return fmt.Errorf("--id: %v", err)
		}
	}
	return nil
}

// Run performs the load described by o until its duration or count is
// reached or ctx ends, and returns the measurements.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	sh := &shared{
		opts:      &o,
		offer:     ike.ProposalsToWire(o.IKEProposals, wire.ProtoIKE, nil, true),
		espOffer:  o.ESPProposals,
		childless: o.Childless,
		addKE:     slices.ContainsFunc(o.IKEProposals, func(p transform.Proposal) bool { return p.HasAddKE() }),
		dhKeys:    map[uint16]transform.PrivateKey{},
	}
	sh.firstDH = transform.GroupByID(o.IKEProposals[0].DH[0])
	if sh.firstDH == nil {
		return nil, fmt.Errorf("unknown DH group %d", o.IKEProposals[0].DH[0])
	}
	if !o.FreshDH {
		for _, p := range o.IKEProposals {
			for _, id := range p.DH {
				// An ML-KEM key decapsulates once: never shared.
				if g := transform.GroupByID(id); g != nil && sh.dhKeys[id] == nil && !transform.IsPostQuantum(id) {
					k, err := g.GenerateKey(rand.Reader)
					if err != nil {
						return nil, err
					}
					sh.dhKeys[id] = k
				}
			}
		}
	}
	if !o.RemoteID.IsZero() {
		sh.remoteID = o.RemoteID.Payload(true)
	}
	switch {
	case strings.Contains(o.LocalID, "%d"):
		sh.localIDs.template = o.LocalID
	case o.LocalID != "":
		id, _ := ike.ParseIdentity(o.LocalID)
		sh.localIDs.fixed = &id
	}

	r := &run{opts: &o, sh: sh}
	if o.IDStart > 0 {
		r.seq.Store(o.IDStart - 1)
	}
	stats := make([]*workerStats, o.Concurrency)
	for i := range stats {
		var src netip.Addr
		if len(o.Sources) > 0 {
			src = o.Sources[i%len(o.Sources)]
		}
		c, err := newClient(sh, src)
		if err != nil {
			for _, s := range stats[:i] {
				s.client.close()
			}
			return nil, fmt.Errorf("socket from %v: %w", src, err)
		}
		stats[i] = &workerStats{client: c, failures: map[string]uint64{}}
	}
	defer func() {
		for _, s := range stats {
			s.client.close()
		}
	}()

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Duration > 0 {
		runCtx, cancel = context.WithTimeout(runCtx, o.Duration)
		defer cancel()
	}
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	if o.Rate > 0 {
		r.tokens = make(chan struct{}, max(o.Concurrency, int(o.Rate/10)+1))
		go r.pace(runCtx, start)
	}
	progressDone := make(chan struct{})
	if o.Progress != nil {
		go r.progress(runCtx, start, progressDone)
	} else {
		close(progressDone)
	}
	go func() {
		<-runCtx.Done()
		for _, s := range stats {
			s.client.abort()
		}
	}()
	var wg sync.WaitGroup
	for _, s := range stats {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.worker(runCtx, s)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cancel()
	<-progressDone

	res := &Result{
		Target: o.Target.String(), Proposal: o.ProposalText, Auth: o.AuthName, Childless: o.Childless, Keep: o.Keep,
		Concurrency: o.Concurrency, TargetRate: o.Rate, Sources: max(1, len(o.Sources)),
		Failures: map[string]uint64{}, Elapsed: elapsed.Seconds(), RateShortfall: r.shortfall.Load(),
		FirstFailure: r.FirstError(),
	}
	var lat []time.Duration
	for _, s := range stats {
		lat = append(lat, s.lat...)
		for k, v := range s.failures {
			res.Failures[k] += v
			res.Failed += v
		}
		c := s.client
		res.Retransmits += c.retransmits
		res.Cookies += c.cookies
		res.InvalidKE += c.invalidKE
		res.ChildSAs += c.childSAs
		res.Deleted += c.deleted
		res.DeleteFailed += c.deleteFailed
		res.NotChildless += c.notChildless
	}
	res.Completed = uint64(len(lat))
	if elapsed > 0 {
		res.Rate = float64(res.Completed) / elapsed.Seconds()
	}
	slices.Sort(lat)
	res.LatencyP50 = ms(percentile(lat, 0.50))
	res.LatencyP90 = ms(percentile(lat, 0.90))
	res.LatencyP99 = ms(percentile(lat, 0.99))
	if len(lat) > 0 {
		res.LatencyMax = ms(lat[len(lat)-1])
	}
	if res.Completed > 0 {
		n := float64(res.Completed)
		user := tvDur(ru1.Utime) - tvDur(ru0.Utime)
		sys := tvDur(ru1.Stime) - tvDur(ru0.Stime)
		res.CPUUserUS = float64(user.Microseconds()) / n
		res.CPUSysUS = float64(sys.Microseconds()) / n
		res.CPUTotalUS = res.CPUUserUS + res.CPUSysUS
	}
	return res, nil
}

func tvDur(tv syscall.Timeval) time.Duration {
	return time.Duration(tv.Sec)*time.Second + time.Duration(tv.Usec)*time.Microsecond
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// percentile returns the q-quantile of sorted (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// pace releases tokens at the target rate. A token that finds the bucket
// full (every worker busy and a tenth of a second queued) is counted as a
// shortfall: the responder, or the concurrency, does not sustain the rate.
func (r *run) pace(ctx context.Context, start time.Time) {
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	var sent uint64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := uint64(now.Sub(start).Seconds() * r.opts.Rate)
			for ; sent < due; sent++ {
				select {
				case r.tokens <- struct{}{}:
				default:
					r.shortfall.Add(1)
				}
			}
		}
	}
}

// worker runs handshakes one after another until the run ends.
func (r *run) worker(ctx context.Context, s *workerStats) {
	c := s.client
	for {
		if ctx.Err() != nil {
			return
		}
		if r.tokens != nil {
			select {
			case <-ctx.Done():
				return
			case <-r.tokens:
			}
		}
		if n := r.opts.Count; n > 0 && r.claimed.Add(1) > n {
			return
		}
		seq := r.seq.Add(1)
		t0 := time.Now()
		h, err := c.handshake(seq)
		d := time.Since(t0)
		if errors.Is(err, errAborted) {
			return
		}
		if err != nil {
			s.failures[reasonOf(err)]++
			r.failed.Add(1)
			r.noteError(err)
			// An IKE SA the responder established but whose Child SA or
			// AUTH failed on our side is deleted, not leaked.
			if h != nil && h.up && !r.opts.Keep {
				_ = h.deleteSA()
			}
			continue
		}
		s.lat = append(s.lat, d)
		r.completed.Add(1)
		if !r.opts.Keep {
			if err := h.deleteSA(); errors.Is(err, errAborted) {
				return
			} else if err != nil {
				c.deleteFailed++
			} else {
				c.deleted++
			}
		}
	}
}

func (r *run) noteError(err error) {
	r.firstErr.Do(func() {
		s := err.Error()
		r.errText.Store(&s)
	})
}

// FirstError is the first failure's text, for the report.
func (r *run) FirstError() string {
	if p := r.errText.Load(); p != nil {
		return *p
	}
	return ""
}

// progress writes a line per interval: elapsed, completed, rate over the
// last interval, failures.
func (r *run) progress(ctx context.Context, start time.Time, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(r.opts.ProgressEvery)
	defer t.Stop()
	var last uint64
	lastT := start
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c, f := r.completed.Load(), r.failed.Load()
			rate := float64(c-last) / now.Sub(lastT).Seconds()
			line := fmt.Sprintf("ikeload: %6.1fs  completed %d  failed %d  %.0f/s", now.Sub(start).Seconds(), c, f, rate)
			if e := r.FirstError(); e != "" && f > 0 {
				line += "  (first failure: " + e + ")"
			}
			fmt.Fprintln(r.opts.Progress, line)
			last, lastT = c, now
		}
	}
}

// sortedFailures returns the failure reasons, most frequent first.
func sortedFailures(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	return keys
}

func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func cryptoRead(b []byte) (int, error) { return rand.Read(b) }
