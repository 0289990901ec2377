package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/ike"
)

// writeSAs writes the readable listing of sas: a line per IKE SA, followed
// by an indented line per Child SA. now is used for ages.
//
//	ike-1  site-a  established  initiator  192.0.2.1:500 [fqdn:a.example] === 198.51.100.2:4500 [fqdn:b.example]  psk  aes256gcm16-prfsha384-x25519-ke1_mlkem768  established 5m03s ago
//	    esp tunnel  c1a2b3c4_i 0d0e0f10_o  10.1.0.0/24 === 10.2.0.0/24  aes256gcm16  in 1.2 KiB/10 pkts  out 300 B/4 pkts  installed 5m03s ago
//
// The algorithms are shown as a proposal string, the way they are
// configured (the JSON has strongSwan's notation too).
func writeSAs(w io.Writer, sas []ike.SAInfo, now time.Time) error {
	bw := bufio.NewWriter(w)
	if len(sas) == 0 {
		fmt.Fprintln(bw, "no security associations")
		return bw.Flush()
	}
	// Align the leading columns across IKE SAs.
	var wID, wConn, wState, wRole, wEnds int
	ends := make([]string, len(sas))
	for i, sa := range sas {
		ends[i] = endpoint(sa.LocalAddr, sa.LocalID) + " === " + endpoint(sa.RemoteAddr, sa.RemoteID)
		wID = max(wID, len(dash(sa.ID)))
		wConn = max(wConn, len(dash(sa.Connection)))
		wState = max(wState, len(dash(sa.State)))
		wRole = max(wRole, len(dash(sa.Role)))
		wEnds = max(wEnds, len(ends[i]))
	}
	for i, sa := range sas {
		line := fmt.Sprintf("%-*s  %-*s  %-*s  %-*s  %-*s  %s  %s",
			wID, dash(sa.ID), wConn, dash(sa.Connection), wState, dash(sa.State),
			wRole, dash(sa.Role), wEnds, ends[i], dash(sa.Auth), dash(orElse(sa.Proposal, sa.Algorithms)))
		if !sa.Established.IsZero() {
			line += "  established " + formatAge(now.Sub(sa.Established)) + " ago"
		}
		if nat := natString(sa.NATLocal, sa.NATRemote); nat != "" {
			line += "  " + nat
		}
		fmt.Fprintln(bw, line)
		for _, c := range sa.Children {
			fmt.Fprintln(bw, "    "+childLine(c, now))
		}
	}
	return bw.Flush()
}

// childLine formats one Child SA.
func childLine(c ike.ChildInfo, now time.Time) string {
	line := fmt.Sprintf("%s %s  %s_i %s_o  %s === %s  %s  in %s/%s  out %s/%s",
		dash(c.Protocol), dash(c.Mode), dash(c.SPIIn), dash(c.SPIOut),
		selectors(c.LocalTS), selectors(c.RemoteTS), dash(orElse(c.Proposal, c.Algorithms)),
		formatBytes(c.BytesIn), packets(c.PacketsIn),
		formatBytes(c.BytesOut), packets(c.PacketsOut))
	if !c.Installed.IsZero() {
		line += "  installed " + formatAge(now.Sub(c.Installed)) + " ago"
	}
	return line
}

// orElse is s, or t when s is empty.
func orElse(s, t string) string {
	if s != "" {
		return s
	}
	return t
}

// endpoint formats an address with its identity: "192.0.2.1:500 [fqdn:a]".
func endpoint(addr, id string) string {
	if id == "" {
		return dash(addr)
	}
	return dash(addr) + " [" + id + "]"
}

func natString(local, remote bool) string {
	switch {
	case local && remote:
		return "NAT: local, remote"
	case local:
		return "NAT: local"
	case remote:
		return "NAT: remote"
	}
	return ""
}

func selectors(ts []string) string {
	if len(ts) == 0 {
		return "-"
	}
	return strings.Join(ts, ",")
}

