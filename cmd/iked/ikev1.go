package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/iked/iked/config"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/transport"
)

// The IKEv1 engine beside the IKEv2 one: it exists when a connection
// speaks IKEv1 (version ikev1 or auto), and then every IKE socket is
// split between the engines by the header's major version
// (transport.Demux). Without it, IKEv1 requests reach the IKEv2 engine,
// which answers INVALID_MAJOR_VERSION, as before.

var v1DPDActions = map[string]ikev1.DPDAction{"clear": ikev1.DPDClear, "restart": ikev1.DPDRestart, "hold": ikev1.DPDHold}

// wantsIKEv1 reports whether any connection speaks IKEv1.
func wantsIKEv1(cfg *config.Config) bool {
	for _, c := range cfg.Connections {
		if c.SpeaksIKEv1() {
			return true
		}
	}
	return false
}

// ikev1Connections maps the configured IKEv1 and auto connections to the
// IKEv1 engine's.
func ikev1Connections(cfg *config.Config) []*ikev1.Connection {
	var out []*ikev1.Connection
	for _, c := range cfg.Connections {
		if !c.SpeaksIKEv1() {
			continue
		}
		mode := ike.ModeTunnel
		if c.Mode == config.ModeTransport {
			mode = ike.ModeTransport
		}
		out = append(out, &ikev1.Connection{
			Name: c.Name, Local: c.Local, Remote: c.Remote,
			LocalID:  ikev1.Identity{Type: uint8(c.LocalID.Type), Value: c.LocalID.Value},
			RemoteID: ikev1.Identity{Type: uint8(c.RemoteID.Type), Value: c.RemoteID.Value},
			Auth:     c.Auth, IKEProposals: c.IKEv1Proposals, ESPProposals: c.IKEv1ESPProposals, AllowLegacy: c.AllowLegacy,
			LocalTS: c.LocalTS, RemoteTS: c.RemoteTS, Mode: mode,
			Initiate:    c.StartAction == config.StartInitiate && c.Version == config.VersionIKEv1,
			IKELifetime: c.IKERekeyTime, Lifetime: c.RekeyTime, RekeyBytes: c.RekeyBytes, LifeBytes: c.LifeBytes,
			DPDDelay: c.DPDDelay, DPDAction: v1DPDActions[c.DPDAction], ForceEncap: c.ForceEncap,
		})
	}
	return out
}

// newIKEv1 makes the IKEv1 engine when the configuration needs one.
func (d *daemon) newIKEv1(cfg *config.Config, keyLog io.Writer) error {
	for _, w := range cfg.Warnings {
		d.log.Warn(w)
	}
	if !wantsIKEv1(cfg) {
		return nil
	}
	var err error
	d.v1, err = ikev1.New(ikev1.Config{
		Connections: ikev1Connections(cfg), SADB: d.db, Logger: d.log, KeyLog: keyLog,
		HalfOpenTimeout: cfg.IKE.HalfOpenTimeout, RetransmitTimeout: cfg.IKE.RetransmitTimeout,
		RetransmitBase: cfg.IKE.RetransmitBase, RetransmitTries: cfg.IKE.RetransmitTries,
		NoFragmentation: !cfg.IKE.Fragmentation, FragmentSize: cfg.IKE.FragmentSize, NATKeepalive: cfg.IKE.NATKeepalive,
		ForceEncap: d.dp.forceEncap,
	})
	return err
}

// addBind serves b: to the IKEv2 engine alone, or through a Demux to both.
func (d *daemon) addBind(b transport.Bind) {
	if d.v1 == nil {
		d.engine.AddBind(b)
		return
	}
	dm := transport.NewDemux(b, runtime.GOMAXPROCS(0))
	d.demuxes = append(d.demuxes, dm)
	d.engine.AddBind(dm.V2())
	d.v1.AddBind(dm.V1())
}

// reloadIKEv1 hands the reloaded connections to the IKEv1 engine.
func (d *daemon) reloadIKEv1(cfg *config.Config) error {
	for _, w := range cfg.Warnings {
		d.log.Warn(w)
	}
	if d.v1 == nil {
		if wantsIKEv1(cfg) {
			d.log.Warn("IKEv1 connections were added: the IKEv1 engine starts at the next restart")
		}
		return nil
	}
	return d.v1.SetConnections(ikev1Connections(cfg))
}

