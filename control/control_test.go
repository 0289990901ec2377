package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/policy/agent"
)

// fakeHandler records calls and answers from its fields.
type fakeHandler struct {
	mu         sync.Mutex
	sas        []ike.SAInfo
	status     Status
	initiated  []string
	terminated []string
	// block makes Initiate wait for its context.
	block   bool
	started chan struct{}
	panics  bool
	policy  *agent.PolicyInfo
	calls   []string
}

func (f *fakeHandler) SAs() []ike.SAInfo {
	if f.panics {
		panic("boom")
	}
	return f.sas
}

func (f *fakeHandler) ExchangeTimeout() time.Duration { return time.Second }

func (f *fakeHandler) Initiate(ctx context.Context, conn string, _ bool) ([]ike.SAInfo, error) {
	f.mu.Lock()
	f.initiated = append(f.initiated, conn)
	f.mu.Unlock()
	if f.block {
		close(f.started)
		<-ctx.Done()
		return nil, fmt.Errorf("initiate %s: %w", conn, ctx.Err())
	}
	if conn != "site-a" {
		return nil, fmt.Errorf("no connection named %q", conn)
	}
	return f.sas[:1], nil
}

func (f *fakeHandler) Terminate(_ context.Context, target string) (int, error) {
	f.mu.Lock()
	f.terminated = append(f.terminated, target)
	f.mu.Unlock()
	if target == "bad" {
		return 0, errors.New("no IKE SA matches \"bad\"")
	}
	return 2, nil
}

func (f *fakeHandler) Status() Status { return f.status }

func (f *fakeHandler) Policy() (*agent.PolicyInfo, error) {
	if f.policy == nil {
		return nil, errors.New("no IPsec policy is assigned")
	}
	return f.policy, nil
}

func (f *fakeHandler) Peers(peer netip.Addr, proto uint8, port uint16) ([]agent.PeerStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf("peers %v %d %d", peer, proto, port))
	return []agent.PeerStatus{{Peer: peer.String(), Verdict: agent.VerdictSecured}}, nil
}

func (f *fakeHandler) Rekey(_ context.Context, target string, spi uint32) (string, error) {
	if target != "ike-1" {
		return "", errors.New("no IKE SA " + target)
	}
	if spi != 0 {
		return target, nil
	}
	return "ike-2", nil
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func sampleSAs() []ike.SAInfo {
	return []ike.SAInfo{{
		ID: "ike-1", Connection: "site-a", SPIi: "0123456789abcdef", SPIr: "fedcba9876543210",
		State: "established", Role: "initiator",
		LocalAddr: "192.0.2.1:500", RemoteAddr: "198.51.100.2:4500",
		LocalID: "fqdn:a.example", RemoteID: "fqdn:b.example", Auth: "psk",
		Algorithms: "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519",
		NATRemote:  true, Established: t0,
		Children: []ike.ChildInfo{{
			SPIIn: "c1a2b3c4", SPIOut: "0d0e0f10", Protocol: "esp", Mode: "tunnel",
			LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"},
			Algorithms: "AES_GCM_16-256/NO_EXT_SEQ",
			BytesIn:    1, BytesOut: 2, PacketsIn: 3, PacketsOut: 4, Installed: t0,
		}},
	}, {
		ID: "ike-2", Connection: "site-b", State: "connecting", Role: "responder",
		Children: []ike.ChildInfo{},
	}}
}

// serve starts a server on a fresh socket and stops it at the end of the test.
func serve(t *testing.T, h Handler) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "iked.sock")
	return serveAt(t, path, h), path
}

func serveAt(t *testing.T, path string, h Handler) *Server {
	t.Helper()
	s, err := Listen(path, h, nil)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return s
}

func do(t *testing.T, path string, req Request) (*Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Do(ctx, path, req)
}

