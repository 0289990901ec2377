package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/iked/iked/control"
)

// list-conns, list-certs and stats: swanctl's --list-conns, --list-certs
// and --stats.

func runReadSide(ctx context.Context, socket, cmd string, args []string, stdout io.Writer) error {
	fs := newFlagSet(cmd)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	req := control.Request{Command: cmd}
	switch {
	case cmd == "stats" && fs.NArg() != 0:
		return usageError{fmt.Sprintf("stats: unexpected argument %q", fs.Arg(0))}
	case fs.NArg() > 1:
		return usageError{fmt.Sprintf("%s takes at most one connection name", cmd)}
	case fs.NArg() == 1:
		req.Conn = fs.Arg(0)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	resp, err := control.Do(ctx, socket, req)
	if err != nil {
		return daemonError(cmd, req.Conn, resp, err)
	}
	now := time.Now()
	switch cmd {
	case "list-conns":
		if *asJSON {
			return writeJSON(stdout, nonNil(resp.Conns))
		}
		return writeConns(stdout, resp.Conns)
	case "list-certs":
		if *asJSON {
			return writeJSON(stdout, nonNil(resp.Certs))
		}
		return writeCerts(stdout, resp.Certs, now)
	}
	if resp.Stats == nil {
		return fmt.Errorf("iked sent no stats")
	}
	if *asJSON {
		return writeJSON(stdout, resp.Stats)
	}
	return writeStats(stdout, resp.Stats, now)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// writeConns lists connections as swanctl --list-conns, with their state:
//
//	site-a: up, 1 IKE SA, 1 Child SA (file)
//	  local:  192.0.2.1 [fqdn:a.example]
//	  remote: 198.51.100.2:500 [fqdn:b.example]
//	  auth psk, ike aes256gcm16-prfsha256-x25519, start action initiate
//	  child: tunnel 10.1.0.0/24 === 10.2.0.0/24, esp aes256gcm16
//	  rekey 1h00m (IKE 4h00m), reauth -, dpd 30s/restart
func writeConns(w io.Writer, conns []control.ConnectionInfo) error {
	bw := bufio.NewWriter(w)
	if len(conns) == 0 {
		fmt.Fprintln(bw, "no connections")
		return bw.Flush()
	}
	for _, c := range conns {
		fmt.Fprintf(bw, "%s: %s, %s, %s (%s)\n", c.Name, c.State, plural(c.IKESAs, "IKE SA"), plural(c.ChildSAs, "Child SA"), c.Source)
		fmt.Fprintf(bw, "  local:  %s\n", endpoint(c.Local, c.LocalID))
		fmt.Fprintf(bw, "  remote: %s\n", endpoint(c.Remote, c.RemoteID))
		fmt.Fprintf(bw, "  auth %s, ike %s, start action %s\n", dash(c.Auth), dash(c.IKEProposals), dash(c.StartAction))
		fmt.Fprintf(bw, "  child: %s %s === %s, esp %s\n", dash(c.Mode), selectors(c.LocalTS), selectors(c.RemoteTS), dash(c.ESPProposals))
		dpd := "-"
		if c.DPDDelay > 0 {
			dpd = formatSeconds(c.DPDDelay) + "/" + c.DPDAction
		}
		fmt.Fprintf(bw, "  rekey %s (IKE %s), reauth %s, dpd %s\n", formatSeconds(c.RekeyTime), formatSeconds(c.IKERekeyTime), formatSeconds(c.ReauthTime), dpd)
	}
	return bw.Flush()
}

// formatSeconds is a configured interval, "-" when off.
func formatSeconds(s int64) string {
	if s <= 0 {
		return "-"
	}
	return formatAge(time.Duration(s) * time.Second)
}

// writeCerts lists certificates as swanctl --list-certs, with their
// expiry and users:
//
//	end_entity  CN=gw.example, O=Example
//	  issuer:  CN=Example CA
//	  serial:  1a:2b, ECDSA P-256, alt names gw.example
//	  valid:   2025-01-01 00:00:00 UTC .. 2026-01-01 00:00:00 UTC (expires in 305d04h)
//	  used by: site-a, site-b
func writeCerts(w io.Writer, certs []control.CertificateInfo, now time.Time) error {
	bw := bufio.NewWriter(w)
	if len(certs) == 0 {
		fmt.Fprintln(bw, "no certificates")
		return bw.Flush()
	}
	const layout = "2006-01-02 15:04:05 MST"
	for _, c := range certs {
		fmt.Fprintf(bw, "%-12s %s\n", c.Kind, dash(c.Subject))
		fmt.Fprintf(bw, "  issuer:  %s\n", dash(c.Issuer))
		line := "  serial:  " + dash(c.Serial) + ", " + dash(c.Key)
		if len(c.AltNames) > 0 {
			line += ", alt names " + strings.Join(c.AltNames, ", ")
		}
		fmt.Fprintln(bw, line)
		expiry := "expired " + formatAge(now.Sub(c.NotAfter)) + " ago"
		if c.NotAfter.After(now) {
			expiry = "expires in " + formatAge(c.NotAfter.Sub(now))
		}
		if c.NotBefore.After(now) {
			expiry = "not valid yet"
		}
		fmt.Fprintf(bw, "  valid:   %s .. %s (%s)\n", c.NotBefore.UTC().Format(layout), c.NotAfter.UTC().Format(layout), expiry)
		fmt.Fprintf(bw, "  used by: %s\n", dash(strings.Join(c.Connections, ", ")))
	}
	return bw.Flush()
}

// writeStats prints the counters as swanctl --stats does its own.
func writeStats(w io.Writer, s *control.Stats, now time.Time) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "uptime: %s, since %s\n", formatAge(now.Sub(s.Started)), s.Started.In(now.Location()).Format("2006-01-02 15:04:05 MST"))
	fmt.Fprintf(bw, "workers: %d goroutines, heap %s\n", s.Goroutines, formatBytes(s.HeapBytes))
	total := 0
	for _, n := range s.IKESAs {
		total += n
	}
	fmt.Fprintf(bw, "IKE SAs: %d total (%s), %d half-open\n", total, strings.TrimSpace(counts(mapInts(s.IKESAs))), s.HalfOpen)
	fmt.Fprintf(bw, "Child SAs: %d\n", s.ChildSAs)
	fmt.Fprintf(bw, "handshakes completed:%s\n", counts(s.HandshakesCompleted))
	fmt.Fprintf(bw, "handshakes failed:%s\n", counts(s.HandshakesFailed))
	fmt.Fprintf(bw, "rekeys:%s\n", counts(s.Rekeys))
	fmt.Fprintf(bw, "IKE packets: %d received, %d sent, %d retransmitted, %d retransmissions answered\n",
		s.PacketsReceived, s.PacketsSent, s.Retransmissions, s.RetransmitsAnswered)
	fmt.Fprintf(bw, "dropped:%s\n", counts(s.PacketsDropped))
	fmt.Fprintf(bw, "notifies sent:%s\n", counts(s.NotifiesSent))
	return bw.Flush()
}

func mapInts(m map[string]int) map[string]uint64 {
	out := make(map[string]uint64, len(m))
	for k, v := range m {
		out[k] = uint64(max(v, 0))
	}
	return out
}

// counts prints " name n, name n" sorted by name, or " none".
func counts(m map[string]uint64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return " none"
	}
	return " " + strings.Join(parts, ", ")
}
