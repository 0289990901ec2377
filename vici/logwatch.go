package vici

import (
	"log/slog"
	"math"
	"time"
)

// Watch: the log tap's records for other consumers than VICI's clients
// (the control socket's `ikectl log`), so that one tap serves both.

// noWatcher is watchMin when nobody watches: above every level.
const noWatcher = math.MaxInt64

// LogLine is one record as Watch hands it over: its level, message and
// attributes (those the logger was derived with first), values rendered
// as text.
type LogLine struct {
	Time    time.Time
	Level   slog.Level
	Message string
	Attrs   []LogAttr
}

// LogAttr is one attribute of a LogLine.
type LogAttr struct{ Key, Value string }

type watcher struct {
	level slog.Level
	f     func(LogLine)
}

// Watch calls f with every record of level or above, whatever the
// daemon's own log level, until cancel is called. f runs in the logging
// goroutine, which may hold an SA's lock: it must only queue, never block
// or log.
func (t *LogTap) Watch(level slog.Level, f func(LogLine)) (cancel func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.watchers == nil {
		t.watchers = map[int]watcher{}
	}
	id := t.nextW
	t.nextW++
	t.watchers[id] = watcher{level: level, f: f}
	t.updateWatchMin()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.watchers, id)
		t.updateWatchMin()
	}
}

// updateWatchMin recomputes the lowest level watched. Caller holds mu.
func (t *LogTap) updateWatchMin() {
	low := int64(noWatcher)
	for _, w := range t.watchers {
		low = min(low, int64(w.level))
	}
	t.watchMin.Store(low)
}

// watch hands r to the watchers that want its level.
func (h *tapHandler) watch(r slog.Record) {
	h.tap.mu.Lock()
	var fs []func(LogLine)
	for _, w := range h.tap.watchers {
		if r.Level >= w.level {
			fs = append(fs, w.f)
		}
	}
	h.tap.mu.Unlock()
	if len(fs) == 0 {
		return
	}
	l := LogLine{Time: r.Time, Level: r.Level, Message: r.Message, Attrs: make([]LogAttr, 0, len(h.attrs)+r.NumAttrs())}
	add := func(a slog.Attr) bool {
		l.Attrs = append(l.Attrs, LogAttr{Key: a.Key, Value: a.Value.Resolve().String()})
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	for _, f := range fs {
		f(l)
	}
}
