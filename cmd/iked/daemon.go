package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iked/iked/auth/kerberos"
	"github.com/iked/iked/config"
	"github.com/iked/iked/control"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/internal/buildinfo"
	"github.com/iked/iked/metrics"
	"github.com/iked/iked/policy/agent"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transport"
	"github.com/iked/iked/vici"
)

// natTPort is the port whose datagrams carry the non-ESP marker (RFC 3948).
const natTPort = 4500

// shutdownGrace bounds how long the daemon waits for peers to confirm the
// Deletes it sends on exit.
const shutdownGrace = 5 * time.Second

// daemon is one running iked.
type daemon struct {
	configPath string
	started    time.Time
	log        *slog.Logger
	logging    *logging
	notify     *notifier
	keyLog     *os.File
	updown     *updown
	// lookup resolves the host names of connections' remotes.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// ctx ends when the daemon shuts down: the start actions' retries.
	ctx    context.Context
	cancel context.CancelFunc
	// alive is served by the main loop: the watchdog's check that it
	// still turns.
	alive chan chan struct{}

	// connMu serialises what gives the engine its connections and the
	// agent its policy, one at a time: reloads (SIGHUP, ikectl reload,
	// VICI's reload-settings), VICI's load-conn, directory policy changes.
	// Only they take it, never anything the engine or the agent calls back.
	connMu sync.Mutex

	mu  sync.Mutex
	cfg *config.Config
	// starting names the connections whose start action is running
	// (dns.go).
	starting map[string]bool

	dp      *dataPlane
	dir     *directory // nil unless policy.source is ldap
	db      *sadb.DB
	agent   *agent.Agent // nil without an assigned policy
	engine  *ike.Engine
	v1      *ikev1.Engine      // nil without IKEv1 connections (ikev1.go)
	demuxes []*transport.Demux // the sockets split between the engines
	control *control.Server
	metrics *http.Server
	vici    *vici.Server // nil unless vici_socket is set
	logTap  *vici.LogTap // feeds VICI's log events
	// totals keeps the traffic of Child SAs gone, for the per-connection
	// counters (metrics).
	totals *metrics.Totals
}

func checkConfig(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}
	if cfg.PolicySource != nil {
		fmt.Printf("%s: OK (%d connections, policy %q from the directory: iked --check-policy-ldap reads it)\n", path, len(cfg.Connections), policyRef(cfg.PolicySource))
		return 0
	}
	if cfg.Policy != nil {
		fmt.Printf("%s: OK (%d connections, policy %s with %d rules)\n", path, len(cfg.Connections), cfg.Policy.Name, len(cfg.Policy.Rules))
		return 0
	}
	fmt.Printf("%s: OK (%d connections)\n", path, len(cfg.Connections))
	return 0
}

// dpdActions maps the configuration's DPD action names.
var dpdActions = map[string]ike.DPDAction{"clear": ike.DPDClear, "restart": ike.DPDRestart, "hold": ike.DPDHold}

// engineConnections maps configured connections to the engine's.
func engineConnections(cfg *config.Config) []*ike.Connection {
	out := make([]*ike.Connection, 0, len(cfg.Connections))
	for _, c := range cfg.Connections {
		if !c.SpeaksIKEv2() {
			continue // the IKEv1 engine's (ikev1.go)
		}
		mode := ike.ModeTunnel
		if c.Mode == config.ModeTransport {
			mode = ike.ModeTransport
		}
		remote := c.Remote
		if c.RemoteHost != "" {
			// Resolved at each initiation (dns.go); any address as a
			// responder. The daemon runs the start actions, not the
			// engine (Initiate is informational).
			remote = netip.AddrPort{}
		}
		childless, _ := ike.ParseChildless(c.Childless) // checked by config
		out = append(out, &ike.Connection{
			Name: c.Name, Local: c.Local, Remote: remote, LocalID: c.LocalID, RemoteID: c.RemoteID,
			Auth: c.Auth, IKEProposals: c.IKEProposals, ESPProposals: c.ESPProposals,
			LocalTS: c.LocalTS, RemoteTS: c.RemoteTS, Mode: mode,
			Initiate:   c.StartAction == config.StartInitiate,
			ForceEncap: c.ForceEncap, RequirePQ: c.RequirePQ, RekeyTime: c.RekeyTime, IKERekeyTime: c.IKERekeyTime, ReauthTime: c.ReauthTime,
			RekeyBytes: c.RekeyBytes, LifeBytes: c.LifeBytes, DPDDelay: c.DPDDelay,
			DPDAction: dpdActions[c.DPDAction], InterfaceID: c.Interface, Childless: childless,
		})
	}
	return out
}

