package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/iked/iked/config"
)

// logging is the daemon's logger whose level and format a reload changes:
// every logger handed out (to the engine, the agent, the control server)
// writes through one switchable handler, so a new `log:` section takes
// effect everywhere at once without rebuilding them.
type logging struct {
	w       io.Writer
	journal bool // stderr is the journal (JOURNAL_STREAM)
	level   slog.LevelVar
	root    atomic.Pointer[rootHandler]
	logger  *slog.Logger
}

// rootHandler is the handler of one format; gen tells derived handlers
// that theirs is stale.
type rootHandler struct {
	h   slog.Handler
	gen uint64
}

// newLogging logs to w as c says. journalStream says stderr is connected
// to the journal: then every line carries its syslog priority, so that
// `journalctl -p err` filters.
func newLogging(c config.Log, w io.Writer, journalStream bool) *logging {
	l := &logging{w: w, journal: journalStream}
	l.set(c)
	l.logger = slog.New(&switchHandler{l: l})
	return l
}

// stderrIsJournal reports whether the daemon's stderr is a journal stream
// (systemd sets JOURNAL_STREAM to the device and inode of it).
func stderrIsJournal() bool {
	ok, err := journal.StderrIsJournalStream()
	return ok && err == nil
}

// set applies c: level and format.
func (l *logging) set(c config.Log) {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	l.level.Set(level)
	var gen uint64
	if old := l.root.Load(); old != nil {
		gen = old.gen + 1
	}
	l.root.Store(&rootHandler{h: formatHandler(c.Format, l.w, &l.level, l.journal), gen: gen})
}

// formatHandler builds the handler of a format. Under the journal (or with
// format "journal") each line starts with "<N>", its syslog priority, which
// journald strips and files as the entry's PRIORITY; text lines then leave
// out the time, which journald records itself (that is format "journal"),
// and JSON lines stay JSON after the prefix. Elsewhere text and JSON are
// slog's own.
func formatHandler(format string, w io.Writer, level slog.Leveler, journalStream bool) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if !journalStream && format != config.LogFormatJournal {
		if format == "json" {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	pw := &priorityWriter{w: w}
	var inner slog.Handler
	if format == "json" {
		inner = slog.NewJSONHandler(pw, opts)
	} else {
		opts.ReplaceAttr = dropTime
		inner = slog.NewTextHandler(pw, opts)
	}
	return &priorityHandler{inner: inner, pw: pw}
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// syslogPriority maps a level to syslog's (RFC 5424) severities.
func syslogPriority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3 // err
	case l >= slog.LevelWarn:
		return 4 // warning
	case l >= slog.LevelInfo:
		return 6 // info
	}
	return 7 // debug
}

// priorityWriter writes each record (one Write from slog's handlers) with
// the priority prefix of the record being handled.
type priorityWriter struct {
	mu  sync.Mutex
	w   io.Writer
	pri int
	buf bytes.Buffer
}

func (p *priorityWriter) Write(b []byte) (int, error) {
	// Called with mu held by priorityHandler.Handle.
	p.buf.Reset()
	p.buf.WriteByte('<')
	p.buf.WriteString(strconv.Itoa(p.pri))
	p.buf.WriteByte('>')
	p.buf.Write(b)
	if _, err := p.w.Write(p.buf.Bytes()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// priorityHandler sets the writer's prefix for each record.
type priorityHandler struct {
	inner slog.Handler
	pw    *priorityWriter
}

func (h *priorityHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *priorityHandler) Handle(ctx context.Context, r slog.Record) error {
	h.pw.mu.Lock()
	defer h.pw.mu.Unlock()
	h.pw.pri = syslogPriority(r.Level)
	return h.inner.Handle(ctx, r)
}

func (h *priorityHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &priorityHandler{inner: h.inner.WithAttrs(as), pw: h.pw}
}

func (h *priorityHandler) WithGroup(name string) slog.Handler {
	return &priorityHandler{inner: h.inner.WithGroup(name), pw: h.pw}
}

// switchHandler writes through the current root handler, with the
// attributes and groups it was derived with.
type switchHandler struct {
	l      *logging
	ops    []handlerOp // WithAttrs and WithGroup calls, in order
	cached atomic.Pointer[derived]
}

// handlerOp is one WithAttrs (attrs) or WithGroup (group) call.
type handlerOp struct {
	attrs []slog.Attr
	group string
}

// derived is the root of generation gen with ops applied.
type derived struct {
	h   slog.Handler
	gen uint64
}

func (s *switchHandler) current() slog.Handler {
	root := s.l.root.Load()
	if d := s.cached.Load(); d != nil && d.gen == root.gen {
		return d.h
	}
	h := root.h
	for _, op := range s.ops {
		if op.attrs != nil {
			h = h.WithAttrs(op.attrs)
		} else {
			h = h.WithGroup(op.group)
		}
	}
	s.cached.Store(&derived{h: h, gen: root.gen})
	return h
}

func (s *switchHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= s.l.level.Level()
}

func (s *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return s.current().Handle(ctx, r)
}

func (s *switchHandler) with(op handlerOp) *switchHandler {
	ops := make([]handlerOp, len(s.ops), len(s.ops)+1)
	copy(ops, s.ops)
	return &switchHandler{l: s.l, ops: append(ops, op)}
}

func (s *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return s
	}
	return s.with(handlerOp{attrs: as})
}

func (s *switchHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return s
	}
	return s.with(handlerOp{group: name})
}
