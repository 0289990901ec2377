package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/metrics"
	"github.com/iked/iked/transform"
)

// The control socket's read side beyond sas and status (list-conns,
// list-certs, stats) and the finer controls (terminate one Child SA,
// rekey by connection name).

// ListConns implements control.ReadSide: every connection the engine
// has, the file's, the policy's and VICI's.
func (d *daemon) ListConns() []control.ConnectionInfo {
	cfg := d.config()
	fromVICI := map[string]bool{}
	if d.vici != nil {
		for _, c := range d.vici.Connections() {
			fromVICI[c.Name] = true
		}
	}
	type count struct{ ike, established, child int }
	counts := map[string]*count{}
	for _, sa := range d.engine.SAs() {
		n := counts[sa.Connection]
		if n == nil {
			n = &count{}
			counts[sa.Connection] = n
		}
		n.ike++
		if sa.State == "established" {
			n.established++
		}
		n.child += len(sa.Children)
	}
	var out []control.ConnectionInfo
	for _, c := range d.engine.Connections() {
		ci := control.ConnectionInfo{
			ConnectionStatus: control.ConnectionStatus{
				Name: c.Name, Local: "%any", Remote: "%any", LocalID: c.LocalID.String(), RemoteID: c.RemoteID.String(),
				IKEProposals: proposalList(c.IKEProposals), ESPProposals: proposalList(c.ESPProposals), Mode: c.Mode.String(), StartAction: "none",
			},
			LocalTS: tsList(c.LocalTS), RemoteTS: tsList(c.RemoteTS),
			RekeyTime: seconds(c.RekeyTime), IKERekeyTime: seconds(c.IKERekeyTime), ReauthTime: seconds(c.ReauthTime),
			DPDDelay: seconds(c.DPDDelay), DPDAction: dpdActionName(c.DPDAction), Source: "policy", State: "down",
		}
		if c.Auth != nil {
			ci.Auth = c.Auth.Name()
		}
		if c.Local.IsValid() {
			ci.Local = c.Local.String()
		}
		if c.Remote.Addr().IsValid() {
			ci.Remote = c.Remote.String()
		}
		if c.Initiate {
			ci.StartAction = "initiate"
		}
		switch fc := cfg.Connection(c.Name); {
		case fromVICI[c.Name]:
			ci.Source = "vici"
		case fc != nil:
			ci.Source = "file"
			ci.StartAction = fc.StartAction
			ci.IKEProposals, ci.ESPProposals = strings.Join(fc.IKEProposalStrings, ","), strings.Join(fc.ESPProposalStrings, ",")
			if fc.RemoteHost != "" {
				ci.Remote = net.JoinHostPort(fc.RemoteHost, strconv.Itoa(int(fc.Remote.Port())))
			}
		}
		if n := counts[c.Name]; n != nil {
			ci.IKESAs, ci.ChildSAs = n.ike, n.child
			ci.State = "connecting"
			if n.established > 0 {
				ci.State = "up"
			}
		}
		out = append(out, ci)
	}
	return out
}

func proposalList(ps []transform.Proposal) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func tsList(ts []wire.TrafficSelector) []string {
	if len(ts) == 0 {
		return []string{"dynamic"}
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = ike.FormatTrafficSelector(t)
	}
	return out
}

func seconds(d time.Duration) int64 { return int64(d / time.Second) }

func dpdActionName(a ike.DPDAction) string {
	for name, v := range dpdActions {
		if v == a {
			return name
		}
	}
	return "clear"
}

// ListCerts implements control.ReadSide.
func (d *daemon) ListCerts() []control.CertificateInfo {
	var out []control.CertificateInfo
	for _, c := range d.certificates() {
		ci := control.CertificateInfo{
			Kind: c.Kind, Subject: c.Cert.Subject.String(), Issuer: c.Cert.Issuer.String(), Serial: metrics.SerialString(c.Cert),
			NotBefore: c.Cert.NotBefore, NotAfter: c.Cert.NotAfter, Key: keyName(c.Cert), Connections: c.Connections,
		}
		if ci.Connections == nil {
			ci.Connections = []string{}
		}
		ci.AltNames = append(ci.AltNames, c.Cert.DNSNames...)
		ci.AltNames = append(ci.AltNames, c.Cert.EmailAddresses...)
		for _, ip := range c.Cert.IPAddresses {
			ci.AltNames = append(ci.AltNames, ip.String())
		}
		out = append(out, ci)
	}
	return out
}

// keyName names a certificate's public key: "RSA 3072", "ECDSA P-256",
// "Ed25519".
func keyName(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}

