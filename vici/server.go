// Package vici speaks VICI, strongSwan's control protocol (the vici
// plugin's README in strongSwan's source), on a unix socket, so that
// swanctl, govici and the tools built on them (Prometheus exporters,
// controllers) drive iked unchanged. It maps VICI's commands onto the IKE
// engine: listings from Engine.SAs and Engine.Connections, control through
// Engine.Initiate, Terminate, RekeyIKE and CreateChild, events from
// Engine.Subscribe and the daemon's log, and connections and credentials
// loaded over VICI into connections the daemon hands to the engine.
//
// The protocol: length-prefixed segments (at most 512 KiB), each one packet
// (a command request and its response, an event registration and its
// confirmation, an event), messages as a tree of sections, key/values and
// lists. One command runs at a time per connection; events are sent
// between. A client that breaks the encoding is disconnected, and only it.
package vici

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/iked/iked/ike"
)

// Timeouts and bounds; variables so tests can shorten them.
var (
	// writeTimeout bounds one packet's write to a client.
	writeTimeout = 30 * time.Second
	// idleTimeout closes a client that sends nothing for this long and
	// is registered for no event (a monitor waits as long as it likes).
	idleTimeout = 10 * time.Minute
	// queueLen is how many packets may wait for a client; a client whose
	// queue of events fills up (it stopped reading) is disconnected rather
	// than let it hold events or memory.
	queueLen = 4096
)

// Config is what the server maps VICI onto.
type Config struct {
	// Path is the socket's path.
	Path string
	// Engine is the IKE engine.
	Engine *ike.Engine
	// Version is the daemon's version, answered to "version".
	Version string
	// Started is when the daemon started ("stats" uptime).
	Started time.Time
	// Plugins are what "stats" lists as loaded plugins: iked's parts.
	Plugins []string
	// FileConnections lists the names of the connections of the
	// configuration file, which load-conn must not replace.
	FileConnections func() []string
	// SetConnections hands the connections loaded over VICI to the daemon,
	// which gives the engine them together with the file's.
	SetConnections func([]*ike.Connection) error
	// Reload re-reads the daemon's configuration file (reload-settings).
	Reload func() error
	// Logger receives the server's own log lines; nil discards them.
	Logger *slog.Logger
	// Tap, when set, feeds the "log" and "control-log" events.
	Tap *LogTap
	// IKEv1, when set, is the IKEv1 engine: its ISAKMP SAs are listed
	// (version 1) and terminated beside the IKE SAs.
	IKEv1 IKEv1
}

// IKEv1 is the IKEv1 engine as the daemon presents it to VICI: its ISAKMP
// SAs in the IKEv2 engine's shape (IDs "isakmp-N", the cookies as SPIs,
// IPsec SA pairs as Child SAs) and their deletion with the peer.
type IKEv1 interface {
	SAs() []ike.SAInfo
	Terminate(ctx context.Context, target string) (int, error)
}

// Server serves VICI on a unix socket.
type Server struct {
	cfg  Config
	log  *slog.Logger
	ln   *net.UnixListener
	info os.FileInfo

	ctx    context.Context // cancelled by Close: initiations in flight end
	cancel context.CancelFunc
	wg     sync.WaitGroup

	unsubscribe func()
	untap       func()

	mu      sync.Mutex // guards clients, nextID, closed
	clients map[*client]struct{}
	nextID  uint64
	closed  bool

	ids   childIDs // Child SA unique IDs (sa.go)
	store *store   // connections and credentials loaded over VICI (load.go)
}

// Listen creates the socket and returns a Server ready to Serve.
func Listen(cfg Config) (*Server, error) {
	if cfg.Engine == nil {
		return nil, errors.New("vici: no engine")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, info, err := listenSocket(cfg.Path)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, log: log, ln: ln, info: info, ctx: ctx, cancel: cancel,
		clients: map[*client]struct{}{}, store: newStore()}
	s.ids.init()
	s.unsubscribe = cfg.Engine.Subscribe(s.saEvent)
	if cfg.Tap != nil {
		s.untap = cfg.Tap.attach(s.logRecord)
	}
	return s, nil
}

