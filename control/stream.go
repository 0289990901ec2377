package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/iked/iked/ike"
)

// Streams: the one request, one response protocol has two commands whose
// response goes on: after the first line (a Response with Stream set, or
// with Error), the daemon writes one Event per line until the client
// hangs up or the daemon stops.
//
//	{"command":"log","level":"debug"}   the daemon's log, live (swanctl --log)
//	{"command":"monitor"}               SA up, down and rekey events
//
// A stream never slows the daemon down: events are queued for the client
// (streamQueue of them) and those that do not fit are dropped and counted
// in the next Event's Dropped. A client that reads nothing for
// writeTimeout is disconnected.
const (
	// CommandLog streams the daemon's log from Request.Level up (debug,
	// info, warn, error; default info).
	CommandLog = "log"
	// CommandMonitor streams SA events.
	CommandMonitor = "monitor"
)

// streamQueue is how many events wait for a slow client before new ones
// are dropped.
const streamQueue = 4096

// Event is one line of a stream: a log line or an SA event.
type Event struct {
	// Time is when it happened.
	Time time.Time `json:"time"`
	// Log is a log line (CommandLog).
	Log *LogLine `json:"log,omitempty"`
	// SA is an SA event (CommandMonitor).
	SA *SAEvent `json:"sa,omitempty"`
	// Dropped counts the events dropped before this one because the
	// client did not read them fast enough.
	Dropped uint64 `json:"dropped,omitempty"`
}

// LogLine is one record of the daemon's log.
type LogLine struct {
	// Level is "DEBUG", "INFO", "WARN" or "ERROR".
	Level string `json:"level"`
	// Message is the record's message.
	Message string `json:"msg"`
	// Attrs are its attributes, in order.
	Attrs []Attr `json:"attrs,omitempty"`
}

// Attr is one key and value of a log line.
type Attr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Kinds of SAEvent.
const (
	EventIKEUp      = "ike-up"
	EventIKEDown    = "ike-down"
	EventIKERekey   = "ike-rekey"
	EventChildUp    = "child-up"
	EventChildDown  = "child-down"
	EventChildRekey = "child-rekey"
)

// SAEvent is an IKE or Child SA coming up, going down or being rekeyed.
type SAEvent struct {
	// Event is one of the Event* kinds.
	Event string `json:"event"`
	// SA is the IKE SA (the new one after an IKE SA rekey), as
	// `ikectl sas --json` shows it.
	SA ike.SAInfo `json:"ike_sa"`
	// Old is the IKE SA an IKE SA rekey replaced.
	Old *ike.SAInfo `json:"old_ike_sa,omitempty"`
	// Child is the Child SA of a child event (the new one after a rekey),
	// OldChild the one a Child SA rekey replaced.
	Child    *ike.ChildInfo `json:"child,omitempty"`
	OldChild *ike.ChildInfo `json:"old_child,omitempty"`
}

// Streamer is implemented by a Handler that streams its log and SA events;
// the server answers "log" and "monitor" through it. The functions given
// are called from the daemon's goroutines, possibly with an SA's lock
// held: they only queue.
type Streamer interface {
	// WatchLog calls f with every log record at level or above until
	// cancel is called.
	WatchLog(level slog.Level, f func(time.Time, LogLine)) (cancel func())
	// WatchSAs calls f with every SA event until cancel is called.
	WatchSAs(f func(time.Time, SAEvent)) (cancel func())
}

// streaming reports whether command is answered with a stream.
func streaming(command string) bool { return command == CommandLog || command == CommandMonitor }

// parseLevel reads a log level name; empty is info.
func parseLevel(s string) (slog.Level, error) {
	if s == "" {
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("unknown log level %q (expected debug, info, warn or error)", s)
	}
	return l, nil
}

