package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"time"

	"github.com/iked/iked/config"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ikeauto"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/metrics"
	"github.com/iked/iked/policy"
	"github.com/iked/iked/transport"
)

// The IKEv1 engine beside the IKEv2 one: it exists when a connection
// speaks IKEv1 (version ikev1 or auto), and then every IKE socket is
// split between the engines by the header's major version
// (transport.Demux). Without it, IKEv1 requests reach the IKEv2 engine,
// which answers INVALID_MAJOR_VERSION, as before.

var v1DPDActions = map[string]ikev1.DPDAction{"clear": ikev1.DPDClear, "restart": ikev1.DPDRestart, "hold": ikev1.DPDHold}

// wantsIKEv1 reports whether any connection, or a rule of the assigned
// policy, speaks IKEv1.
func wantsIKEv1(cfg *config.Config) bool {
	for _, c := range cfg.Connections {
		if c.SpeaksIKEv1() {
			return true
		}
	}
	return cfg.Policy != nil && cfg.Policy.UsesVersion(policy.VersionIKEv1)
}

// v1Connections are the IKEv1 engine's connections: the configured ones
// and the policy's responders.
func (d *daemon) v1Connections(cfg *config.Config) []*ikev1.Connection {
	conns := ikev1Connections(cfg)
	if d.agent != nil {
		conns = append(conns, d.agent.ConnectionsV1()...)
	}
	return conns
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
			// The daemon runs the start actions (startConnection), not
			// the engine: Initiate is informational.
			Initiate:    c.StartAction == config.StartInitiate && c.Version == config.VersionIKEv1,
			IKELifetime: c.IKERekeyTime, Lifetime: c.RekeyTime, RekeyBytes: c.RekeyBytes, LifeBytes: c.LifeBytes,
			DPDDelay: c.DPDDelay, DPDAction: v1DPDActions[c.DPDAction], ForceEncap: c.ForceEncap,
		})
	}
	return out
}

