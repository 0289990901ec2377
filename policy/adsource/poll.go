package adsource

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Fetch outcomes, counted by Source.
const (
	OutcomeChanged   = "changed"   // read, and applied
	OutcomeUnchanged = "unchanged" // the change stamp is the same
	OutcomeRefused   = "refused"   // read, but the policy was refused (kept the last good one)
	OutcomeError     = "error"     // no domain controller answered
	OutcomeCache     = "cache"     // the policy came from the cache (at start)
)

// Origins of the running policy.
const (
	FromDirectory = "directory"
	FromCache     = "cache"
)

// Status is where the running policy came from.
type Status struct {
	// Origin is FromDirectory or FromCache.
	Origin string `json:"origin"`
	// Policy is the configured policy reference (DN, ID or name).
	Policy string `json:"policy"`
	// Container is the DN read.
	Container string `json:"container"`
	// Assigned is the DN of the policy a GPO assigns, when the source
	// follows a GPO.
	Assigned string `json:"assigned,omitempty"`
	// DC is the domain controller the running policy was read from, and
	// ReadAt when (for the cache, when it was read before being cached).
	DC     string    `json:"dc,omitempty"`
	ReadAt time.Time `json:"read_at"`
	// Stamp is the running policy's change stamp.
	Stamp Stamp `json:"stamp"`
	// LastAttempt, LastSuccess and LastError describe the latest polls.
	LastAttempt time.Time `json:"last_attempt"`
	LastSuccess time.Time `json:"last_success"`
	LastError   string    `json:"last_error,omitempty"`
	// Interval is the polling interval; CacheFile the cache.
	Interval  time.Duration `json:"interval"`
	CacheFile string        `json:"cache_file"`
	// Fetches counts polls by outcome.
	Fetches map[string]uint64 `json:"fetches"`
}

// directory is what a Source needs of a Reader (a seam for tests).
type directory interface {
	Stamp(ctx context.Context) (Stamp, string, error)
	Read(ctx context.Context) (*Snapshot, error)
	BaseDN() string
}

// Source polls a Reader and hands new snapshots to Apply.
type Source struct {
	r     directory
	ref   string
	cache string
	log   *slog.Logger
	// Apply assigns the snapshot's policy; an error keeps the running one.
	Apply func(*Snapshot) error

	mu       sync.Mutex // guards status and interval
	status   Status
	interval time.Duration
}

// NewSource returns a Source for the policy ref, caching in cachePath.
func NewSource(r directory, ref, cachePath string, interval time.Duration, log *slog.Logger) *Source {
	if log == nil {
		log = slog.Default()
	}
	return &Source{r: r, ref: ref, cache: cachePath, interval: interval, log: log,
		status: Status{Policy: ref, Container: Container(r.BaseDN()), Interval: interval, CacheFile: cachePath, Fetches: map[string]uint64{}}}
}

// Initial reads the directory, or, when no domain controller answers, the
// cache. build checks that the snapshot yields a policy; a directory
// snapshot it refuses falls back to the cache too.
func (s *Source) Initial(ctx context.Context, build func(*Snapshot) error) (*Snapshot, error) {
	snap, err := s.r.Read(ctx)
	if err == nil {
		if berr := build(snap); berr == nil {
			s.done(snap, FromDirectory, OutcomeChanged, nil)
			if cerr := SaveCache(s.cache, snap); cerr != nil {
				s.log.Warn("policy cache not written", "path", s.cache, "err", cerr)
			}
			return snap, nil
		} else {
			err = berr
		}
	}
	s.log.Warn("the directory's policy cannot be read: using the cached one", "policy", s.ref, "err", err.Error(), "cache", s.cache)
	cached, cerr := LoadCache(s.cache)
	if cerr != nil {
		s.done(nil, "", OutcomeError, err)
		return nil, fmt.Errorf("policy %q: %v; and no cached policy: %v", s.ref, err, cerr)
	}
	if berr := build(cached); berr != nil {
		s.done(nil, "", OutcomeError, err)
		return nil, fmt.Errorf("policy %q: %v; the cached one is refused too: %v", s.ref, err, berr)
	}
	s.done(cached, FromCache, OutcomeCache, err)
	return cached, nil
}

func (s *Source) done(snap *Snapshot, origin, outcome string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.status.LastAttempt = now
	s.status.Fetches[outcome]++
	if err != nil {
		s.status.LastError = err.Error()
	} else {
		s.status.LastError = ""
		s.status.LastSuccess = now
	}
	if snap != nil {
		s.status.Origin, s.status.DC, s.status.ReadAt, s.status.Stamp, s.status.Assigned = origin, snap.DC, snap.ReadAt, snap.Stamp, snap.Assigned
	}
}

// Status returns a copy of the status.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Fetches = map[string]uint64{}
	for k, v := range s.status.Fetches {
		st.Fetches[k] = v
	}
	return st
}

// Poll checks the directory once: reads the change stamp, and when it
// moved (or the running policy came from the cache) the objects, which
// Apply assigns.
func (s *Source) Poll(ctx context.Context) string {
	st, dc, err := s.r.Stamp(ctx)
	if err != nil {
		s.log.Warn("policy poll: no domain controller answered; the running policy stays", "err", err.Error())
		s.done(nil, "", OutcomeError, err)
		return OutcomeError
	}
	cur := s.Status()
	if st == cur.Stamp && cur.Origin == FromDirectory {
		s.mu.Lock()
		s.status.LastAttempt, s.status.LastSuccess, s.status.LastError = time.Now(), time.Now(), ""
		s.status.Fetches[OutcomeUnchanged]++
		s.status.DC = dc
		s.mu.Unlock()
		return OutcomeUnchanged
	}
	snap, err := s.r.Read(ctx)
	if err != nil {
		s.log.Warn("policy poll: reading the changed policy failed; the running policy stays", "err", err.Error())
		s.done(nil, "", OutcomeError, err)
		return OutcomeError
	}
	if err := s.Apply(snap); err != nil {
		s.log.Error("the directory's changed policy is refused; the running one stays", "policy", s.ref, "err", err.Error())
		s.done(nil, "", OutcomeRefused, err)
		return OutcomeRefused
	}
	if err := SaveCache(s.cache, snap); err != nil {
		s.log.Warn("policy cache not written", "path", s.cache, "err", err)
	}
	s.log.Info("policy read from the directory", "policy", s.ref, "dc", snap.DC, "stamp", snap.Stamp.String())
	s.done(snap, FromDirectory, OutcomeChanged, nil)
	return OutcomeChanged
}

// SetInterval sets the polling interval, before Run.
func (s *Source) SetInterval(d time.Duration) {
	s.mu.Lock()
	s.interval, s.status.Interval = d, d
	s.mu.Unlock()
}

// Run polls every interval until ctx ends.
func (s *Source) Run(ctx context.Context) {
	s.mu.Lock()
	interval := s.interval
	s.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Poll(ctx)
		}
	}
}
