package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/internal/buildinfo"
	"github.com/iked/iked/vici"
)

// viciIKEv1 shows VICI the IKEv1 engine's SAs in the IKEv2 engine's shape
// (v1Info) and deletes them.
type viciIKEv1 struct{ d *daemon }

func (v viciIKEv1) SAs() []ike.SAInfo {
	var out []ike.SAInfo
	for _, s := range v.d.v1.SAs() {
		out = append(out, v1Info(s))
	}
	return out
}

func (v viciIKEv1) Terminate(ctx context.Context, target string) (int, error) {
	return v.d.v1.Terminate(ctx, target)
}

// startVICI listens on the VICI socket when vici_socket is set, so that
// strongSwan's swanctl and VICI clients drive the daemon (docs/vici.md).
func (d *daemon) startVICI() error {
	cfg := d.cfg
	if cfg.ViciSocket == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.ViciSocket), 0o755); err != nil { // #nosec G301 -- as the control socket's directory: the socket's own mode (0600) guards it
		return fmt.Errorf("vici socket: %w", err)
	}
	plugins := append([]string{"ike", "vici", d.dp.name}, auth.Names()...)
	var v1 vici.IKEv1
	if d.v1 != nil {
		v1, plugins = viciIKEv1{d}, append(plugins, "ikev1")
	}
	s, err := vici.Listen(vici.Config{
		Path: cfg.ViciSocket, Engine: d.engine, Version: buildinfo.Get().Version, Started: d.started, Plugins: plugins,
		FileConnections: d.fileConnections, SetConnections: d.setVICIConnections, Reload: d.reloadConfig,
		Logger: d.log, Tap: d.logTap, IKEv1: v1,
	})
	if err != nil {
		return err
	}
	d.vici = s
	go func() {
		if err := s.Serve(); err != nil {
			d.log.Error("vici socket failed", "err", err)
		}
	}()
	return nil
}

// fileConnections names the connections of the configuration file.
func (d *daemon) fileConnections() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	names := make([]string, len(d.cfg.Connections))
	for i, c := range d.cfg.Connections {
		names[i] = c.Name
	}
	return names
}

// setVICIConnections gives the engine the file's connections (and the
// policy's) with those loaded over VICI.
func (d *daemon) setVICIConnections(loaded []*ike.Connection) error {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	conns := engineConnections(cfg)
	if d.agent != nil {
		conns = append(conns, d.agent.Connections()...)
	}
	return d.engine.SetConnections(append(conns, loaded...))
}
