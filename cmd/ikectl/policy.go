package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/policy/agent"
)

// runPolicy shows the assigned policy.
func runPolicy(ctx context.Context, socket string, args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "export" {
		return runPolicyExport(ctx, socket, args[1:], stdout)
	}
	fs := newFlagSet("policy")
	asJSON := fs.Bool("json", false, "print JSON")
	source := fs.Bool("source", false, "show where the policy came from (the directory or its cache) and when it was read")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("policy: unexpected argument %q", fs.Arg(0))}
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if *source {
		resp, err := control.Do(ctx, socket, control.Request{Command: control.CommandPolicySource})
		if err != nil {
			return err
		}
		if *asJSON {
			_, err := fmt.Fprintf(stdout, "%s\n", resp.PolicySource)
			return err
		}
		return writePolicySource(stdout, resp.PolicySource)
	}
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
	writeKeyExchange(bw, p.KeyExchange)
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
	if r.RequirePQ {
		opts = append(opts, "require_pq")
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
	if r.KeyModule != "" {
		fmt.Fprintf(bw, "    key     %s\n", r.KeyModule)
	}
}

// writeKeyExchange prints the policy's key exchange settings (Windows'
// main mode) on one line.
func writeKeyExchange(bw *bufio.Writer, kx agent.KeyExchangeInfo) {
	if kx.KeyModule == "" {
		return // an older iked
	}
	parts := []string{"key module " + kx.KeyModule}
	if len(kx.Methods) > 0 {
		parts = append(parts, "main mode "+strings.Join(kx.Methods, ", "))
	}
	if kx.Lifetime != "" {
		parts = append(parts, "lifetime "+kx.Lifetime)
	}
	if kx.QuickModes > 0 {
		parts = append(parts, fmt.Sprintf("%d quick modes per main mode", kx.QuickModes))
	}
	if kx.MasterKeyPFS {
		parts = append(parts, "master key pfs")
	}
	if kx.AllowLegacy {
		parts = append(parts, "legacy algorithms allowed")
	}
	fmt.Fprintf(bw, "key exchange: %s\n", strings.Join(parts, "; "))
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
		if p.KeyModule != "" {
			key := p.KeyModule
			if p.Negotiated != "" && p.Negotiated != p.KeyModule {
				key += ", last negotiated with " + p.Negotiated
			}
			fmt.Fprintf(bw, "  key      %s\n", key)
		}
		if len(p.SAs) > 0 {
			sas := make([]string, len(p.SAs))
			for i, id := range p.SAs {
				sas[i] = id
				if i < len(p.Versions) {
					sas[i] += " (" + p.Versions[i] + ")"
				}
			}
			fmt.Fprintf(bw, "  SAs      %s\n", strings.Join(sas, ", "))
		}
		detail := p.Detail
		if !p.Until.IsZero() {
			detail += fmt.Sprintf(" (for %s more)", formatAge(p.Until.Sub(now)))
		}
		fmt.Fprintf(bw, "  why      %s\n", detail)
	}
	return bw.Flush()
}

// runPolicyExport writes the assigned policy as MS-GPIPSEC LDIF.
func runPolicyExport(ctx context.Context, socket string, args []string, stdout io.Writer) error {
	fs := newFlagSet("policy export")
	ldif := fs.Bool("ldif", false, "write LDIF (the only format)")
	baseDN := fs.String("base-dn", "", "the domain's naming context, e.g. DC=corp,DC=example (default the directory's)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !*ldif || fs.NArg() != 0 {
		return usageError{"usage: ikectl policy export --ldif [--base-dn DN]"}
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	resp, err := control.Do(ctx, socket, control.Request{Command: control.CommandPolicyExport, Target: *baseDN})
	if err != nil {
		return err
	}
	if resp.Export == nil {
		return fmt.Errorf("iked sent no export")
	}
	bw := bufio.NewWriter(stdout)
	for _, n := range resp.Export.Notes {
		fmt.Fprintf(bw, "# %s\n", strings.ReplaceAll(n, "\n", " "))
	}
	_, _ = bw.WriteString(resp.Export.LDIF) // the error comes back from Flush
	return bw.Flush()
}

// policySource is what "policy-source" answers.
type policySource struct {
	Origin    string    `json:"origin"`
	Policy    string    `json:"policy"`
	Container string    `json:"container"`
	Assigned  string    `json:"assigned"`
	DC        string    `json:"dc"`
	ReadAt    time.Time `json:"read_at"`
	Stamp     struct {
		HighestUSN uint64 `json:"highest_usn"`
		Count      int    `json:"count"`
	} `json:"stamp"`
	LastAttempt time.Time         `json:"last_attempt"`
	LastSuccess time.Time         `json:"last_success"`
	LastError   string            `json:"last_error"`
	Interval    time.Duration     `json:"interval"`
	CacheFile   string            `json:"cache_file"`
	Fetches     map[string]uint64 `json:"fetches"`
	Notes       []string          `json:"notes"`
}

func writePolicySource(w io.Writer, raw []byte) error {
	var s policySource
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("iked sent a policy source I cannot read: %w", err)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "policy %q from the %s\n", s.Policy, s.Origin)
	fmt.Fprintf(bw, "  container  %s\n", s.Container)
	if s.Assigned != "" {
		fmt.Fprintf(bw, "  assigned   %s\n", s.Assigned)
	}
	if s.DC != "" {
		fmt.Fprintf(bw, "  read from  %s at %s (usn %d, %d objects)\n", s.DC, s.ReadAt.Format(time.RFC3339), s.Stamp.HighestUSN, s.Stamp.Count)
	}
	fmt.Fprintf(bw, "  cache      %s\n", s.CacheFile)
	fmt.Fprintf(bw, "  polled     every %s, last %s", s.Interval, s.LastAttempt.Format(time.RFC3339))
	if s.LastError != "" {
		fmt.Fprintf(bw, " (failed: %s)", s.LastError)
	}
	fmt.Fprintln(bw)
	fmt.Fprintf(bw, "  fetches    changed %d, unchanged %d, refused %d, error %d, cache %d\n",
		s.Fetches["changed"], s.Fetches["unchanged"], s.Fetches["refused"], s.Fetches["error"], s.Fetches["cache"])
	for _, n := range s.Notes {
		fmt.Fprintf(bw, "  note       %s\n", n)
	}
	return bw.Flush()
}
