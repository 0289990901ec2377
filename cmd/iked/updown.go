package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iked/iked/config"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/sadb"
)

// updown runs the connections' updown scripts (key "updown") when a Child
// SA comes up and when it goes down, with the variables strongSwan's
// updown plugin sets (PLUTO_VERB up-client, down-client, …) and iked's
// own (IKED_*), documented in docs/configuration.md. A script runs once
// per pair of local and remote subnets, as strongSwan's does.
//
// Rekeys run nothing: a rekeyed Child SA keeps its ReqID, and a script
// runs "up" when a ReqID's first Child SA is installed and "down" when its
// last is removed. Only connections that name a script run one; the
// policy's connections and connections without "updown" never do.
//
// The engine calls ChildSAUp and ChildSADown with an IKE SA's lock held:
// they only queue the work. One goroutine runs the scripts in order, each
// bounded by the connection's updown_timeout.
type updown struct {
	log *slog.Logger

	mu      sync.Mutex // guards the fields below
	scripts map[string]config.Updown
	live    map[uint32]*liveChild // by ReqID
	queue   []updownJob
	wake    chan struct{} // a job was queued
	closed  bool
	done    chan struct{} // the worker has returned
}

// liveChild is a ReqID with Child SAs: the script that ran for its "up"
// runs for its "down", even if the configuration changed since.
type liveChild struct {
	n      int
	script config.Updown
}

// updownJob is one run of a script.
type updownJob struct {
	up     bool
	ev     ike.ChildSAEvent
	script config.Updown
}

