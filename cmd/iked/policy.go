package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"

	"github.com/iked/iked/config"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ikeauto"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/policy/agent"
	"github.com/iked/iked/policy/nft"
	"github.com/iked/iked/policy/xfrmpolicy"
	"github.com/iked/iked/sadb/userspace"
	"github.com/iked/iked/sadb/xfrm"
	"github.com/iked/iked/transform"
)

// newAgent builds the policy agent for the assigned policy; nil when no
// policy is assigned. The userspace data plane enforces the policy with
// nftables and steers the marked traffic into its TUN device; the xfrm one
// with XFRM policies; the memory one decides without enforcing (tests,
// demos).
func newAgent(cfg *config.Config, dp *dataPlane, d *daemon) (*agent.Agent, error) {
	if cfg.Policy == nil {
		return nil, nil
	}
	o := cfg.PolicyOptions
	ac := agent.Config{
		Policy: cfg.Policy, Auth: cfg.Authentication, Template: policyTemplate(dp), TemplateV1: policyTemplateV1(dp),
		AutoWait: ikeauto.Wait(cfg.IKE.RetransmitTimeout, cfg.IKE.RetransmitBase),
		ClearTTL: o.ClearTTL, RetryAfter: o.RetryAfter, Logger: d.log, LocalAddrs: localAddrs,
	}
	switch b := dp.backend.(type) {
	case *userspace.Backend:
		if _, err := exec.LookPath("nft"); err != nil {
			return nil, fmt.Errorf("policy %s: the userspace data plane enforces it with nftables, and nft is not installed (Debian package nftables)", cfg.Policy.Name)
		}
		t, err := nft.New(nft.Config{Table: o.Table, Mark: o.Mark, TUN: b.TUNName()})
		if err != nil {
			return nil, err
		}
		ac.Enforcer, ac.Traps = t, b
	case *xfrm.Backend:
		// The kernel raises acquires itself, from the negotiate rules'
		// policies: no trap policies.
		ac.Enforcer = xfrmpolicy.New(b)
	default:
		d.log.Warn("backend memory: the IPsec policy decides and negotiates, but nothing enforces it in the kernel")
	}
	return agent.New(ac)
}

// policyTemplate is what the connections the agent makes share. The
// userspace data plane has no transport mode: host-to-host SAs are tunnel
// mode between the two hosts' own addresses, which carries the same
// packets.
func policyTemplate(dp *dataPlane) ike.Connection {
	var props []transform.Proposal
	for _, s := range config.DefaultIKEProposals() {
		if p, err := transform.ParseIKEProposal(s); err == nil {
			props = append(props, p)
		}
	}
	mode := ike.ModeTransport
	if dp.name == "userspace" || dp.name == "memory" {
		mode = ike.ModeTunnel
	}
	return ike.Connection{
		IKEProposals: props, Mode: mode, ForceEncap: dp.forceEncap,
		RekeyTime: config.DefaultRekeyTime, IKERekeyTime: config.DefaultIKERekeyTime,
		DPDDelay: config.DefaultDPDDelay, DPDAction: ike.DPDClear,
	}
}

// policyTemplateV1 is what the policy's IKEv1 connections share: the
// default main mode and quick mode proposals (the policy's key exchange
// methods and the rules' security methods replace them), lifetimes and
// DPD as for IKEv2, the same mode.
func policyTemplateV1(dp *dataPlane) ikev1.Connection {
	t := policyTemplate(dp)
	var props, esp []transform.Proposal
	for _, s := range config.DefaultIKEv1Proposals() {
		if p, err := transform.ParseIKEv1Proposal(s); err == nil {
			props = append(props, p)
		}
	}
	for _, s := range config.DefaultIKEv1ESPProposals() {
		if p, err := transform.ParseIKEv1ESPProposal(s); err == nil {
			esp = append(esp, p)
		}
	}
	return ikev1.Connection{
		IKEProposals: props, ESPProposals: esp, Mode: t.Mode, ForceEncap: t.ForceEncap,
		IKELifetime: t.IKERekeyTime, Lifetime: t.RekeyTime, DPDDelay: t.DPDDelay, DPDAction: ikev1.DPDClear,
	}
}

// localAddrs lists the host's addresses, for the policy's "me".
func localAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// allConnections are the configured connections and the policy's.
func (d *daemon) allConnections(cfg *config.Config) []*ike.Connection {
	conns := engineConnections(cfg)
	if d.agent != nil {
		conns = append(conns, d.agent.Connections()...)
	}
	if d.vici != nil {
		conns = append(conns, d.vici.Connections()...)
	}
	return conns
}

// Policy implements control.Handler.
func (d *daemon) Policy() (*agent.PolicyInfo, error) {
	if d.agent == nil {
		return nil, errors.New("no IPsec policy is assigned (see docs/policies.md)")
	}
	info := d.agent.Describe()
	return &info, nil
}

// Peers implements control.Handler.
func (d *daemon) Peers(peer netip.Addr, proto uint8, port uint16) ([]agent.PeerStatus, error) {
	if d.agent == nil {
		return nil, errors.New("no IPsec policy is assigned (see docs/policies.md)")
	}
	if !peer.IsValid() {
		return d.agent.Peers(), nil
	}
	return []agent.PeerStatus{d.agent.Peer(peer, proto, port)}, nil
}

// reloadPolicy assigns the reloaded configuration's policy and returns
// the IKE SAs the new policy no longer allows, which it deleted; a failure
// leaves the running one.
func (d *daemon) reloadPolicy(ctx context.Context, old, cfg *config.Config) ([]string, error) {
	switch {
	case d.agent == nil && cfg.Policy == nil:
		return nil, nil
	case d.agent == nil || cfg.Policy == nil:
		return nil, errors.New("assigning a policy, or removing the assigned one, takes effect at restart")
	case old.PolicyOptions != cfg.PolicyOptions:
		return nil, errors.New("policy.mark, route_table, nft_table, clear_ttl and retry_after changes take effect at restart")
	}
	return d.agent.Assign(ctx, cfg.Policy, cfg.Authentication)
}
