package main

import (
	"log/slog"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/vici"
)

// The control socket's streams (`ikectl log`, `ikectl monitor`): the log
// tap VICI's log events use, and the engine's SA event subscribers.

// WatchLog implements control.Streamer.
func (d *daemon) WatchLog(level slog.Level, f func(time.Time, control.LogLine)) (cancel func()) {
	return d.logTap.Watch(level, func(l vici.LogLine) {
		attrs := make([]control.Attr, len(l.Attrs))
		for i, a := range l.Attrs {
			attrs[i] = control.Attr{Key: a.Key, Value: a.Value}
		}
		f(l.Time, control.LogLine{Level: l.Level.String(), Message: l.Message, Attrs: attrs})
	})
}

// saEventKinds names the engine's SA events for the control protocol.
var saEventKinds = map[ike.EventKind]string{
	ike.EventIKEUp: control.EventIKEUp, ike.EventIKEDown: control.EventIKEDown, ike.EventIKERekey: control.EventIKERekey,
	ike.EventChildUp: control.EventChildUp, ike.EventChildDown: control.EventChildDown, ike.EventChildRekey: control.EventChildRekey,
}

// WatchSAs implements control.Streamer.
func (d *daemon) WatchSAs(f func(time.Time, control.SAEvent)) (cancel func()) {
	return d.engine.Subscribe(func(ev ike.SAEvent) {
		out := control.SAEvent{Event: saEventKinds[ev.Kind], SA: ev.SA}
		switch ev.Kind {
		case ike.EventIKERekey:
			old := ev.Old
			out.Old = &old
		case ike.EventChildUp, ike.EventChildDown:
			c := ev.Child
			out.Child = &c
		case ike.EventChildRekey:
			c, o := ev.Child, ev.OldChild
			out.Child, out.OldChild = &c, &o
		}
		f(time.Now(), out)
	})
}

var _ control.Streamer = (*daemon)(nil)
