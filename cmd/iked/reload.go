package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/iked/iked/config"
	"github.com/iked/iked/control"
	"github.com/iked/iked/ike"
)

// Reload implements control.Reloader: `ikectl reload` and systemd's
// ExecReload wait for its answer.
func (d *daemon) Reload(ctx context.Context) (*control.ReloadResult, error) {
	return d.reload(ctx)
}

// reload re-reads the configuration file and applies it: connections
// added, changed and removed (the SAs of removed and changed connections
// are deleted, the others kept), the policy reassigned, the log settings
// changed. Settings that need a restart are named in the answer. On error
// (the file's errors, one "file:line: message" per line) nothing changes.
// SIGHUP and `ikectl reload` both come here, one at a time.
func (d *daemon) reload(ctx context.Context) (*control.ReloadResult, error) {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	d.notify.reloading()
	defer d.notify.ready(d.statusLine)

	cfg, err := config.Load(d.configPath)
	if err == nil && (cfg.PolicySource == nil) != (d.dir == nil) {
		err = fmt.Errorf("%s: changing policy.source takes effect at restart", d.configPath)
	}
	if err == nil {
		// A data plane cannot change without a restart: what the new
		// file asks of it must be what the running one can do.
		err = d.dp.supports(cfg)
	}
	if err == nil {
		err = validateIKEv1(cfg)
	}
	if err == nil && d.dir != nil {
		// The running directory policy, mapped with the new methods.
		err = d.dir.rebuild(cfg)
	}
	if err != nil {
		d.log.Error("configuration refused; the running one stays", "err", err.Error())
		return nil, err
	}
	logWarnings(d.log, cfg)
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	res := &control.ReloadResult{ConfigFile: d.configPath}
	diffConnections(old, cfg, res)
	res.RestartNeeded = restartNeeded(old, cfg)

	ctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	policyRemoved, err := d.reloadPolicy(ctx, old, cfg)
	if err != nil {
		err = fmt.Errorf("%s: %w", d.configPath, err)
		d.log.Error("configuration refused; the running one stays", "err", err.Error())
		return nil, err
	}
	// The SAs to judge are those made before the new connections apply:
	// one a changed connection makes from now on has the new settings.
	before := d.allSAs()
	if err := d.engine.SetConnections(d.allConnections(cfg)); err != nil {
		err = fmt.Errorf("%s: %w", d.configPath, err)
		d.log.Error("configuration refused; the running one stays", "err", err.Error())
		return nil, err
	}
	if err := d.reloadIKEv1(cfg); err != nil {
		// validateIKEv1 passed: not expected.
		d.log.Error("IKEv1 connections refused; the running ones stay", "err", err.Error())
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.updown.configure(cfg)
	if old.Log != cfg.Log {
		d.logging.set(cfg.Log)
		if old.Log.Level != cfg.Log.Level {
			res.Applied = append(res.Applied, fmt.Sprintf("log.level: %s -> %s", old.Log.Level, cfg.Log.Level))
		}
		if old.Log.Format != cfg.Log.Format {
			res.Applied = append(res.Applied, fmt.Sprintf("log.format: %s -> %s", old.Log.Format, cfg.Log.Format))
		}
	}

	if old.MetricsPerSALimit != cfg.MetricsPerSALimit {
		// The tunnel collector reads it at each scrape.
		res.Applied = append(res.Applied, fmt.Sprintf("metrics_per_sa_limit: %d -> %d", old.MetricsPerSALimit, cfg.MetricsPerSALimit))
	}
	if old.Policy != nil && cfg.Policy != nil && old.Policy.Name != cfg.Policy.Name {
		res.Applied = append(res.Applied, fmt.Sprintf("policy: %s -> %s", old.Policy.Name, cfg.Policy.Name))
	}
	d.settleSAs(ctx, res, before, policyRemoved)
	for _, name := range slices.Concat(res.Added, res.Changed, res.Updated) {
		if c := cfg.Connection(name); c != nil && c.StartAction == config.StartInitiate && !d.hasSA(name) {
			d.startConnection(c.Name)
		}
	}
	d.logReload(res)
	return res, nil
}

// diffConnections sorts the connections of the new configuration by what
// the reload does to them.
func diffConnections(old, cfg *config.Config, res *control.ReloadResult) {
	for _, c := range cfg.Connections {
		o := old.Connection(c.Name)
		switch {
		case o == nil:
			res.Added = append(res.Added, c.Name)
		case o.Fingerprint != c.Fingerprint:
			res.Changed = append(res.Changed, c.Name)
		case o.StartAction != c.StartAction || o.Updown != c.Updown:
			res.Updated = append(res.Updated, c.Name)
		default:
			res.Unchanged = append(res.Unchanged, c.Name)
		}
	}
	for _, o := range old.Connections {
		if cfg.Connection(o.Name) == nil {
			res.Removed = append(res.Removed, o.Name)
		}
	}
}

// settleSAs deletes the IKE SAs of removed and changed connections and
// lists every SA as kept or terminated, with why.
func (d *daemon) settleSAs(ctx context.Context, res *control.ReloadResult, before []ike.SAInfo, policyRemoved []string) {
	why := map[string]string{}
	for _, n := range res.Removed {
		why[n] = "connection removed"
	}
	for _, n := range res.Changed {
		why[n] = "connection changed: its SAs were negotiated with the old settings"
	}
	kept := map[string]string{}
	for _, n := range res.Unchanged {
		kept[n] = "connection unchanged"
	}
	for _, n := range res.Updated {
		kept[n] = "only start_action or updown changed"
	}
	for _, id := range policyRemoved {
		res.Terminated = append(res.Terminated, control.ReloadSA{ID: id, Reason: "the new policy no longer allows it"})
	}
	for _, sa := range before {
		if slices.Contains(policyRemoved, sa.ID) {
			continue
		}
		if reason, ok := why[sa.Connection]; ok {
			if _, err := d.terminate(ctx, sa.ID); err != nil {
				if !d.hasSAID(sa.ID) {
					continue // gone meanwhile
				}
				res.Kept = append(res.Kept, control.ReloadSA{ID: sa.ID, Connection: sa.Connection, Reason: reason + "; deleting it failed: " + err.Error()})
				continue
			}
			res.Terminated = append(res.Terminated, control.ReloadSA{ID: sa.ID, Connection: sa.Connection, Reason: reason})
			continue
		}
		reason, ok := kept[sa.Connection]
		if !ok {
			reason = "the policy still allows it"
		}
		res.Kept = append(res.Kept, control.ReloadSA{ID: sa.ID, Connection: sa.Connection, Reason: reason})
	}
}

// hasSA reports whether connection name has an IKE SA (or an ISAKMP SA).
func (d *daemon) hasSA(name string) bool {
	for _, sa := range d.allSAs() {
		if sa.Connection == name {
			return true
		}
	}
	return false
}

// hasSAID reports whether the IKE SA (or ISAKMP SA) with that ID exists.
func (d *daemon) hasSAID(id string) bool {
	for _, sa := range d.allSAs() {
		if sa.ID == id {
			return true
		}
	}
	return false
}

// restartNeeded names the settings that changed but that the running
// daemon cannot take over: its sockets, data plane, key log, and the IKE
// engine's tunables, which the engine reads without synchronisation.
func restartNeeded(old, cfg *config.Config) []string {
	var out []string
	add := func(key string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, fmt.Sprintf("%s: %s -> %s", key, show(a), show(b)))
		}
	}
	add("listen", old.Listen, cfg.Listen)
	add("control_socket", old.ControlSocket, cfg.ControlSocket)
	add("control_socket_group", old.ControlSocketGID, cfg.ControlSocketGID)
	add("control_socket_mode", old.ControlSocketMode, cfg.ControlSocketMode)
	add("vici_socket", old.ViciSocket, cfg.ViciSocket)
	add("metrics_listen", old.MetricsListen, cfg.MetricsListen)
	add("backend", old.Backend, cfg.Backend)
	add("key_log", old.KeyLog, cfg.KeyLog)
	o, n := reflect.ValueOf(old.Userspace), reflect.ValueOf(cfg.Userspace)
	for i := range o.NumField() {
		add("userspace."+o.Type().Field(i).Name, o.Field(i).Interface(), n.Field(i).Interface())
	}
	o, n = reflect.ValueOf(old.IKE), reflect.ValueOf(cfg.IKE)
	for i := range o.NumField() {
		add("ike."+ikeKeys[o.Type().Field(i).Name], o.Field(i).Interface(), n.Field(i).Interface())
	}
	return out
}