// openKeyLog opens the opt-in key log, private to its owner: it holds
// every session key.
func openKeyLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600) // #nosec G304 -- the key log path is the administrator's (key_log); created 0600
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func newDaemon(path string) (*daemon, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	d := &daemon{configPath: path, cfg: cfg, started: time.Now(), lookup: lookupHost, alive: make(chan chan struct{})}
	d.logging = newLogging(cfg.Log, os.Stderr, stderrIsJournal())
	// Every line also goes to VICI's log listeners, whatever the level
	// and format the reloads set.
	d.logTap = vici.NewLogTap(d.logging.logger.Handler())
	d.log = slog.New(d.logTap.Handler())
	logWarnings(d.log, cfg)
	d.notify = newNotifier(d.log)
	d.ctx, d.cancel = context.WithCancel(context.Background())
	kerberos.SetLogger(d.log) // KDC retries and keytab reloads
	if cfg.PolicySource != nil {
		// The directory's policy, or the cached one, before anything else:
		// the host must not run without its policy.
		if d.dir, err = newDirectory(context.Background(), cfg, d); err != nil {
			return nil, err
		}
	}
	if d.dp, err = openDataPlane(cfg, d.log); err != nil {
		return nil, err
	}
	if err := d.dp.supports(cfg); err != nil {
		_ = d.dp.backend.Close()
		return nil, err
	}
	d.db = sadb.New(d.dp.backend)
	var keyLog io.Writer
	if cfg.KeyLog != "" {
		if d.keyLog, err = openKeyLog(cfg.KeyLog); err != nil {
			return nil, fmt.Errorf("key log: %w", err)
		}
		keyLog = d.keyLog
		d.log.Warn("key log enabled: session keys are written to it", "path", cfg.KeyLog)
	}
	if d.agent, err = newAgent(cfg, d.dp, d); err != nil {
		_ = d.db.Close()
		return nil, err
	}
	d.updown = newUpdown(d.log, cfg)
	d.totals = metrics.NewTotals()
	observer := &observer{agent: d.agent, updown: d.updown, log: d.log, totals: d.totals}
	d.engine, err = ike.New(ike.Config{
		Connections: d.allConnections(cfg), SADB: d.db, Observer: observer,
		CookieThreshold: cfg.IKE.CookieThreshold, HalfOpenTimeout: cfg.IKE.HalfOpenTimeout,
		RetransmitTimeout: cfg.IKE.RetransmitTimeout, RetransmitBase: cfg.IKE.RetransmitBase, MaxMessageSize: cfg.IKE.MaxMessageSize,
		RetransmitTries: cfg.IKE.RetransmitTries, Logger: d.log, KeyLog: keyLog,
		NoFragmentation: !cfg.IKE.Fragmentation, FragmentSize: cfg.IKE.FragmentSize, NATKeepalive: cfg.IKE.NATKeepalive,
		ForceEncap: d.dp.forceEncap, HalfOpenPerPeer: cfg.IKE.HalfOpenPerPeer,
		AuthFailureLimit: cfg.IKE.AuthFailureLimit, AuthFailureWindow: cfg.IKE.AuthFailureWindow,
	})
	if err != nil {
		d.updown.close()
		_ = d.db.Close()
		return nil, err
	}
	if err := d.newIKEv1(cfg, keyLog); err != nil {
		_ = d.db.Close()
		return nil, err
	}
	return d, nil
}