// Stats implements control.ReadSide.
func (d *daemon) Stats() control.Stats {
	s := d.engine.Stats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return control.Stats{
		Started: d.started, Goroutines: runtime.NumGoroutine(), HeapBytes: ms.HeapAlloc,
		IKESAs: s.IKESAs, HalfOpen: s.HalfOpen, ChildSAs: s.ChildSAs,
		HandshakesCompleted: s.HandshakesCompleted, HandshakesFailed: s.HandshakesFailed, Rekeys: s.Rekeys,
		PacketsReceived: s.PacketsReceived, PacketsSent: s.PacketsSent, PacketsDropped: s.PacketsDropped,
		Retransmissions: s.Retransmissions, RetransmitsAnswered: s.RetransmitsAnswered, NotifiesSent: s.NotifiesSent,
	}
}

// targetSAs resolves target, an IKE SA ID or a connection name, to the
// IKE SAs it names: for a name, its established ones.
func (d *daemon) targetSAs(target string) ([]ike.SAInfo, error) {
	sas := d.engine.SAs()
	for _, sa := range sas {
		if sa.ID == target {
			return []ike.SAInfo{sa}, nil
		}
	}
	var out []ike.SAInfo
	known := false
	for _, c := range d.engine.Connections() {
		known = known || c.Name == target
	}
	for _, sa := range sas {
		if sa.Connection == target && sa.State == "established" {
			out = append(out, sa)
		}
	}
	switch {
	case len(out) > 0:
		return out, nil
	case known:
		return nil, fmt.Errorf("connection %s has no established IKE SA", target)
	}
	return nil, fmt.Errorf("no IKE SA or connection named %q", target)
}

// TerminateChild implements control.ChildTerminator.
func (d *daemon) TerminateChild(ctx context.Context, target string, spi uint32) (string, error) {
	sas, err := d.targetSAs(target)
	if err != nil {
		return "", err
	}
	want := fmt.Sprintf("%08x", spi)
	for _, sa := range sas {
		for _, c := range sa.Children {
			if c.SPIIn == want {
				return sa.ID, d.engine.TerminateChild(ctx, sa.ID, spi)
			}
		}
	}
	return "", fmt.Errorf("%s has no Child SA with inbound SPI %s", target, want)
}

// RekeyChildren implements control.ChildrenRekeyer: each Child SA of the
// target's IKE SAs, one after the other.
func (d *daemon) RekeyChildren(ctx context.Context, target string) ([]string, error) {
	sas, err := d.targetSAs(target)
	if err != nil {
		return nil, err
	}
	before := map[string]bool{}
	var errs []error
	for _, sa := range sas {
		for _, c := range sa.Children {
			before[c.SPIIn] = true
			spi, err := strconv.ParseUint(c.SPIIn, 16, 32)
			if err != nil {
				continue
			}
			if err := d.engine.CreateChild(ctx, sa.ID, uint32(spi)); err != nil {
				errs = append(errs, fmt.Errorf("rekeying Child SA %s of %s: %w", c.SPIIn, sa.ID, err))
			}
		}
	}
	if len(before) == 0 {
		return nil, fmt.Errorf("%s has no Child SA", target)
	}
	var fresh []string
	for _, sa := range d.engine.SAs() {
		for _, c := range sa.Children {
			if !before[c.SPIIn] && (sa.Connection == target || containsID(sas, sa.ID)) {
				fresh = append(fresh, c.SPIIn)
			}
		}
	}
	return fresh, errors.Join(errs...)
}

func containsID(sas []ike.SAInfo, id string) bool {
	for _, sa := range sas {
		if sa.ID == id {
			return true
		}
	}
	return false
}

var (
	_ control.ReadSide        = (*daemon)(nil)
	_ control.ChildTerminator = (*daemon)(nil)
	_ control.ChildrenRekeyer = (*daemon)(nil)
)

// rekeyByName rekeys the IKE SAs target names (an ID, or a connection's
// established ones) or, with childSPI, that Child SA of them, and returns
// the IDs of the IKE SAs now carrying them.
func (d *daemon) rekeyByName(ctx context.Context, target string, childSPI uint32) (string, error) {
	sas, err := d.targetSAs(target)
	if err != nil {
		return "", err
	}
	if childSPI != 0 {
		want := fmt.Sprintf("%08x", childSPI)
		for _, sa := range sas {
			for _, c := range sa.Children {
				if c.SPIIn == want {
					return sa.ID, d.engine.CreateChild(ctx, sa.ID, childSPI)
				}
			}
		}
		if len(sas) == 1 && sas[0].ID == target {
			// Let the engine say what is wrong with the SPI.
			return target, d.engine.CreateChild(ctx, target, childSPI)
		}
		return "", fmt.Errorf("%s has no Child SA with inbound SPI %s", target, want)
	}
	var ids []string
	var errs []error
	for _, sa := range sas {
		id, err := d.engine.RekeyIKE(ctx, sa.ID)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sa.ID, err))
			continue
		}
		ids = append(ids, id)
	}
	if len(sas) == 1 && len(errs) == 1 {
		return "", errors.Unwrap(errs[0])
	}
	return strings.Join(ids, ", "), errors.Join(errs...)
}
