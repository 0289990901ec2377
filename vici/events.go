package vici

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iked/iked/ike"
)

// Events: ike-updown, child-updown, ike-rekey and child-rekey from the
// engine's SA events; log and control-log from the daemon's log records.

// saEvent turns an engine event into the VICI event charon raises for it
// (vici_query.c ike_updown, child_updown, ike_rekey, child_rekey).
func (s *Server) saEvent(ev ike.SAEvent) {
	now := time.Now()
	name := connName(ev.SA.Connection)
	switch ev.Kind {
	case ike.EventIKEUp, ike.EventIKEDown:
		if !s.listening("ike-updown") {
			return
		}
		m := NewMessage()
		if ev.Kind == ike.EventIKEUp {
			m.Set("up", "yes")
		}
		addIKE(m.Section(name), ev.SA, ev.Extra, now)
		s.broadcast("ike-updown", m)
	case ike.EventIKERekey:
		if !s.listening("ike-rekey") {
			return
		}
		m := NewMessage()
		sec := m.Section(name)
		addIKE(sec.Section("old"), ev.Old, ev.OldExtra, now)
		addIKE(sec.Section("new"), ev.SA, ev.Extra, now)
		s.broadcast("ike-rekey", m)
	case ike.EventChildUp, ike.EventChildDown:
		if ev.Kind == ike.EventChildDown {
			defer s.ids.forget(ev.Child.SPIIn)
		}
		if !s.listening("child-updown") {
			return
		}
		m := NewMessage()
		if ev.Kind == ike.EventChildUp {
			m.Set("up", "yes")
		}
		m.put(name, s.saSection(ev.SA, ev.Extra, []ike.ChildInfo{ev.Child}, now))
		s.broadcast("child-updown", m)
	case ike.EventChildRekey:
		defer s.ids.forget(ev.OldChild.SPIIn)
		if !s.listening("child-rekey") {
			return
		}
		m := NewMessage()
		sec := m.Section(name)
		addIKE(sec, ev.SA, ev.Extra, now)
		child := s.childName(ev.SA.Connection)
		cs := sec.Section("child-sas").Section(child)
		oldID, newID := s.ids.get(ev.OldChild.SPIIn), s.ids.get(ev.Child.SPIIn)
		addChild(cs.Section("old"), child, oldID, ev.OldChild, ev.OldExtra.Children[ev.OldChild.SPIIn], ev.Extra.Encap, now)
		addChild(cs.Section("new"), child, newID, ev.Child, ev.Extra.Children[ev.Child.SPIIn], ev.Extra.Encap, now)
		s.broadcast("child-rekey", m)
	}
}

// LogTap passes the daemon's log records to its handler and to the VICI
// server's log and control-log events. It is made before the server (the
// engine logs from its start) and attached to it once it listens.
type LogTap struct {
	next slog.Handler
	// sink is the attached server's record function; listeners counts
	// the clients that want records (so that a daemon nobody watches does
	// not format lines it would not write).
	mu        sync.Mutex
	sink      func(logRecord)
	listeners atomic.Int32 // want info and above
	debug     atomic.Int32 // want debug lines too
	// watchers are Watch's functions (logwatch.go), guarded by mu;
	// watchMin is the lowest level any of them wants.
	watchers map[int]watcher
	nextW    int
	watchMin atomic.Int64
}

// NewLogTap wraps next, which keeps receiving every record it enables.
func NewLogTap(next slog.Handler) *LogTap {
	t := &LogTap{next: next}
	t.watchMin.Store(noWatcher)
	return t
}

// Handler returns the slog.Handler to log through.
func (t *LogTap) Handler() slog.Handler { return &tapHandler{tap: t, next: t.next} }

func (t *LogTap) attach(f func(logRecord)) (detach func()) {
	t.mu.Lock()
	t.sink = f
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		t.sink = nil
		t.mu.Unlock()
	}
}

// logRecord is a log line in VICI's terms.
type logRecord struct {
	group   string
	level   int // strongSwan's: 0 for warnings and errors, 1 info, 2 debug
	conn    string
	saID    string
	message string
}

type tapHandler struct {
	tap   *LogTap
	next  slog.Handler
	attrs []slog.Attr
}