// ikeKeys are the configuration keys of config.IKE's fields.
var ikeKeys = map[string]string{
	"CookieThreshold": "cookie_threshold", "HalfOpenTimeout": "half_open_timeout",
	"RetransmitTimeout": "retransmit_timeout", "RetransmitBase": "retransmit_base",
	"RetransmitTries": "retransmit_tries", "Fragmentation": "fragmentation",
	"FragmentSize": "fragment_size", "NATKeepalive": "nat_keepalive", "MaxMessageSize": "max_message_size",
	"HalfOpenPerPeer": "half_open_per_peer", "AuthFailureLimit": "auth_failure_limit", "AuthFailureWindow": "auth_failure_window",
}

// logWarnings logs the configuration's warnings (config.Warning): set-ups
// that run but are weak.
func logWarnings(log *slog.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		log.Warn("configuration: "+w.Msg, "file", w.File, "line", w.Line)
	}
}

// reloadConfig reloads for VICI's reload-settings: the same reload,
// answering only whether it was refused.
func (d *daemon) reloadConfig() error {
	_, err := d.reload(context.Background())
	return err
}

// show formats a setting's value for the reload answer.
func show(v any) string {
	switch x := v.(type) {
	case []netip.AddrPort:
		s := make([]string, len(x))
		for i, a := range x {
			s[i] = a.String()
		}
		return "[" + strings.Join(s, ", ") + "]"
	case []netip.Prefix:
		s := make([]string, len(x))
		for i, a := range x {
			s[i] = a.String()
		}
		return "[" + strings.Join(s, ", ") + "]"
	case string:
		if x == "" {
			return `""`
		}
		return x
	}
	return fmt.Sprint(v)
}

// logReload logs the reload's summary: the same for SIGHUP and ikectl.
func (d *daemon) logReload(res *control.ReloadResult) {
	d.log.Info("configuration reloaded", "connections_added", res.Added, "connections_changed", res.Changed,
		"connections_updated", res.Updated, "connections_removed", res.Removed, "connections_unchanged", len(res.Unchanged),
		"sas_kept", len(res.Kept), "sas_terminated", len(res.Terminated), "applied", res.Applied)
	for _, sa := range res.Terminated {
		d.log.Info("reload terminated an IKE SA", "ike_sa", sa.ID, "connection", sa.Connection, "why", sa.Reason)
	}
	if len(res.RestartNeeded) > 0 {
		d.log.Warn("settings changed that take effect only at restart; the running values stay", "settings", res.RestartNeeded)
	}
}

// reloadFromSignal is SIGHUP's reload: the answer goes to the log only.
func (d *daemon) reloadFromSignal() {
	_, _ = d.reload(context.Background())
}

var _ control.Reloader = (*daemon)(nil)
