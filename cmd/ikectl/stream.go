package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/iked/iked/control"
)

// ikectl log and ikectl monitor: streams that run until interrupted.

// runStream streams cmd ("log" or "monitor") from the daemon to stdout
// until ctx ends (Ctrl-C), which is a normal end.
func runStream(ctx context.Context, socket, cmd string, args []string, stdout io.Writer) error {
	fs := newFlagSet(cmd)
	asJSON := fs.Bool("json", false, "print JSON lines")
	var level *string
	if cmd == "log" {
		level = fs.String("level", "info", "lowest level: debug, info, warn, error")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", cmd, fs.Arg(0))}
	}
	req := control.Request{Command: cmd}
	if level != nil {
		switch strings.ToLower(*level) {
		case "debug", "info", "warn", "error":
			req.Level = strings.ToLower(*level)
		default:
			return usageError{fmt.Sprintf("log: --level %q: expected debug, info, warn or error", *level)}
		}
	}
	enc := json.NewEncoder(stdout)
	err := control.Stream(ctx, socket, req, func(ev control.Event) error {
		if *asJSON {
			return enc.Encode(ev)
		}
		if ev.Dropped > 0 {
			if _, err := fmt.Fprintf(stdout, "-- %s dropped: ikectl read too slowly --\n", plural(int(ev.Dropped), "event")); err != nil {
				return err
			}
		}
		var line string
		switch {
		case ev.Log != nil:
			line = logLine(ev.Time, *ev.Log)
		case ev.SA != nil:
			line = monitorLine(ev.Time, *ev.SA)
		default:
			return nil
		}
		_, err := fmt.Fprintln(stdout, line)
		return err
	})
	if ctx.Err() != nil {
		return nil // interrupted: the normal end of a stream
	}
	return err
}

// logLine formats a log line as swanctl --log does, with the time first:
//
//	12:00:01.123 DEBUG generating IKE_AUTH request 1 [ IDi AUTH SA TSi TSr ] sa=ike-1 peer=192.0.2.2:500
func logLine(at time.Time, l control.LogLine) string {
	return fmt.Sprintf("%s %-5s %s", at.Local().Format("15:04:05.000"), l.Level, l.Text())
}

// monitorLine formats an SA event:
//
//	12:00:01.123 ike-up       site-a ike-3  192.0.2.1:500 [fqdn:a] === 198.51.100.2:500 [fqdn:b]  AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519
//	12:00:01.124 child-up     site-a ike-3  esp tunnel  c1a2b3c4_i 0d0e0f10_o  10.1.0.0/24 === 10.2.0.0/24  ...
//	12:30:00.002 child-rekey  site-a ike-3  c1a2b3c4_i -> 5e6f7a8b_i
//	13:00:00.001 ike-rekey    site-a ike-3 -> ike-4
func monitorLine(at time.Time, e control.SAEvent) string {
	sa := e.SA
	head := fmt.Sprintf("%s %-12s %s %s", at.Local().Format("15:04:05.000"), e.Event, dash(sa.Connection), dash(sa.ID))
	switch e.Event {
	case control.EventIKEUp:
		return head + "  " + endpoint(sa.LocalAddr, sa.LocalID) + " === " + endpoint(sa.RemoteAddr, sa.RemoteID) + "  " + dash(sa.Auth) + "  " + dash(sa.Algorithms)
	case control.EventIKEDown:
		return head + "  " + endpoint(sa.RemoteAddr, sa.RemoteID)
	case control.EventIKERekey:
		old := "-"
		if e.Old != nil {
			old = e.Old.ID
		}
		return fmt.Sprintf("%s %-12s %s %s -> %s  %s", at.Local().Format("15:04:05.000"), e.Event, dash(sa.Connection), old, dash(sa.ID), dash(sa.Algorithms))
	case control.EventChildUp, control.EventChildDown:
		if e.Child != nil {
			return head + "  " + childLine(*e.Child, at)
		}
	case control.EventChildRekey:
		if e.Child != nil && e.OldChild != nil {
			return head + "  " + e.OldChild.SPIIn + "_i -> " + e.Child.SPIIn + "_i  " + dash(e.Child.Algorithms)
		}
	}
	return head
}