// stream answers a streaming request on conn until the client hangs up or
// the server closes.
func (s *Server) stream(conn *net.UnixConn, req Request, client clientInfo) {
	st, ok := s.h.(Streamer)
	var level slog.Level
	var err error
	switch {
	case !ok:
		err = fmt.Errorf("this daemon cannot stream %s", req.Command)
	case req.Command == CommandLog:
		level, err = parseLevel(req.Level)
		if err == nil && level < slog.LevelInfo && !client.privileged {
			// Debug lines cost the daemon their formatting: only those
			// who may change its state may ask for them.
			s.log.Warn("control request refused: debug log for an unprivileged client", "uid", client.uid, "pid", client.pid)
			err = fmt.Errorf("permission denied: the debug log needs root or iked's own user (uid %d); members of the control socket's group may stream info and above", s.ownUID)
		}
	}
	if err != nil {
		writeLine(conn, Response{Error: err.Error()})
		return
	}
	q := newEventQueue()
	var cancel func()
	if req.Command == CommandLog {
		cancel = st.WatchLog(level, func(at time.Time, l LogLine) { q.put(Event{Time: at, Log: &l}) })
	} else {
		cancel = st.WatchSAs(func(at time.Time, e SAEvent) { q.put(Event{Time: at, SA: &e}) })
	}
	defer cancel()
	s.log.Debug("control stream started", "command", req.Command, "level", req.Level, "uid", client.uid)
	if !writeLine(conn, Response{Stream: req.Command}) {
		return
	}
	// The client sends nothing more: a read returns when it hangs up.
	gone := make(chan struct{})
	go func() {
		_ = conn.SetReadDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, conn)
		close(gone)
	}()
	bw := bufio.NewWriter(conn)
	enc := json.NewEncoder(bw)
	for {
		select {
		case <-gone:
			return
		case <-s.ctx.Done():
			return
		case <-q.ready:
		}
		evs, dropped := q.take()
		_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		for i, ev := range evs {
			if i == 0 {
				ev.Dropped = dropped
			}
			if err := enc.Encode(ev); err != nil {
				return
			}
		}
		if err := bw.Flush(); err != nil {
			s.log.Debug("control stream ended", "command", req.Command, "err", err)
			return
		}
	}
}

// writeLine writes v as one JSON line; false when the client is gone.
func writeLine(conn net.Conn, v any) bool {
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "encoding response: " + err.Error()})
	}
	_, err = conn.Write(append(b, '\n'))
	return err == nil
}

// eventQueue holds the events a stream has not written yet; put never
// blocks.
type eventQueue struct {
	mu      sync.Mutex
	evs     []Event
	dropped uint64
	ready   chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{ready: make(chan struct{}, 1)} }

func (q *eventQueue) put(ev Event) {
	q.mu.Lock()
	if len(q.evs) >= streamQueue {
		q.dropped++
	} else {
		q.evs = append(q.evs, ev)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// take returns the queued events and how many were dropped before them.
func (q *eventQueue) take() ([]Event, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs, dropped := q.evs, q.dropped
	q.evs, q.dropped = nil, 0
	if len(evs) == 0 && dropped > 0 {
		evs = []Event{{Time: time.Now()}}
	}
	return evs, dropped
}

// Stream sends a streaming request (CommandLog, CommandMonitor) to the
// daemon at path and calls f with each event until ctx ends, the daemon
// ends the stream, or f returns an error. The daemon's refusal (say, the
// debug log for an unprivileged user) is returned as an error.
func Stream(ctx context.Context, path string, req Request, f func(Event) error) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return dialError(path, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding request: %w", err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	first, err := readStreamLine(br)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, io.EOF) {
			return errors.New("iked closed the control connection without answering")
		}
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	var resp Response
	if err := json.Unmarshal(first, &resp); err != nil {
		return fmt.Errorf("malformed answer from iked: %w", err)
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	if resp.Stream != req.Command {
		return fmt.Errorf("iked answered %s with no stream (an older daemon?)", req.Command)
	}
	for {
		line, err := readStreamLine(br)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("iked ended the stream (stopped?)")
			}
			return fmt.Errorf("control socket %s: %w", path, err)
		}
		var ev Event
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("malformed event from iked: %w", err)
		}
		if err := f(ev); err != nil {
			return err
		}
	}
}

// readStreamLine reads one line of a stream, without its newline; a line
// longer than maxResponseSize is an error.
func readStreamLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxResponseSize {
			return nil, errTooLarge
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

// Text renders a log line as one line of text: the message, then
// key=value, values with spaces quoted.
func (l LogLine) Text() string {
	var b strings.Builder
	b.WriteString(l.Message)
	for _, a := range l.Attrs {
		b.WriteByte(' ')
		b.WriteString(a.Key)
		b.WriteByte('=')
		if a.Value == "" || strings.ContainsAny(a.Value, " \"=") {
			fmt.Fprintf(&b, "%q", a.Value)
		} else {
			b.WriteString(a.Value)
		}
	}
	return b.String()
}