func TestCommands(t *testing.T) {
	h := &fakeHandler{
		sas: sampleSAs(),
		status: Status{
			Version: "0.1", PID: 42, Started: t0, ConfigFile: "/etc/iked.conf",
			Listen: []string{"0.0.0.0:500"}, Backend: "xfrm", IKESAs: 2, ChildSAs: 1, HalfOpen: 1,
			Connections: []ConnectionStatus{{Name: "site-a", Mode: "tunnel", IKESAs: 1}},
		},
	}
	_, path := serve(t, h)

	resp, err := do(t, path, Request{Command: CommandSAs})
	if err != nil {
		t.Fatalf("sas: %v", err)
	}
	if !reflect.DeepEqual(resp.SAs, h.sas) {
		t.Errorf("sas: got %+v, want %+v", resp.SAs, h.sas)
	}

	resp, err = do(t, path, Request{Command: CommandInitiate, Connection: "site-a"})
	if err != nil {
		t.Fatalf("initiate: %v", err)
	}
	if len(resp.SAs) != 1 || resp.SAs[0].ID != "ike-1" {
		t.Errorf("initiate: got %+v", resp.SAs)
	}
	resp, err = do(t, path, Request{Command: CommandInitiate, Connection: "nope"})
	if err == nil || err.Error() != `no connection named "nope"` || resp == nil || resp.Error != err.Error() {
		t.Errorf("initiate unknown: got %+v, %v", resp, err)
	}

	resp, err = do(t, path, Request{Command: CommandTerminate, Target: "ike-1"})
	if err != nil || resp.Terminated != 2 {
		t.Errorf("terminate: got %+v, %v", resp, err)
	}
	if _, err = do(t, path, Request{Command: CommandTerminate, Target: "bad"}); err == nil || !strings.Contains(err.Error(), "no IKE SA matches") {
		t.Errorf("terminate bad: got %v", err)
	}

	resp, err = do(t, path, Request{Command: CommandStatus})
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if resp.Status == nil || !reflect.DeepEqual(*resp.Status, h.status) {
		t.Errorf("status: got %+v, want %+v", resp.Status, h.status)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if want := []string{"site-a", "nope"}; !reflect.DeepEqual(h.initiated, want) {
		t.Errorf("initiated %q, want %q", h.initiated, want)
	}
	if want := []string{"ike-1", "bad"}; !reflect.DeepEqual(h.terminated, want) {
		t.Errorf("terminated %q, want %q", h.terminated, want)
	}
}

func TestBadRequests(t *testing.T) {
	h := &fakeHandler{sas: sampleSAs()}
	_, path := serve(t, h)
	for _, tc := range []struct {
		req  Request
		want string
	}{
		{Request{Command: "reboot"}, `unknown command "reboot"`},
		{Request{}, "missing command"},
		{Request{Command: CommandInitiate}, "initiate: missing connection name"},
		{Request{Command: CommandTerminate}, "terminate: missing connection name or SA ID"},
	} {
		resp, err := do(t, path, tc.req)
		if err == nil || err.Error() != tc.want || resp == nil || resp.Error != tc.want {
			t.Errorf("%+v: got %+v, %v; want error %q", tc.req, resp, err, tc.want)
		}
	}
	if len(h.initiated)+len(h.terminated) != 0 {
		t.Errorf("handler called for invalid requests: %q %q", h.initiated, h.terminated)
	}
}

// rawExchange writes raw bytes to the socket and returns the response line.
func rawExchange(t *testing.T, path string, req []byte) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatalf("write: %v", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return line
}

func TestRawProtocol(t *testing.T) {
	_, path := serve(t, &fakeHandler{sas: sampleSAs()})

	got := rawExchange(t, path, []byte("{\"command\":\"terminate\",\"target\":\"site-a\"}\r\n"))
	if got != "{\"terminated\":2}\n" {
		t.Errorf("terminate: got %q", got)
	}
	got = rawExchange(t, path, []byte("{not json\n"))
	var resp Response
	if err := json.Unmarshal([]byte(got), &resp); err != nil || !strings.HasPrefix(resp.Error, "malformed request") {
		t.Errorf("malformed: got %q", got)
	}
	// An empty "sas" list is an absent field, never null.
	_, path2 := serve(t, &fakeHandler{})
	if got := rawExchange(t, path2, []byte(`{"command":"sas"}`+"\n")); got != "{}\n" {
		t.Errorf("empty sas: got %q", got)
	}
}

func TestRequestTooLarge(t *testing.T) {
	h := &fakeHandler{sas: sampleSAs()}
	_, path := serve(t, h)
	want := fmt.Sprintf("request too large (limit %d bytes)", MaxRequestSize)

	// Through the client: a connection name that makes the line too long.
	resp, err := do(t, path, Request{Command: CommandInitiate, Connection: strings.Repeat("x", MaxRequestSize)})
	if err == nil || err.Error() != want || resp == nil {
		t.Errorf("client: got %+v, %v; want %q", resp, err, want)
	}
	// Raw, without a newline, much larger than the limit.
	got := rawExchange(t, path, []byte(`{"command":"sas","connection":"`+strings.Repeat("y", 1<<20)))
	if got != `{"error":"`+want+"\"}\n" {
		t.Errorf("raw: got %.200q", got)
	}
	if len(h.initiated) != 0 {
		t.Errorf("oversized request reached the handler")
	}
	// Exactly at the limit (newline included) is accepted.
	pad := MaxRequestSize - len(`{"command":"sas","target":""}`+"\n")
	line := `{"command":"sas","target":"` + strings.Repeat("z", pad) + "\"}\n"
	if len(line) != MaxRequestSize {
		t.Fatalf("test bug: line is %d bytes", len(line))
	}
	if got := rawExchange(t, path, []byte(line)); !strings.HasPrefix(got, `{"sas":[`) {
		t.Errorf("request at limit: got %.200q", got)
	}
}

func TestSocketModeAndRemoval(t *testing.T) {
	s, path := serve(t, &fakeHandler{})
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want socket with 0600", fi.Mode())
	}
	if s.Path() != path {
		t.Errorf("Path() = %q", s.Path())
	}
	// No temporary directory is left next to the socket.
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want just the socket", len(ents))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// staleSocket leaves a socket file at path that nobody listens on.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "iked.sock")
	staleSocket(t, path)
	serveAt(t, path, &fakeHandler{sas: sampleSAs()})
	resp, err := do(t, path, Request{Command: CommandSAs})
	if err != nil || len(resp.SAs) != 2 {
		t.Fatalf("after replacing stale socket: %+v, %v", resp, err)
	}
}

