package control

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// streamHandler is a fakeHandler that streams: emit sends to every
// watcher; watching tells how many watch.
type streamHandler struct {
	fakeHandler
	smu      sync.Mutex
	logs     map[int]func(time.Time, LogLine)
	levels   map[int]slog.Level
	sas      map[int]func(time.Time, SAEvent)
	next     int
	changed  chan struct{}
	canceled int
}

func newStreamHandler() *streamHandler {
	return &streamHandler{logs: map[int]func(time.Time, LogLine){}, levels: map[int]slog.Level{},
		sas: map[int]func(time.Time, SAEvent){}, changed: make(chan struct{}, 100)}
}

func (h *streamHandler) signal() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

func (h *streamHandler) WatchLog(level slog.Level, f func(time.Time, LogLine)) func() {
	h.smu.Lock()
	defer h.smu.Unlock()
	id := h.next
	h.next++
	h.logs[id], h.levels[id] = f, level
	h.signal()
	return func() {
		h.smu.Lock()
		defer h.smu.Unlock()
		delete(h.logs, id)
		h.canceled++
		h.signal()
	}
}

func (h *streamHandler) WatchSAs(f func(time.Time, SAEvent)) func() {
	h.smu.Lock()
	defer h.smu.Unlock()
	id := h.next
	h.next++
	h.sas[id] = f
	h.signal()
	return func() {
		h.smu.Lock()
		defer h.smu.Unlock()
		delete(h.sas, id)
		h.canceled++
		h.signal()
	}
}

// waitWatchers waits until logs and SA watchers number nLogs and nSAs.
func (h *streamHandler) waitWatchers(t *testing.T, nLogs, nSAs int) {
	t.Helper()
	deadline := time.After(10 * time.Second) // a hang guard
	for {
		h.smu.Lock()
		ok := len(h.logs) == nLogs && len(h.sas) == nSAs
		h.smu.Unlock()
		if ok {
			return
		}
		select {
		case <-h.changed:
		case <-deadline:
			t.Fatalf("watchers did not become %d log, %d SA", nLogs, nSAs)
		}
	}
}

func (h *streamHandler) emitLog(l LogLine) {
	h.smu.Lock()
	defer h.smu.Unlock()
	for _, f := range h.logs {
		f(t0, l)
	}
}

func (h *streamHandler) emitSA(e SAEvent) {
	h.smu.Lock()
	defer h.smu.Unlock()
	for _, f := range h.sas {
		f(t0, e)
	}
}

// streamInto runs Stream in the background, sending its events to a
// channel; the returned function stops it and returns Stream's error.
func streamInto(t *testing.T, path string, req Request) (<-chan Event, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- Stream(ctx, path, req, func(ev Event) error { ch <- ev; return nil })
	}()
	return ch, func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Stream did not return after cancel")
			return nil
		}
	}
}

func next(t *testing.T, ch <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return Event{}
	}
}

