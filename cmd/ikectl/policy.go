package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/policy/agent"
)

// runPolicy shows the assigned policy.
func runPolicy(ctx context.Context, socket string, args []string, stdout io.Writer) error {
	fs := newFlagSet("policy")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("policy: unexpected argument %q", fs.Arg(0))}
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	resp, err := control.Do(ctx, socket, control.Request{Command: control.CommandPolicy})
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, resp.Policy)
	}
	return writePolicy(stdout, resp.Policy)
}

// runPeers answers "is my traffic to this host encrypted?".
func runPeers(ctx context.Context, socket string, args []string, stdout io.Writer) error {
	fs := newFlagSet("peers")
	asJSON := fs.Bool("json", false, "print JSON")
	proto := fs.String("protocol", "", "protocol: tcp, udp, icmp or a number")
	port := fs.Uint("port", 0, "TCP or UDP port")
	// The address may come before the flags, as people type it.
	var addr string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		addr, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 || fs.NArg() == 1 && addr != "" {
		return usageError{"peers takes at most one argument, a peer address"}
	}
	if addr == "" {
		addr = fs.Arg(0)
	}
	if *port > 65535 {
		return usageError{fmt.Sprintf("peers: --port %d is not a port", *port)}
	}
	req := control.Request{Command: control.CommandPeers, Target: addr, Protocol: *proto, Port: uint16(*port)}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	resp, err := control.Do(ctx, socket, req)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(stdout, resp.Peers)
	}
	return writePeers(stdout, resp.Peers, time.Now())
}

func writePolicy(w io.Writer, p *agent.PolicyInfo) error {
	if p == nil {
		return fmt.Errorf("iked sent no policy")
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "policy %s\n", p.Name)
	if p.Description != "" {
		fmt.Fprintf(bw, "  %s\n", p.Description)
	}
	fmt.Fprintf(bw, "exempt: %s\n", strings.Join(p.Exempt, "; "))
	if len(p.Rules) == 0 {
		fmt.Fprintln(bw, "rules: none")
	} else {
		fmt.Fprintln(bw, "rules (most specific filter first):")
	}
	for _, r := range p.Rules {
		writeRule(bw, r)
	}
	if p.DefaultResponse != nil {
		writeRule(bw, *p.DefaultResponse)
	} else {
		fmt.Fprintln(bw, "  default-response: off")
	}
	return bw.Flush()
}

func writeRule(bw *bufio.Writer, r agent.RuleInfo) {
	fmt.Fprintf(bw, "  %s: %s", r.Name, r.Action)
	var opts []string
	if r.AcceptUnsecured {
		opts = append(opts, "accept unsecured")
	}
	if r.Fallback != "" {
		opts = append(opts, "fallback to clear after "+r.Fallback)
	}
	if r.PFS {
		opts = append(opts, "pfs")
	}
	if r.Connection != "" && r.Connection != "all" {
		opts = append(opts, "connection type "+r.Connection)
	}
	if r.Tunnel != "" {
		opts = append(opts, "tunnel to "+r.Tunnel)
	}
	if len(opts) > 0 {
		fmt.Fprintf(bw, " (%s)", strings.Join(opts, ", "))
	}
	fmt.Fprintln(bw)
	for _, f := range r.Filters {
		fmt.Fprintf(bw, "    filter  %s\n", f)
	}
	if len(r.Methods) > 0 {
		fmt.Fprintf(bw, "    secure  %s\n", strings.Join(r.Methods, "; "))
	}
	if len(r.Auth) > 0 {
		fmt.Fprintf(bw, "    auth    %s\n", strings.Join(r.Auth, ", "))
	}
}

func writePeers(w io.Writer, peers []agent.PeerStatus, now time.Time) error {
	bw := bufio.NewWriter(w)
	if len(peers) == 0 {
		fmt.Fprintln(bw, "no peers known yet")
	}
	for _, p := range peers {
		fmt.Fprintf(bw, "%s: %s\n", p.Peer, p.Verdict)
		fmt.Fprintf(bw, "  traffic  %s\n", p.Traffic)
		if p.Rule != "" {
			fmt.Fprintf(bw, "  rule     %s (filter %s)\n", p.Rule, p.Filter)
		}
		if len(p.SAs) > 0 {
			fmt.Fprintf(bw, "  SAs      %s\n", strings.Join(p.SAs, ", "))
		}
		detail := p.Detail
		if !p.Until.IsZero() {
			detail += fmt.Sprintf(" (for %s more)", formatAge(p.Until.Sub(now)))
		}
		fmt.Fprintf(bw, "  why      %s\n", detail)
	}
	return bw.Flush()
}