// allSAs lists the IKE SAs, then the ISAKMP SAs.
func (s *Server) allSAs() []ike.SAInfo {
	sas := s.cfg.Engine.SAs()
	if s.cfg.IKEv1 != nil {
		sas = append(sas, s.cfg.IKEv1.SAs()...)
	}
	return sas
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.cfg.Path }

// Serve accepts clients until Close.
func (s *Server) Serve() error {
	var backoff time.Duration
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("vici socket accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		if err := authorize(conn); err != nil {
			s.log.Warn("vici client refused", "err", err)
			_ = conn.Close()
			continue
		}
		c := s.newClient(conn)
		if c == nil {
			_ = conn.Close()
			return nil
		}
		s.wg.Add(2)
		go func() { defer s.wg.Done(); c.writeLoop() }()
		go func() { defer s.wg.Done(); c.readLoop() }()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops accepting, disconnects every client, waits for their
// goroutines and removes the socket file (if it is still ours).
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	clients := make([]*client, 0, len(s.clients))
	for c := range s.clients {
		clients = append(clients, c)
	}
	s.mu.Unlock()
	s.cancel()
	s.unsubscribe()
	if s.untap != nil {
		s.untap()
	}
	err := s.ln.Close()
	for _, c := range clients {
		c.close("daemon shutting down")
	}
	if fi, serr := os.Lstat(s.cfg.Path); serr == nil && os.SameFile(fi, s.info) {
		if rerr := os.Remove(s.cfg.Path); rerr != nil && err == nil {
			err = rerr
		}
	}
	s.wg.Wait()
	s.store.wipe()
	return err
}

// client is one connection.
type client struct {
	s    *Server
	id   uint64
	conn *net.UnixConn
	out  chan []byte
	done chan struct{}
	once sync.Once

	mu     sync.Mutex // guards events, gone and ctlLog
	events map[string]bool
	gone   bool
	// ctlLog is the filter of the command in progress that streams
	// control-log events (initiate, terminate); nil when none is.
	ctlLog *logFilter
}

func (s *Server) newClient(conn *net.UnixConn) *client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.nextID++
	c := &client{s: s, id: s.nextID, conn: conn, out: make(chan []byte, queueLen), done: make(chan struct{}), events: map[string]bool{}}
	s.clients[c] = struct{}{}
	return c
}

// close ends the connection once; why is logged.
func (c *client) close(why string) {
	c.once.Do(func() {
		c.s.log.Debug("vici client disconnected", "client", c.id, "reason", why)
		close(c.done)
		_ = c.conn.Close()
		c.mu.Lock()
		if c.events["log"] {
			c.s.watch(-1)
		}
		c.events, c.gone = map[string]bool{}, true
		c.mu.Unlock()
		c.s.mu.Lock()
		delete(c.s.clients, c)
		c.s.mu.Unlock()
	})
}

// readLoop reads and handles the client's packets in order.
func (c *client) readLoop() {
	defer c.close("read loop ended")
	for {
		c.mu.Lock()
		monitoring := len(c.events) > 0
		c.mu.Unlock()
		if monitoring {
			_ = c.conn.SetReadDeadline(time.Time{})
		} else {
			_ = c.conn.SetReadDeadline(time.Now().Add(idleTimeout))
		}
		seg, err := readSegment(c.conn)
		if err == nil {
			var p packet
			p, err = decodePacket(seg)
			clear(seg) // it may hold a key or a secret (load-key, load-shared)
			if err == nil {
				c.handle(p)
				continue
			}
		}
		if errors.Is(err, errMalformed) {
			c.s.log.Warn("vici client sent a malformed packet; disconnected", "client", c.id, "err", err)
		} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			c.s.log.Debug("vici client read failed", "client", c.id, "err", err)
		}
		return
	}
}

// writeLoop writes queued packets until the client goes.
func (c *client) writeLoop() {
	for {
		select {
		case b := <-c.out:
			_ = c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.conn.Write(b); err != nil {
				c.close("write failed: " + err.Error())
				return
			}
		case <-c.done:
			return
		}
	}
}

// send queues a packet from the client's own command, waiting for room.
func (c *client) send(typ byte, name string, m *Message) {
	b, err := encodePacket(typ, name, m)
	if err != nil {
		c.s.log.Error("vici message not sent", "client", c.id, "err", err)
		return
	}
	select {
	case c.out <- b:
	case <-c.done:
	}
}