// TestStreamLog: the log stream carries the lines at the level asked for,
// in order; the client's hang-up ends the watch.
func TestStreamLog(t *testing.T) {
	h := newStreamHandler()
	_, path := serve(t, h)
	ch, stop := streamInto(t, path, Request{Command: CommandLog, Level: "debug"})
	h.waitWatchers(t, 1, 0)
	h.smu.Lock()
	for _, l := range h.levels {
		if l != slog.LevelDebug {
			t.Errorf("watching from %v, want debug", l)
		}
	}
	h.smu.Unlock()
	for i, msg := range []string{"generating IKE_SA_INIT request 0 [ SA KE No ]", "IKE SA established"} {
		h.emitLog(LogLine{Level: "DEBUG", Message: msg, Attrs: []Attr{{"sa", "ike-1"}, {"peer", "192.0.2.2:500"}, {"err", "a b"}}})
		ev := next(t, ch)
		if ev.Log == nil || ev.Log.Message != msg || !ev.Time.Equal(t0) || ev.Dropped != 0 {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if got := ev.Log.Text(); got != msg+` sa=ike-1 peer=192.0.2.2:500 err="a b"` {
			t.Errorf("text %q", got)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Stream after cancel: %v", err)
	}
	h.waitWatchers(t, 0, 0) // the hang-up ended the watch
}

// TestStreamMonitor: SA events reach the client whole.
func TestStreamMonitor(t *testing.T) {
	h := newStreamHandler()
	_, path := serve(t, h)
	ch, stop := streamInto(t, path, Request{Command: CommandMonitor})
	h.waitWatchers(t, 0, 1)
	sa := sampleSAs()[0]
	c := sa.Children[0]
	h.emitSA(SAEvent{Event: EventChildUp, SA: sa, Child: &c})
	ev := next(t, ch)
	if ev.SA == nil || ev.SA.Event != EventChildUp || ev.SA.SA.ID != "ike-1" || ev.SA.Child == nil || ev.SA.Child.SPIIn != "c1a2b3c4" {
		t.Fatalf("event %+v", ev)
	}
	_ = stop()
}

// TestStreamAccess: members of the socket's group may monitor and stream
// the log from info up; the debug log needs a privileged client.
func TestStreamAccess(t *testing.T) {
	h := newStreamHandler()
	dir := t.TempDir()
	_, path := serveWith(t, h, uidFromAddr, func(s *Server) { s.ownUID = 990 })
	const monitor = 4242
	ask := func(uid uint32, req Request) Response {
		t.Helper()
		conn := dialAs(t, dir, path, uid)
		defer conn.Close()
		b, _ := json.Marshal(req)
		if _, err := conn.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(conn).ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var resp Response
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, req := range []Request{{Command: CommandMonitor}, {Command: CommandLog}, {Command: CommandLog, Level: "warn"}} {
		if resp := ask(monitor, req); resp.Error != "" || resp.Stream != req.Command {
			t.Errorf("%+v as the monitoring user: %+v", req, resp)
		}
	}
	resp := ask(monitor, Request{Command: CommandLog, Level: "debug"})
	if !strings.HasPrefix(resp.Error, "permission denied: the debug log needs root or iked's own user (uid 990)") {
		t.Errorf("debug log as the monitoring user: %+v", resp)
	}
	if resp := ask(990, Request{Command: CommandLog, Level: "debug"}); resp.Error != "" || resp.Stream != CommandLog {
		t.Errorf("debug log as iked's user: %+v", resp)
	}
	if resp := ask(990, Request{Command: CommandLog, Level: "loud"}); !strings.Contains(resp.Error, `unknown log level "loud"`) {
		t.Errorf("bad level: %+v", resp)
	}
}

// TestStreamEndsWithTheServer: Close ends a stream; the client says so.
func TestStreamEndsWithTheServer(t *testing.T) {
	h := newStreamHandler()
	s, path := serve(t, h)
	done := make(chan error, 1)
	go func() {
		done <- Stream(context.Background(), path, Request{Command: CommandMonitor}, func(Event) error { return nil })
	}()
	h.waitWatchers(t, 0, 1)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "iked ended the stream") {
			t.Fatalf("Stream: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived the server")
	}
	h.waitWatchers(t, 0, 0)
}

// TestStreamWithoutStreamer: a handler that cannot stream says so.
func TestStreamWithoutStreamer(t *testing.T) {
	_, path := serve(t, &fakeHandler{})
	err := Stream(context.Background(), path, Request{Command: CommandLog}, func(Event) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "cannot stream log") {
		t.Fatalf("Stream: %v", err)
	}
}

// TestEventQueue: a full queue drops and counts; the count comes with the
// next event taken, and put never blocks.
func TestEventQueue(t *testing.T) {
	q := newEventQueue()
	for i := range streamQueue + 5 {
		q.put(Event{SA: &SAEvent{Event: EventIKEUp, SA: ike.SAInfo{ID: "ike-" + string(rune('0'+i%10))}}})
	}
	evs, dropped := q.take()
	if len(evs) != streamQueue || dropped != 5 {
		t.Fatalf("took %d, dropped %d", len(evs), dropped)
	}
	q.put(Event{})
	if evs, dropped := q.take(); len(evs) != 1 || dropped != 0 {
		t.Fatalf("after: %d, %d", len(evs), dropped)
	}
	if evs, dropped := q.take(); len(evs) != 0 || dropped != 0 {
		t.Fatalf("empty: %d, %d", len(evs), dropped)
	}
}