// serve binds, serves until a terminating signal, then shuts down.
func (d *daemon) serve() (err error) {
	cfg := d.cfg
	// Signals from the start: a SIGTERM that comes while the sockets
	// open (a service manager, a test that saw the control socket) is
	// handled once the main loop runs, not fatal.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var binds []transport.Bind
	defer func() {
		if err != nil {
			for _, b := range binds {
				_ = b.Close()
			}
		}
	}()
	// The policy is enforced before any IKE or control traffic: until
	// then, traffic it must secure would flow in clear.
	if d.agent != nil {
		if err := d.agent.Start(d.engine); err != nil {
			return err
		}
		defer func() {
			if err != nil {
				_ = d.agent.Stop(context.Background())
			}
		}()
	}
	nattTaken := false
	for _, addr := range cfg.Listen {
		if addr.Port() == natTPort && d.dp.natt != nil {
			// The userspace data plane owns its NAT-T socket.
			if !nattTaken {
				binds, nattTaken = append(binds, d.dp.natt), true
			} else {
				d.log.Warn("the userspace data plane uses one NAT-T address; ignoring", "listen", addr.String())
			}
			continue
		}
		u, err := transport.ListenUDP(addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		if d.dp.prepare != nil {
			if err := d.dp.prepare(u, addr.Port() == natTPort); err != nil {
				_ = u.Close()
				return fmt.Errorf("listen %s: %s data plane: %w", addr, d.dp.name, err)
			}
		}
		var b transport.Bind = u
		if addr.Port() == natTPort {
			b = transport.WithNonESPMarker(u)
		}
		binds = append(binds, b)
	}
	// The engine reads its sockets before the control socket appears:
	// whoever sees the control socket may initiate at once.
	for _, b := range binds {
		d.addBind(b)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.ControlSocket), 0o755); err != nil { // #nosec G301 -- the control socket's directory must be traversable for control_socket_group; the socket's own mode (0600/0660) guards it
		return fmt.Errorf("control socket: %w", err)
	}
	d.control, err = control.ListenWith(cfg.ControlSocket, d, d.log, control.Options{
		Mode: cfg.ControlSocketMode, SetGID: cfg.ControlSocketGID >= 0, GID: cfg.ControlSocketGID})
	if err != nil {
		return err
	}
	go func() {
		if err := d.control.Serve(); err != nil {
			d.log.Error("control socket failed", "err", err)
		}
	}()
	if err := d.startVICI(); err != nil {
		_ = d.control.Close()
		return err
	}
	if cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			_ = d.control.Close()
			return fmt.Errorf("metrics listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", d.metricsHandler())
		d.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = d.metrics.Serve(ln) }()
	}
	listen := make([]string, len(binds))
	for i, b := range binds {
		listen[i] = b.LocalAddr().String()
	}
	bi := buildinfo.Get()
	d.log.Info("iked started", "version", bi.Version, "commit", bi.ShortCommit(), "config", d.configPath, "listen", strings.Join(listen, ","),
		"connections", len(cfg.Connections), "backend", d.dp.name, "control", cfg.ControlSocket, "metrics", cfg.MetricsListen)

	// The start actions: the daemon's own loops rather than the engine's
	// StartConnections, so that a reload can start, stop and re-resolve
	// them.
	for _, c := range cfg.Connections {
		if c.StartAction == config.StartInitiate {
			d.startConnection(c.Name)
		}
	}
	if d.dir != nil {
		d.dir.start(d)
		defer d.dir.stop()
	}
	// Sockets bound, connections loaded: systemd may start what depends
	// on iked.
	d.notify.ready(d.statusLine)
	if wd := watchdogInterval(); wd > 0 {
		go d.notify.watchdog(d.ctx, wd, d.health)
	}
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				d.reloadFromSignal()
				continue
			}
			d.log.Info("shutting down", "signal", sig.String())
			return d.shutdown()
		case reply := <-d.alive:
			close(reply)
		}
	}
}