func newUpdown(log *slog.Logger, cfg *config.Config) *updown {
	u := &updown{log: log, live: map[uint32]*liveChild{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	u.configure(cfg)
	go u.run()
	return u
}

// configure takes the scripts of cfg's connections.
func (u *updown) configure(cfg *config.Config) {
	scripts := map[string]config.Updown{}
	for _, c := range cfg.Connections {
		if c.Updown.Script != "" {
			scripts[c.Name] = c.Updown
		}
	}
	u.mu.Lock()
	u.scripts = scripts
	u.mu.Unlock()
}

// ChildSAUp implements ike.ChildObserver.
func (u *updown) ChildSAUp(ev ike.ChildSAEvent) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if l := u.live[ev.ReqID]; l != nil {
		l.n++ // a rekey
		return
	}
	script, ok := u.scripts[ev.Connection]
	if !ok {
		return
	}
	u.live[ev.ReqID] = &liveChild{n: 1, script: script}
	u.enqueue(updownJob{up: true, ev: ev, script: script})
}

// ChildSADown implements ike.ChildObserver.
func (u *updown) ChildSADown(ev ike.ChildSAEvent) {
	u.mu.Lock()
	defer u.mu.Unlock()
	l := u.live[ev.ReqID]
	if l == nil {
		return
	}
	if l.n--; l.n > 0 {
		return // a rekey replaced it
	}
	delete(u.live, ev.ReqID)
	u.enqueue(updownJob{up: false, ev: ev, script: l.script})
}

// enqueue queues j. Caller holds mu.
func (u *updown) enqueue(j updownJob) {
	if u.closed {
		return
	}
	u.queue = append(u.queue, j)
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// run runs the queued scripts until close, then those still queued.
func (u *updown) run() {
	defer close(u.done)
	for {
		u.mu.Lock()
		jobs, closed := u.queue, u.closed
		u.queue = nil
		u.mu.Unlock()
		for _, j := range jobs {
			u.runJob(j)
		}
		if closed && len(jobs) == 0 {
			return
		}
		if len(jobs) == 0 {
			<-u.wake
		}
	}
}

// close runs what is queued (the downs of shutdown) and stops.
func (u *updown) close() {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	select {
	case u.wake <- struct{}{}:
	default:
	}
	<-u.done
}

// runJob runs the script once per pair of local and remote subnets.
func (u *updown) runJob(j updownJob) {
	for _, env := range updownEnvs(j.up, j.ev) {
		u.exec(j, env)
	}
}

// maxScriptOutput bounds the output of a script kept for the log.
const maxScriptOutput = 4096

func (u *updown) exec(j updownJob, env []string) {
	verb := env[1][len("PLUTO_VERB="):]
	ctx, cancel := context.WithTimeout(context.Background(), j.script.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.script.Script) // #nosec G204 -- the updown script is the administrator's (updown: in iked.yaml), run without a shell; the peer supplies only environment values
	cmd.Env = env
	cmd.Dir = "/"
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second // a background child holding the pipes open
	start := time.Now()
	err := cmd.Run()
	attrs := []any{"connection", j.ev.Connection, "verb", verb, "script", j.script.Script, "ike_sa", j.ev.IKESA,
		"reqid", j.ev.ReqID, "took", time.Since(start).Round(time.Millisecond).String()}
	if s := strings.TrimSpace(out.String()); s != "" {
		attrs = append(attrs, "output", s)
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		u.log.Error("updown script timed out and was killed", append(attrs, "timeout", j.script.Timeout.String())...)
	case err == nil:
		u.log.Info("updown script ran", append(attrs, "exit", 0)...)
	case errors.As(err, &ee):
		u.log.Warn("updown script failed", append(attrs, "exit", ee.ExitCode(), "status", ee.String())...)
	default:
		u.log.Error("updown script could not run", append(attrs, "err", err)...)
	}
}

// limitedBuffer keeps the first maxScriptOutput bytes written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := maxScriptOutput - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// updownEnvs are the environments of one event's runs: one per pair of
// local and remote subnets. The first two entries are PATH and
// PLUTO_VERB.
func updownEnvs(up bool, ev ike.ChildSAEvent) [][]string {
	var out [][]string
	me, peer := ev.Local.Addr().Unmap(), ev.Remote.Addr().Unmap()
	for _, l := range ev.LocalTS {
		for _, lp := range sadb.RangePrefixes(l.StartAddr, l.EndAddr) {
			for _, r := range ev.RemoteTS {
				for _, rp := range sadb.RangePrefixes(r.StartAddr, r.EndAddr) {
					if lp.Addr().Is4() != rp.Addr().Is4() {
						continue
					}
					out = append(out, updownEnv(up, ev, me, peer, l, lp, r, rp))
				}
			}
		}
	}
	return out
}

func updownEnv(up bool, ev ike.ChildSAEvent, me, peer netip.Addr, l wire.TrafficSelector, lp netip.Prefix, r wire.TrafficSelector, rp netip.Prefix) []string {
	verb := "up"
	if !up {
		verb = "down"
	}
	// "host" when this side protects only its own address, as
	// strongSwan's updown says.
	if lp.IsSingleIP() && lp.Addr() == me {
		verb += "-host"
	} else {
		verb += "-client"
	}
	if lp.Addr().Is6() {
		verb += "-v6"
	}
	role := "responder"
	if ev.Initiator {
		role = "initiator"
	}
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PLUTO_VERB=" + verb,
		"PLUTO_VERSION=1.1",
		"PLUTO_CONNECTION=" + ev.Connection,
		"PLUTO_UNIQUEID=" + strings.TrimPrefix(ev.IKESA, "ike-"),
		"PLUTO_REQID=" + strconv.FormatUint(uint64(ev.ReqID), 10),
		"PLUTO_PROTO=esp",
		"PLUTO_ME=" + me.String(),
		"PLUTO_MY_ID=" + ev.LocalID,
		"PLUTO_MY_CLIENT=" + lp.String(),
		"PLUTO_MY_CLIENT_NET=" + lp.Addr().String(),
		"PLUTO_MY_CLIENT_MASK=" + prefixMask(lp),
		"PLUTO_MY_PORT=" + strconv.Itoa(int(tsPort(l))),
		"PLUTO_MY_PROTOCOL=" + strconv.Itoa(int(l.IPProtocol)),
		"PLUTO_PEER=" + peer.String(),
		"PLUTO_PEER_ID=" + ev.RemoteID,
		"PLUTO_PEER_CLIENT=" + rp.String(),
		"PLUTO_PEER_CLIENT_NET=" + rp.Addr().String(),
		"PLUTO_PEER_CLIENT_MASK=" + prefixMask(rp),
		"PLUTO_PEER_PORT=" + strconv.Itoa(int(tsPort(r))),
		"PLUTO_PEER_PROTOCOL=" + strconv.Itoa(int(r.IPProtocol)),
		"IKED_IKE_SA=" + ev.IKESA,
		"IKED_ROLE=" + role,
		"IKED_MODE=" + ev.Mode.String(),
		"IKED_SPI_IN=" + fmt.Sprintf("%08x", ev.SPIIn),
		"IKED_SPI_OUT=" + fmt.Sprintf("%08x", ev.SPIOut),
		"IKED_LOCAL_ADDR=" + ev.Local.String(),
		"IKED_REMOTE_ADDR=" + ev.Remote.String(),
	}
	if ev.Encap {
		env = append(env, "PLUTO_UDP_ENC="+strconv.Itoa(int(ev.Remote.Port())))
	}
	return env
}

// prefixMask is a prefix's netmask, dotted for IPv4 (as strongSwan's
// PLUTO_MY_CLIENT_MASK), the prefix length for IPv6.
func prefixMask(p netip.Prefix) string {
	if p.Addr().Is4() {
		return net.IP(net.CIDRMask(p.Bits(), 32)).String()
	}
	return strconv.Itoa(p.Bits())
}

// tsPort is a selector's port when it names one, else 0.
func tsPort(ts wire.TrafficSelector) uint16 {
	if ts.StartPort == ts.EndPort {
		return ts.StartPort
	}
	return 0
}
