package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/iked/iked/policy"
)

// Server timeouts.
const (
	// defaultReadTimeout bounds how long a client may take to send its
	// request; a Server keeps its own copy so that a test can shorten it
	// without racing another server's handlers.
	defaultReadTimeout = 10 * time.Second
)

var (
	// requestTimeout bounds how long a request may run; initiating a
	// connection can take ~30 s when the peer retransmits.
	requestTimeout = 60 * time.Second
	// writeTimeout bounds writing the response.
	writeTimeout = 10 * time.Second
)

// Server serves the control protocol on a unix socket.
type Server struct {
	path string
	ln   *net.UnixListener
	info os.FileInfo // the socket file we created, to remove only ours
	h    Handler
	log  *slog.Logger

	// Access (access.go): who is connected, and who is privileged.
	creds  func(*net.UnixConn) (peerCred, error)
	ownUID uint32
	// readTimeout is set before Serve and only read afterwards.
	readTimeout time.Duration
	usersMu     sync.Mutex
	users       map[uint32]int // open connections of unprivileged clients, by uid

	ctx    context.Context // cancelled by Close; parent of request contexts
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

// Listen creates the control socket at path, with mode 0600, and returns a
// Server ready to Serve it with h. If a socket file already exists at path,
// Listen replaces it only if nothing answers on it (a stale socket left by a
// crashed daemon); if another daemon is listening there, it fails. It also
// refuses to replace a file that is not a socket. A nil log discards logs.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	return ListenWith(path, h, log, Options{})
}

// ListenWith is Listen with the socket's access given by opts: its mode,
// and the group whose members may run read-only commands.
func ListenWith(path string, h Handler, log *slog.Logger, opts Options) (*Server, error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if h == nil {
		return nil, errors.New("control: nil handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, info, err := listenPrivate(path, opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		path:        path,
		ln:          ln,
		info:        info,
		h:           h,
		log:         log,
		creds:       soPeerCred,
		ownUID:      uint32(os.Geteuid()), // #nosec G115 -- a uid fits in 32 bits
		users:       map[uint32]int{},
		readTimeout: defaultReadTimeout,
		ctx:         ctx,
		cancel:      cancel,
	}, nil
}

// removeStale removes a socket file at path that nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: file exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("control socket %s is in use: another iked is running", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket %s: cannot tell whether another iked is running: %w", path, err)
	}
	// Nobody listens: a leftover of a daemon that did not clean up.
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale control socket: %w", err)
	}
	return nil
}

// listenPrivate binds the socket inside a fresh mode-0700 directory next to
// path, sets its group and mode (0600 unless opts say otherwise), and only
// then links it to path, so that nobody can connect to it while it has the
// umask's permissions or the wrong group. This avoids changing the
// process-wide umask.
func listenPrivate(path string, opts Options) (*net.UnixListener, os.FileInfo, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".ctl")
	if err != nil {
		return nil, nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The file is removed by Close (if it is still ours), not by the
	// listener, which only knows the temporary name.
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		_ = ln.Close()
		return nil, nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if opts.SetGID {
		if err := os.Lchown(tmp, -1, opts.GID); err != nil {
			return fail(fmt.Errorf("giving it to group %d (iked must run as root or be a member of the group): %w", opts.GID, err))
		}
	}
	if err := os.Chmod(tmp, opts.mode()); err != nil {
		return fail(err)
	}
	// Link, unlike rename, does not replace a socket another daemon may
	// have created since removeStale looked.
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return fail(errors.New("file created concurrently, is another iked starting?"))
	} else if err != nil {
		// A file system without hard links: rename, which cannot fail
		// because of an existing file.
		if err := os.Rename(tmp, path); err != nil {
			return fail(err)
		}
	}
	info, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return ln, info, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close is called, handling each in its own