// dash stands in for an empty field, to keep the columns readable.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func packets(n uint64) string {
	if n == 1 {
		return "1 pkt"
	}
	return fmt.Sprintf("%d pkts", n)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// formatAge formats a duration coarsely: "42s", "5m03s", "2h05m", "3d04h".
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0 // clock skew between daemon and ikectl
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
}

// formatBytes formats a byte count with binary units: "512 B", "1.5 KiB".
func formatBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		v /= 1024
		if v < 1024 || unit == "PiB" {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	panic("unreachable")
}

// writeSAsJSON writes sas as an indented JSON array, "[]" when empty. The
// array fields (children, local_ts, remote_ts) are never null.
func writeSAsJSON(w io.Writer, sas []ike.SAInfo) error {
	out := make([]versionedSA, len(sas))
	for i, sa := range sas {
		children := make([]ike.ChildInfo, len(sa.Children))
		for j, c := range sa.Children {
			if c.LocalTS == nil {
				c.LocalTS = []string{}
			}
			if c.RemoteTS == nil {
				c.RemoteTS = []string{}
			}
			children[j] = c
		}
		sa.Children = children
		out[i] = versionedSA{SAInfo: sa, Version: saVersion(sa.ID)}
	}
	return writeJSON(w, out)
}

// versionedSA is an SA as `ikectl sas --json` prints it: the engine's
// fields and the key exchange version.
type versionedSA struct {
	ike.SAInfo
	// Version is "ikev2", or "ikev1" for an ISAKMP SA.
	Version string `json:"version"`
}

// saVersion tells an SA's key exchange by its ID: the IKEv1 engine names
// its ISAKMP SAs "isakmp-<n>", the IKEv2 engine its IKE SAs "ike-<n>".
func saVersion(id string) string {
	if strings.HasPrefix(id, "isakmp-") {
		return "ikev1"
	}
	return "ikev2"
}

// writeJSON writes v as indented JSON followed by a newline.
func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeStatus writes a readable summary of the daemon's status. now is used
// for the uptime and its location for the start time.
func writeStatus(w io.Writer, st *control.Status, now time.Time) error {
	bw := bufio.NewWriter(w)
	version := st.Version
	if version == "" {
		version = "(unknown version)"
	}
	if st.Commit != "" || st.GoVersion != "" {
		version += fmt.Sprintf(" (commit %s, %s)", dash(st.Commit), dash(st.GoVersion))
	}
	fmt.Fprintf(bw, "iked %s, pid %d", version, st.PID)
	if !st.Started.IsZero() {
		fmt.Fprintf(bw, ", up %s (since %s)", formatAge(now.Sub(st.Started)),
			st.Started.In(now.Location()).Format("2006-01-02 15:04:05 MST"))
	}
	fmt.Fprintln(bw)
	fmt.Fprintf(bw, "config:     %s\n", dash(st.ConfigFile))
	fmt.Fprintf(bw, "listening:  %s\n", dash(strings.Join(st.Listen, ", ")))
	fmt.Fprintf(bw, "backend:    %s\n", dash(st.Backend))
	fmt.Fprintf(bw, "SAs:        %s (%d half-open), %s\n",
		plural(st.IKESAs, "IKE SA"), st.HalfOpen, plural(st.ChildSAs, "Child SA"))
	if len(st.Connections) == 0 {
		fmt.Fprintln(bw, "no connections configured")
		return bw.Flush()
	}
	fmt.Fprintf(bw, "connections (%d):\n", len(st.Connections))
	for _, c := range st.Connections {
		fmt.Fprintf(bw, "  %s: %s === %s, %s\n", c.Name, dash(c.Local), dash(c.Remote), plural(c.IKESAs, "IKE SA"))
		fmt.Fprintf(bw, "    identities: %s === %s, auth %s\n", dash(c.LocalID), dash(c.RemoteID), dash(c.Auth))
		fmt.Fprintf(bw, "    proposals:  ike %s, esp %s\n", dash(c.IKEProposals), dash(c.ESPProposals))
		fmt.Fprintf(bw, "    child:      %s mode, start action %s\n", dash(c.Mode), dash(c.StartAction))
	}
	return bw.Flush()
}
