package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/internal/buildinfo"
	"github.com/iked/iked/vici"
)

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
	s, err := vici.Listen(vici.Config{
		Path: cfg.ViciSocket, Engine: d.engine, Version: buildinfo.Get().Version, Started: d.started, Plugins: plugins,
		FileConnections: d.fileConnections, SetConnections: d.setVICIConnections, Reload: d.reloadConfig,
		Logger: d.log, Tap: d.logTap,
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