// goroutine. It returns nil after Close, or the error that stopped it.
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
			// Probably out of file descriptors: wait and retry, as
			// net/http does, instead of spinning or giving up.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("control socket accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(conn)
		}()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the server: it stops accepting, cancels running requests,
// waits for their handlers to return and removes the socket file (unless
// it has been replaced by someone else's). It is safe to call more than
// once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	s.cancel()
	err := s.ln.Close()
	if fi, serr := os.Lstat(s.path); serr == nil && os.SameFile(fi, s.info) {
		if rerr := os.Remove(s.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	s.wg.Wait()
	return err
}

// handle serves one connection: one request line, one response line.
func (s *Server) handle(conn *net.UnixConn) {
	defer conn.Close()
	client := s.identify(conn)
	if !client.privileged {
		if !s.admit(client.uid) {
			s.log.Warn("control connection refused: too many from one user", "uid", client.uid, "pid", client.pid)
			_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			b, _ := json.Marshal(Response{Error: fmt.Sprintf("too many control connections from uid %d (limit %d)", client.uid, maxConnsPerUser)})
			_, _ = conn.Write(append(b, '\n'))
			return
		}
		defer s.leave(client.uid)
	}
	_ = conn.SetReadDeadline(time.Now().Add(s.readTimeout))
	line, err := readLine(conn, MaxRequestSize)
	tooLarge := errors.Is(err, errTooLarge)
	var resp Response
	switch {
	case tooLarge:
		resp.Error = fmt.Sprintf("request too large (limit %d bytes)", MaxRequestSize)
	case err != nil:
		s.log.Debug("control request not read", "err", err)
		return // nobody to answer
	default:
		if req, err := decodeRequest(line); err == nil && streaming(req.Command) {
			// Read-only commands: any client the socket admits.
			s.stream(conn, req, client)
			return
		}
		resp = s.respond(line, client)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(Response{Error: "encoding response: " + err.Error()})
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		s.log.Debug("control response not sent", "err", err)
		return
	}
	if tooLarge {
		// The client may still be writing its request and only read our
		// answer once done: swallow (a bounded amount of) the rest until
		// it hangs up, so that it sees the answer rather than a reset.
		_ = conn.SetReadDeadline(time.Now().Add(drainTimeout))
		_, _ = io.CopyN(io.Discard, conn, drainLimit)
	}
}

// Bounds on reading what follows an oversized request.
const (
	drainTimeout = 2 * time.Second
	drainLimit   = 4 << 20
)

var errTooLarge = errors.New("line too long")

// readLine reads one newline-terminated line of at most limit bytes
// (newline included) and returns it without the newline. A last line
// without a newline is accepted at EOF.
func readLine(r io.Reader, limit int) ([]byte, error) {
	br := bufio.NewReaderSize(io.LimitReader(r, int64(limit)+1), 4096)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, errTooLarge
		}
		switch {
		case err == nil:
			return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return line, nil
		default:
			return nil, err
		}
	}
}

// respond decodes one request line and answers it for client: a request
// that is not JSON, or a command client may not run, is answered with an
// error and never reaches the handler.
func (s *Server) respond(line []byte, client clientInfo) Response {
	req, err := decodeRequest(line)
	if err != nil {
		return Response{Error: err.Error()}
	}
	if !client.privileged && !ReadOnly(req.Command) && req.Command != "" {
		s.log.Warn("control request refused: it changes state and the client is not privileged",
			"command", req.Command, "uid", client.uid, "pid", client.pid)
		return Response{Error: fmt.Sprintf("permission denied: %s changes state, which needs root or iked's own user (uid %d); "+
			"members of the control socket's group may run %s", req.Command, s.ownUID, strings.Join(readOnlyCommands(), ", "))}
	}
	return s.dispatch(req)
}

// decodeRequest decodes one request line.
func decodeRequest(line []byte) (Request, error) {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Request{}, errors.New("malformed request: " + err.Error())
	}
	return req, nil
}