func (h *tapHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l) || (h.tap.listeners.Load() > 0 && l >= slog.LevelInfo) || h.tap.debug.Load() > 0 ||
		int64(l) >= h.tap.watchMin.Load()
}

func (h *tapHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if h.tap.listeners.Load() > 0 || h.tap.debug.Load() > 0 {
		h.tap.mu.Lock()
		sink := h.tap.sink
		h.tap.mu.Unlock()
		if sink != nil {
			sink(h.record(r))
		}
	}
	if int64(r.Level) >= h.tap.watchMin.Load() {
		h.watch(r)
	}
	return err
}

func (h *tapHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &tapHandler{tap: h.tap, next: h.next.WithAttrs(as), attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *tapHandler) WithGroup(name string) slog.Handler {
	return &tapHandler{tap: h.tap, next: h.next.WithGroup(name), attrs: h.attrs}
}

// record renders r as one line: the message, then key=value.
func (h *tapHandler) record(r slog.Record) logRecord {
	lr := logRecord{group: "DMN", level: 1}
	switch {
	case r.Level >= slog.LevelWarn:
		lr.level = 0
	case r.Level < slog.LevelInfo:
		lr.level = 2
	}
	var sb strings.Builder
	sb.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		v := a.Value.Resolve().String()
		switch a.Key {
		case "sa":
			lr.saID, lr.group = v, "IKE"
		case "connection":
			lr.conn = v
		}
		sb.WriteByte(' ')
		sb.WriteString(a.Key)
		sb.WriteByte('=')
		if strings.ContainsAny(v, " \"=") || v == "" {
			v = strconv.Quote(v)
		}
		sb.WriteString(v)
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	if lr.group == "IKE" && strings.Contains(r.Message, "CHILD") {
		lr.group = "CHD"
	}
	lr.message = sb.String()
	return lr
}

// logFilter selects the records a running initiate or terminate streams
// to its client as control-log events.
type logFilter struct {
	conn  string          // records of this connection
	sas   map[string]bool // or of these IKE SAs ("ike-N")
	level int
}

func (f *logFilter) matches(r logRecord) bool {
	return r.level <= f.level && ((f.conn != "" && r.conn == f.conn) || f.sas[r.saID])
}

// watch updates the tap's listener count: the server wants records while
// a client is registered for log or runs a command that streams them;
// debug lines only for a command that asks for level 2 or more.
func (s *Server) watch(delta int32) {
	if s.cfg.Tap != nil {
		s.cfg.Tap.listeners.Add(delta)
	}
}

func (s *Server) watchDebug(delta int32) {
	if s.cfg.Tap != nil {
		s.cfg.Tap.debug.Add(delta)
	}
}

// logRecord raises log and control-log events for one record. It runs in
// the logging goroutine, which may hold an SA's lock: sending only queues.
func (s *Server) logRecord(r logRecord) {
	s.mu.Lock()
	var logTo, ctlTo []*client
	for c := range s.clients {
		c.mu.Lock()
		if c.events["log"] && r.level <= 1 {
			logTo = append(logTo, c)
		}
		if c.events["control-log"] && c.ctlLog != nil && c.ctlLog.matches(r) {
			ctlTo = append(ctlTo, c)
		}
		c.mu.Unlock()
	}
	s.mu.Unlock()
	if len(logTo) == 0 && len(ctlTo) == 0 {
		return
	}
	m := NewMessage().Set("group", r.group).SetInt("level", int64(r.level))
	if r.saID != "" {
		m.Set("ikesa-name", r.conn).Set("ikesa-uniqueid", ikeSAID(r.saID))
	}
	m.Set("msg", r.message)
	if len(logTo) > 0 {
		lm := NewMessage().Set("group", r.group).SetInt("level", int64(r.level)).Set("thread", "0")
		for _, k := range m.Keys()[2:] {
			v, _ := m.Get(k)
			lm.Set(k, v)
		}
		if b, err := encodePacket(pktEvent, "log", lm); err == nil {
			for _, c := range logTo {
				c.trySend(b)
			}
		}
	}
	if b, err := encodePacket(pktEvent, "control-log", m); err == nil {
		for _, c := range ctlTo {
			c.trySend(b)
		}
	}
}