// health is the watchdog's check: the engine's locks come free and the
// main loop turns.
func (d *daemon) health(ctx context.Context) error {
	if err := d.engine.Health(ctx); err != nil {
		return err
	}
	reply := make(chan struct{})
	select {
	case d.alive <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-reply:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// statusLine is the STATUS= systemd shows.
func (d *daemon) statusLine() string {
	st := d.engine.Stats()
	n := 0
	for _, c := range st.IKESAs {
		n += c
	}
	children := st.ChildSAs
	if d.v1 != nil {
		s1 := d.v1.Stats()
		for _, c := range s1.ISAKMPSAs {
			n += c
		}
		children += s1.IPsecSAs
	}
	d.mu.Lock()
	conns := len(d.cfg.Connections)
	d.mu.Unlock()
	return fmt.Sprintf("%d connections, %d IKE SAs, %d Child SAs", conns, n, children)
}

// shutdown deletes every IKE SA, empties the data plane and stops.
func (d *daemon) shutdown() error {
	d.notify.stopping()
	d.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	_ = d.control.Close()
	if d.vici != nil {
		_ = d.vici.Close()
	}
	var err error
	if d.v1 != nil {
		err = d.v1.Shutdown(ctx)
	}
	if e2 := d.engine.Shutdown(ctx); err == nil {
		err = e2
	}
	d.updown.close() // the scripts of the Child SAs just deleted
	if d.agent != nil {
		if aerr := d.agent.Stop(ctx); aerr != nil {
			d.log.Warn("removing the policy's data-plane rules", "err", aerr)
		}
	}
	if cerr := d.db.Close(); err == nil {
		err = cerr
	}
	if d.metrics != nil {
		_ = d.metrics.Shutdown(ctx)
	}
	if d.keyLog != nil {
		_ = d.keyLog.Close()
	}
	d.log.Info("iked stopped")
	return err
}

// The control.Handler implementation.

// SAs implements control.Handler.
func (d *daemon) SAs() []ike.SAInfo { return d.allSAs() }

// Initiate implements control.Handler.
func (d *daemon) Initiate(ctx context.Context, name string, fresh bool) ([]ike.SAInfo, error) {
	return d.initiate(ctx, name, fresh) // by version (ikev1.go)
}

// ExchangeTimeout implements control.Handler.
func (d *daemon) ExchangeTimeout() time.Duration {
	if d.v1 != nil {
		// An auto connection's IKEv2 attempt, then its IKEv1 one.
		return d.autoIKEv2Wait() + d.engine.InitiateTimeout()
	}
	return d.engine.InitiateTimeout()
}

// Terminate implements control.Handler.
func (d *daemon) Terminate(ctx context.Context, target string) (int, error) {
	return d.terminate(ctx, target)
}

// Rekey implements control.Handler: target is an IKE SA ID or a
// connection name (every established IKE SA of it, readside.go).
func (d *daemon) Rekey(ctx context.Context, target string, childSPI uint32) (string, error) {
	if d.v1 != nil && strings.HasPrefix(target, "isakmp-") {
		return d.v1.Rekey(ctx, target, childSPI)
	}
	return d.rekeyByName(ctx, target, childSPI)
}

// Status implements control.Handler.
func (d *daemon) Status() control.Status {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	stats := d.engine.Stats()
	bi := buildinfo.Get()
	st := control.Status{
		Version: bi.Version, Commit: bi.ShortCommit(), GoVersion: bi.GoVersion, PID: os.Getpid(), Started: d.started, ConfigFile: d.configPath, Backend: d.dp.name,
		ChildSAs: stats.ChildSAs, HalfOpen: stats.HalfOpen,
	}
	for _, a := range cfg.Listen {
		st.Listen = append(st.Listen, a.String())
	}
	for _, n := range stats.IKESAs {
		st.IKESAs += n
	}
	if d.v1 != nil {
		s1 := d.v1.Stats()
		for _, n := range s1.ISAKMPSAs {
			st.IKESAs += n
		}
		st.ChildSAs += s1.IPsecSAs
		st.HalfOpen += s1.HalfOpen
	}
	perConn := map[string]int{}
	for _, sa := range d.allSAs() {
		perConn[sa.Connection]++
	}
	for _, c := range cfg.Connections {
		local := "%any"
		if c.Local.IsValid() {
			local = c.Local.String()
		}
		remote := "%any"
		switch {
		case c.RemoteHost != "":
			remote = net.JoinHostPort(c.RemoteHost, fmt.Sprint(c.Remote.Port()))
		case !c.RemoteIsAny():
			remote = c.Remote.String()
		}
		st.Connections = append(st.Connections, control.ConnectionStatus{
			Name: c.Name, Local: local, Remote: remote, LocalID: c.LocalID.String(), RemoteID: c.RemoteID.String(),
			Auth: c.AuthName, IKEProposals: strings.Join(c.IKEProposalStrings, ","),
			ESPProposals: strings.Join(c.ESPProposalStrings, ","), Mode: c.Mode, StartAction: c.StartAction,
			IKESAs: perConn[c.Name],
		})
	}
	return st
}

var _ control.Handler = (*daemon)(nil)