// newIKEv1 makes the IKEv1 engine when the configuration needs one.
func (d *daemon) newIKEv1(cfg *config.Config, keyLog io.Writer) error {
	if !wantsIKEv1(cfg) {
		return nil
	}
	var err error
	var observer ikev1.Observer
	if d.agent != nil {
		observer = d.agent.IKEv1Observer()
	}
	d.v1, err = ikev1.New(ikev1.Config{
		Connections: d.v1Connections(cfg), SADB: d.db, Logger: d.log, KeyLog: keyLog, Observer: observer,
		HalfOpenTimeout: cfg.IKE.HalfOpenTimeout, RetransmitTimeout: cfg.IKE.RetransmitTimeout,
		RetransmitBase: cfg.IKE.RetransmitBase, RetransmitTries: cfg.IKE.RetransmitTries,
		NoFragmentation: !cfg.IKE.Fragmentation, FragmentSize: cfg.IKE.FragmentSize, NATKeepalive: cfg.IKE.NATKeepalive,
		ForceEncap: d.dp.forceEncap,
	})
	if err == nil && d.agent != nil {
		d.agent.SetIKEv1(d.v1)
	}
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

// validateIKEv1 checks the IKEv1 connections of cfg as the engine will,
// so that a reload refuses them before anything changes.
func validateIKEv1(cfg *config.Config) error {
	for _, c := range ikev1Connections(cfg) {
		if err := ikev1.ValidateConnection(c); err != nil {
			return err
		}
	}
	return nil
}

// reloadIKEv1 hands the reloaded connections to the IKEv1 engine.
func (d *daemon) reloadIKEv1(cfg *config.Config) error {
	if d.v1 == nil {
		if wantsIKEv1(cfg) {
			d.log.Warn("IKEv1 connections (or policy rules with key module ikev1 or auto) were added: the IKEv1 engine starts at the next restart")
		}
		return nil
	}
	return d.v1.SetConnections(d.v1Connections(cfg))
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

// connection returns the named connection of the running configuration,
// or nil.
func (d *daemon) connection(name string) *config.Connection {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.Connection(name)
}

// connVersion returns the version of the named connection ("" if none).
func (d *daemon) connVersion(name string) string {
	if c := d.connection(name); c != nil {
		return c.Version
	}
	return ""
}

// initiate establishes a connection with its version: IKEv1, IKEv2, or
// for auto IKEv2 first and IKEv1 when the peer does not speak IKEv2. A
// connection that is up is reported as it is unless fresh asks for a new
// SA, in either version.
func (d *daemon) initiate(ctx context.Context, name string, fresh bool) ([]ike.SAInfo, error) {
	c := d.connection(name)
	if c != nil {
		switch c.Version {
		case config.VersionIKEv1:
			return d.initiateV1(ctx, c, fresh)
		case config.VersionAuto:
			return d.initiateAuto(ctx, c, fresh)
		}
	}
	return d.initiateV2(ctx, name, c, fresh)
}

// initiateV2 is the IKEv2 engine's initiation; c may be nil (an unknown
// name, which the engine refuses).
func (d *daemon) initiateV2(ctx context.Context, name string, c *config.Connection, fresh bool) ([]ike.SAInfo, error) {
	if c != nil && c.RemoteHost != "" && (fresh || !d.hasV2SA(name)) {
		// A peer by name: resolved now, for a new IKE SA.
		return d.initiateByName(ctx, c)
	}
	if fresh {
		return d.engine.InitiateNew(ctx, name)
	}
	return d.engine.Initiate(ctx, name)
}

// initiateV1 is the IKEv1 engine's initiation: an established ISAKMP SA
// of the connection with IPsec SAs is reported as it is, unless fresh,
// which asks for a new Quick Mode (over the ISAKMP SA there is, or a new
// Main Mode). A peer given by name is resolved at each initiation.
func (d *daemon) initiateV1(ctx context.Context, c *config.Connection, fresh bool) ([]ike.SAInfo, error) {
	if d.v1 == nil {
		return nil, fmt.Errorf("connection %s speaks IKEv1, which starts at the next restart", c.Name)
	}
	if !fresh {
		if sa, ok := d.upV1SA(c.Name); ok {
			return []ike.SAInfo{v1Info(sa)}, nil
		}
	}
	var info ikev1.SAInfo
	var err error
	if c.RemoteHost == "" {
		info, err = d.v1.Initiate(ctx, c.Name)
	} else {
		var remote netip.AddrPort
		if remote, err = d.resolveRemote(ctx, c); err != nil {
			return nil, err
		}
		var conn *ikev1.Connection
		for _, ec := range d.v1.Connections() {
			if ec.Name == c.Name {
				x := *ec
				conn = &x
				break
			}
		}
		if conn == nil {
			return nil, fmt.Errorf("no IKEv1 connection named %q", c.Name)
		}
		conn.Remote = remote
		d.log.Info("initiating to a peer by name", "connection", c.Name, "host", c.RemoteHost, "remote", remote.String(), "version", "ikev1")
		info, err = d.v1.InitiateConn(ctx, conn)
	}
	if info.ID == "" {
		return nil, err
	}
	return []ike.SAInfo{v1Info(info)}, err
}

// upV1SA returns an established ISAKMP SA of the named connection that
// carries IPsec SAs.
func (d *daemon) upV1SA(name string) (ikev1.SAInfo, bool) {
	if d.v1 == nil {
		return ikev1.SAInfo{}, false
	}
	for _, sa := range d.v1.SAs() {
		if sa.Connection == name && sa.State == "established" && len(sa.Children) > 0 {
			return sa, true
		}
	}
	return ikev1.SAInfo{}, false
}

// hasV2SA reports whether connection name has an IKE SA in the IKEv2
// engine.
func (d *daemon) hasV2SA(name string) bool {
	for _, sa := range d.engine.SAs() {
		if sa.Connection == name {
			return true
		}
	}
	return false
}

// autoIKEv2Wait is how long an auto connection (or policy rule) waits for
// an IKEv2 answer before it tries IKEv1 (ikeauto.Wait).
func (d *daemon) autoIKEv2Wait() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return ikeauto.Wait(d.cfg.IKE.RetransmitTimeout, d.cfg.IKE.RetransmitBase)
}

// initiateAuto tries IKEv2 and falls back to IKEv1 when the peer does not
// speak IKEv2 (ikeauto, which the policy agent's auto rules share). A
// connection up in IKEv1 is reported as it is unless fresh.
func (d *daemon) initiateAuto(ctx context.Context, c *config.Connection, fresh bool) ([]ike.SAInfo, error) {
	if !fresh {
		if sa, ok := d.upV1SA(c.Name); ok {
			return []ike.SAInfo{v1Info(sa)}, nil
		}
	}
	v2 := func(ctx context.Context) ([]ike.SAInfo, error) { return d.initiateV2(ctx, c.Name, c, fresh) }
	var v1 func(context.Context) ([]ike.SAInfo, error)
	if d.v1 != nil {
		v1 = func(ctx context.Context) ([]ike.SAInfo, error) { return d.initiateV1(ctx, c, true) }
	}
	return ikeauto.Initiate(ctx, d.autoIKEv2Wait(), v2, v1, func(reason string, err error) {
		d.log.Info("IKEv2 failed, falling back to IKEv1", "connection", c.Name, "reason", reason, "err", err.Error())
	})
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

// metricSources are the engines whose statistics /metrics serves, each
// under its version label.
func (d *daemon) metricSources() []metrics.Versioned {
	srcs := []metrics.Versioned{{Version: "ikev2", Source: d.engine}}
	if d.v1 != nil {
		srcs = append(srcs, metrics.Versioned{Version: "ikev1", Source: v1Stats{d.v1}})
	}
	return srcs
}

// v1Stats presents the IKEv1 engine's statistics in the IKEv2 engine's
// shape: ISAKMP SAs are the IKE SAs, IPsec SA pairs the Child SAs, Main
// Mode durations the handshake durations, and the rekeys of the two
// phases "ike" and "child".
type v1Stats struct{ e *ikev1.Engine }

func (v v1Stats) Stats() ike.Stats {
	s := v.e.Stats()
	rekeys := map[string]uint64{}
	for k, n := range s.Rekeys {
		switch k {
		case "isakmp":
			rekeys["ike"] += n
		case "ipsec":
			rekeys["child"] += n
		default:
			rekeys[k] += n
		}
	}
	return ike.Stats{IKESAs: s.ISAKMPSAs, ChildSAs: s.IPsecSAs, HalfOpen: s.HalfOpen,
		HandshakesCompleted: s.HandshakesCompleted, HandshakesFailed: s.HandshakesFailed,
		Retransmissions: s.Retransmissions, RetransmitsAnswered: s.RetransmitsAnswered,
		PacketsReceived: s.PacketsReceived, PacketsSent: s.PacketsSent, PacketsDropped: s.PacketsDropped,
		NotifiesSent: s.NotifiesSent, Rekeys: rekeys,
		HandshakeDuration: ike.Histogram{Bounds: s.HandshakeDuration.Bounds, Counts: s.HandshakeDuration.Counts,
			Count: s.HandshakeDuration.Count, Sum: s.HandshakeDuration.Sum}}
}