func TestLiveSocketRefused(t *testing.T) {
	_, path := serve(t, &fakeHandler{sas: sampleSAs()})
	s2, err := Listen(path, &fakeHandler{}, nil)
	if err == nil {
		s2.Close()
		t.Fatal("second Listen on a live socket succeeded")
	}
	if !strings.Contains(err.Error(), "another iked is running") {
		t.Errorf("error %q does not say another iked is running", err)
	}
	// The first daemon is unharmed.
	resp, err := do(t, path, Request{Command: CommandSAs})
	if err != nil || len(resp.SAs) != 2 {
		t.Errorf("first daemon after refused Listen: %+v, %v", resp, err)
	}
}

func TestNotASocketRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "iked.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Listen(path, &fakeHandler{}, nil); err == nil {
		s.Close()
		t.Fatal("Listen replaced a regular file")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
		t.Errorf("regular file damaged: %q, %v", b, err)
	}
}

func TestClientNoDaemon(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	_, err := do(t, missing, Request{Command: CommandSAs})
	if err == nil || err.Error() != "iked is not running (no control socket at "+missing+")" {
		t.Errorf("missing socket: got %v", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)
	_, err = do(t, stale, Request{Command: CommandSAs})
	if err == nil || err.Error() != "iked is not running (nothing listens on control socket "+stale+")" {
		t.Errorf("stale socket: got %v", err)
	}
}

func TestCloseCancelsInitiate(t *testing.T) {
	h := &fakeHandler{block: true, started: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "iked.sock")
	s, err := Listen(path, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	type result struct {
		resp *Response
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := Do(context.Background(), path, Request{Command: CommandInitiate, Connection: "slow"})
		res <- result{resp, err}
	}()
	select {
	case <-h.started:
	case <-time.After(5 * time.Second):
		t.Fatal("Initiate not called")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case r := <-res:
		if r.err == nil || !strings.Contains(r.err.Error(), "context canceled") {
			t.Errorf("initiate during Close: %+v, %v", r.resp, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Initiate not cancelled by Close")
	}
	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestClientContext(t *testing.T) {
	h := &fakeHandler{block: true, started: make(chan struct{})}
	_, path := serve(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Do(ctx, path, Request{Command: CommandInitiate, Connection: "slow"})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Do returned after %v", d)
	}
}

func TestHandlerPanic(t *testing.T) {
	h := &fakeHandler{panics: true}
	_, path := serve(t, h)
	if _, err := do(t, path, Request{Command: CommandSAs}); err == nil || err.Error() != "internal error" {
		t.Errorf("got %v, want internal error", err)
	}
	// The server survives.
	if resp, err := do(t, path, Request{Command: CommandTerminate, Target: "x"}); err != nil || resp.Terminated != 2 {
		t.Errorf("after panic: %+v, %v", resp, err)
	}
}

func TestConcurrentRequests(t *testing.T) {
	_, path := serve(t, &fakeHandler{sas: sampleSAs()})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			resp, err := do(t, path, Request{Command: CommandSAs})
			if err == nil && len(resp.SAs) != 2 {
				err = fmt.Errorf("got %d SAs", len(resp.SAs))
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		in    string
		limit int
		want  string
		err   error
	}{
		{"abc\n", 4, "abc", nil},
		{"abc\r\nrest", 10, "abc", nil},
		{"abcd\n", 4, "", errTooLarge},
		{"abc", 10, "abc", nil},
		{"", 10, "", nil},
	} {
		got, err := readLine(strings.NewReader(tc.in), tc.limit)
		if tc.in == "" {
			if err == nil {
				t.Errorf("empty input: no error")
			}
			continue
		}
		if string(got) != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("readLine(%q, %d) = %q, %v; want %q, %v", tc.in, tc.limit, got, err, tc.want, tc.err)
		}
	}
}

func TestPolicyAndPeersRequestsReachTheHandlerAndBadArgumentsAreRefused(t *testing.T) {
	h := &fakeHandler{}
	_, path := serve(t, h)
	ctx := context.Background()
	if _, err := Do(ctx, path, Request{Command: CommandPolicy}); err == nil || !strings.Contains(err.Error(), "no IPsec policy is assigned") {
		t.Fatalf("policy without one: %v", err)
	}
	h.policy = &agent.PolicyInfo{Name: "server-request-security"}
	resp, err := Do(ctx, path, Request{Command: CommandPolicy})
	if err != nil || resp.Policy == nil || resp.Policy.Name != "server-request-security" {
		t.Fatalf("policy: %+v %v", resp, err)
	}
	resp, err = Do(ctx, path, Request{Command: CommandPeers, Target: "10.0.0.2", Protocol: "tcp", Port: 23})
	if err != nil || len(resp.Peers) != 1 || resp.Peers[0].Verdict != agent.VerdictSecured {
		t.Fatalf("peers: %+v %v", resp, err)
	}
	for req, want := range map[Request]string{
		{Command: CommandPeers, Target: "host.example"}:                        "is not an IP address",
		{Command: CommandPeers, Target: "10.0.0.2", Protocol: "tcpx"}:          "unknown protocol",
		{Command: CommandPeers, Target: "10.0.0.2", Port: 80}:                  "a port needs protocol tcp or udp",
		{Command: CommandPeers, Target: "10.0.0.2", Protocol: "icmp", Port: 1}: "a port needs protocol tcp or udp",
	} {
		if _, err := Do(ctx, path, req); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: %v, want %q", req, err, want)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.calls) != 1 || h.calls[0] != "peers 10.0.0.2 6 23" {
		t.Errorf("handler calls %q", h.calls)
	}
}