// dispatch runs a request and builds its response.
func (s *Server) dispatch(req Request) (resp Response) {
	defer func() {
		// A bug in one request must not take the daemon down.
		if p := recover(); p != nil {
			s.log.Error("control request panicked", "command", req.Command, "panic", p)
			resp = Response{Error: "internal error"}
		}
	}()
	timeout := requestTimeout
	switch req.Command {
	case CommandInitiate, CommandTerminate, CommandRekey:
		// Exchanges with the peer: bounded by the engine's retransmission
		// budget, which may be longer than requestTimeout.
		timeout = max(timeout, s.h.ExchangeTimeout())
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	s.log.Debug("control request", "command", req.Command, "connection", req.Connection, "target", req.Target)
	switch req.Command {
	case CommandSAs:
		resp.SAs = s.h.SAs()
	case CommandInitiate:
		if req.Connection == "" {
			return Response{Error: "initiate: missing connection name"}
		}
		sas, err := s.h.Initiate(ctx, req.Connection, req.New)
		if err != nil {
			return Response{Error: err.Error(), SAs: sas}
		}
		resp.SAs = sas
	case CommandTerminate:
		if req.Target == "" {
			return Response{Error: "terminate: missing connection name or SA ID"}
		}
		if req.Child != "" {
			return s.terminateChild(ctx, req)
		}
		n, err := s.h.Terminate(ctx, req.Target)
		if err != nil {
			return Response{Error: err.Error(), Terminated: n}
		}
		resp.Terminated = n
	case CommandStatus:
		st := s.h.Status()
		resp.Status = &st
	case CommandRekey:
		if req.Target == "" {
			return Response{Error: "rekey: missing IKE SA ID"}
		}
		if req.Children {
			return s.rekeyChildren(ctx, req)
		}
		var spi uint64
		if req.Child != "" {
			var err error
			if spi, err = strconv.ParseUint(req.Child, 16, 32); err != nil || spi == 0 {
				return Response{Error: fmt.Sprintf("rekey: %q is not a Child SA SPI (8 hex digits)", req.Child)}
			}
		}
		id, err := s.h.Rekey(ctx, req.Target, uint32(spi))
		if err != nil {
			return Response{Error: err.Error()}
		}
		resp.Rekeyed = id
	case CommandPolicy:
		info, err := s.h.Policy()
		if err != nil {
			return Response{Error: err.Error()}
		}
		resp.Policy = info
	case CommandPeers:
		var peer netip.Addr
		if req.Target != "" {
			a, err := netip.ParseAddr(req.Target)
			if err != nil {
				return Response{Error: fmt.Sprintf("peers: %q is not an IP address", req.Target)}
			}
			peer = a
		}
		var proto uint8
		if req.Protocol != "" {
			p, err := policy.ParseProtocol(req.Protocol)
			if err != nil {
				return Response{Error: "peers: " + err.Error()}
			}
			proto = p
		}
		if req.Port != 0 && proto != policy.TCP && proto != policy.UDP {
			return Response{Error: "peers: a port needs protocol tcp or udp"}
		}
		peers, err := s.h.Peers(peer, proto, req.Port)
		if err != nil {
			return Response{Error: err.Error()}
		}
		resp.Peers = peers
	case CommandPolicySource, CommandPolicyExport:
		ph, ok := s.h.(PolicySourceHandler)
		if !ok {
			return Response{Error: "this daemon has no policy source"}
		}
		var err error
		if req.Command == CommandPolicySource {
			resp.PolicySource, err = ph.PolicySource()
		} else {
			resp.Export, err = ph.PolicyExport(req.Target)
		}
		if err != nil {
			return Response{Error: err.Error()}
		}
	case CommandReload:
		return s.reload(ctx)
	case CommandListConns, CommandListCerts, CommandStats:
		return s.readSide(req)
	case "":
		return Response{Error: "missing command"}
	default:
		return Response{Error: fmt.Sprintf("unknown command %q", req.Command)}
	}
	return resp
}