// v1Info converts an ISAKMP SA snapshot to the control API's shape: the
// cookies are the SPIs and the ID ("isakmp-N") tells it from an IKE SA.
func v1Info(s ikev1.SAInfo) ike.SAInfo {
	out := ike.SAInfo{ID: s.ID, Connection: s.Connection, SPIi: s.SPIi, SPIr: s.SPIr, State: s.State, Role: s.Role,
		LocalAddr: s.LocalAddr, RemoteAddr: s.RemoteAddr, LocalID: s.LocalID, RemoteID: s.RemoteID,
		Auth: s.Auth, Algorithms: s.Algorithms, NATLocal: s.NATLocal, NATRemote: s.NATRemote,
		Established: s.Established, Children: []ike.ChildInfo{}}
	for _, c := range s.Children {
		out.Children = append(out.Children, ike.ChildInfo{SPIIn: c.SPIIn, SPIOut: c.SPIOut, Protocol: c.Protocol, Mode: c.Mode,
			LocalTS: c.LocalTS, RemoteTS: c.RemoteTS, Algorithms: c.Algorithms, BytesIn: c.BytesIn, BytesOut: c.BytesOut,
			PacketsIn: c.PacketsIn, PacketsOut: c.PacketsOut, Installed: c.Installed})
	}
	return out
}

// allSAs lists both engines' SAs.
func (d *daemon) allSAs() []ike.SAInfo {
	sas := d.engine.SAs()
	if d.v1 != nil {
		for _, s := range d.v1.SAs() {
			sas = append(sas, v1Info(s))
		}
	}
	return sas
}

// connVersion returns the version of the named connection ("" if none).
func (d *daemon) connVersion(name string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.cfg.Connection(name); c != nil {
		return c.Version
	}
	return ""
}

// initiate establishes a connection with its version: IKEv1, IKEv2, or
// for auto IKEv2 first and IKEv1 when the peer does not speak IKEv2.
func (d *daemon) initiate(ctx context.Context, name string) ([]ike.SAInfo, error) {
	switch d.connVersion(name) {
	case config.VersionIKEv1:
		return d.initiateV1(ctx, name)
	case config.VersionAuto:
		return d.initiateAuto(ctx, name)
	}
	return d.engine.Initiate(ctx, name)
}

func (d *daemon) initiateV1(ctx context.Context, name string) ([]ike.SAInfo, error) {
	if d.v1 == nil {
		return nil, fmt.Errorf("connection %s speaks IKEv1, which starts at the next restart", name)
	}
	info, err := d.v1.Initiate(ctx, name)
	if info.ID == "" {
		return nil, err
	}
	return []ike.SAInfo{v1Info(info)}, err
}

// autoIKEv2Wait is how long an auto connection waits for an IKEv2 answer
// before it tries IKEv1: the first transmission and one retransmission.
func (d *daemon) autoIKEv2Wait() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.cfg.IKE.RetransmitTimeout
	return t + time.Duration(float64(t)*d.cfg.IKE.RetransmitBase) + t/2
}

// initiateAuto tries IKEv2 and falls back to IKEv1 when the peer does not
// answer, or answers that it does not speak IKEv2 (INVALID_MAJOR_VERSION,
// or NO_PROPOSAL_CHOSEN from a peer with only an IKEv1 configuration for
// us): what Windows 11 24H2 does. An authentication failure is an answer
// in IKEv2 and is not retried.
func (d *daemon) initiateAuto(ctx context.Context, name string) ([]ike.SAInfo, error) {
	v2ctx, cancel := context.WithTimeout(ctx, d.autoIKEv2Wait())
	sas, err := d.engine.Initiate(v2ctx, name)
	cancel()
	if err == nil {
		return sas, nil
	}
	reason := ike.FailureReason(err)
	if ctx.Err() != nil || reason == "authentication_failed" || reason == "auth_mismatch" || d.v1 == nil {
		return sas, err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "timeout"
	}
	d.log.Info("IKEv2 failed, falling back to IKEv1", "connection", name, "reason", reason, "err", err.Error())
	return d.initiateV1(ctx, name)
}

// terminate deletes SAs in the engine that owns target.
func (d *daemon) terminate(ctx context.Context, target string) (int, error) {
	if d.v1 == nil {
		return d.engine.Terminate(ctx, target)
	}
	if strings.HasPrefix(target, "isakmp-") || d.connVersion(target) == config.VersionIKEv1 {
		return d.v1.Terminate(ctx, target)
	}
	if d.connVersion(target) == config.VersionAuto {
		n1, err1 := d.v1.Terminate(ctx, target)
		n2, err2 := d.engine.Terminate(ctx, target)
		return n1 + n2, errors.Join(err1, err2)
	}
	return d.engine.Terminate(ctx, target)
}

// startAuto initiates the auto connections configured to start, retrying
// with backoff (1 s doubling to 2 min) as the engines do.
func (d *daemon) startAuto(ctx context.Context) {
	d.mu.Lock()
	var names []string
	for _, c := range d.cfg.Connections {
		if c.Version == config.VersionAuto && c.StartAction == config.StartInitiate {
			names = append(names, c.Name)
		}
	}
	d.mu.Unlock()
	for _, name := range names {
		go func() {
			wait := time.Second
			for {
				if _, err := d.initiateAuto(ctx, name); err == nil {
					return
				} else {
					d.log.Warn("start action failed, will retry", "connection", name, "err", err, "retry_in", wait.String())
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				wait = min(2*wait, 2*time.Minute)
			}
		}()
	}
}