// trySend queues an event without waiting: events are raised from the
// engine's and the logger's goroutines, which must not wait for a client.
// A client too slow to take them is disconnected.
func (c *client) trySend(b []byte) {
	select {
	case c.out <- b:
	case <-c.done:
	default:
		c.close("too slow to read its events")
	}
}

// registered reports whether the client listens to event name.
func (c *client) registered(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.events[name]
}

// stream sends an event of the command in progress, if the client
// registered for it (as charon, a client that did not gets the response
// alone).
func (c *client) stream(name string, m *Message) {
	if c.registered(name) {
		c.send(pktEvent, name, m)
	}
}

// handle runs one packet.
func (c *client) handle(p packet) {
	switch p.typ {
	case pktEventRegister, pktEventUnregister:
		if !knownEvents[p.name] {
			c.s.log.Debug("vici client registers for an unknown event", "client", c.id, "event", p.name)
			c.send(pktEventUnknown, "", nil)
			return
		}
		c.mu.Lock()
		if c.gone {
			c.mu.Unlock()
			return
		}
		was := c.events[p.name]
		if p.typ == pktEventRegister {
			c.events[p.name] = true
		} else {
			delete(c.events, p.name)
		}
		c.mu.Unlock()
		if p.name == "log" && was != (p.typ == pktEventRegister) {
			if was {
				c.s.watch(-1)
			} else {
				c.s.watch(1)
			}
		}
		c.s.log.Debug("vici event registration", "client", c.id, "event", p.name, "register", p.typ == pktEventRegister)
		if p.typ == pktEventUnregister && !was {
			c.send(pktEventUnknown, "", nil)
			return
		}
		c.send(pktEventConfirm, "", nil)
	case pktCmdRequest:
		h, ok := commands[p.name]
		if !ok {
			c.s.log.Debug("vici client requests an unknown command", "client", c.id, "command", p.name)
			c.send(pktCmdUnknown, "", nil)
			return
		}
		c.s.log.Debug("vici request", "client", c.id, "command", p.name)
		c.send(pktCmdResponse, "", c.run(h, p))
	}
}

// run calls a command handler; a bug in one request answers an error
// rather than take the daemon down.
func (c *client) run(h handler, p packet) (resp *Message) {
	defer func() {
		if r := recover(); r != nil {
			c.s.log.Error("vici command panicked", "command", p.name, "panic", r)
			resp = reply(errorf("internal error"))
		}
	}()
	return h(c, p.msg)
}

// broadcast sends an event to every client registered for it.
func (s *Server) broadcast(name string, m *Message) {
	s.mu.Lock()
	var to []*client
	for c := range s.clients {
		if c.registered(name) {
			to = append(to, c)
		}
	}
	s.mu.Unlock()
	if len(to) == 0 {
		return
	}
	b, err := encodePacket(pktEvent, name, m)
	if err != nil {
		s.log.Error("vici event not sent", "event", name, "err", err)
		return
	}
	for _, c := range to {
		c.trySend(b)
	}
}

// listening reports whether any client is registered for event name.
func (s *Server) listening(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		if c.registered(name) {
			return true
		}
	}
	return false
}

// knownEvents are the events a client may register for. ike-update and
// list-policy are accepted but never raised: iked has no MOBIKE and no
// trap, pass or drop policies of its own in VICI's sense.
var knownEvents = map[string]bool{
	"list-sa": true, "list-conn": true, "list-cert": true, "list-authority": true, "list-policy": true,
	"ike-updown": true, "ike-rekey": true, "ike-update": true, "child-updown": true, "child-rekey": true,
	"log": true, "control-log": true,
}

// handler runs one command; c streams events to the requester.
type handler func(c *client, req *Message) *Message

// commands maps command names to handlers; filled by the files that hold
// them (query.go, control.go, load.go).
var commands = map[string]handler{}

// result is a command's outcome as charon reports it: success = yes, or
// no with errmsg.
type result struct{ err string }

func errorf(format string, args ...any) result {
	return result{err: fmt.Sprintf(format, args...)}
}

// reply builds the success/errmsg response.
func reply(r result) *Message {
	m := NewMessage()
	if r.err == "" {
		return m.Set("success", "yes")
	}
	return m.Set("success", "no").Set("errmsg", r.err)
}
