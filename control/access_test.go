package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// uidFromAddr is a credentials seam for tests: a client that binds its
// socket to a path ending in "uid-N-…" is uid N. (The real SO_PEERCRED is
// tested in TestSOPeerCredIsTheKernels and, with real users, in
// e2e/TestControlSocketAsUnprivilegedUser.)
func uidFromAddr(conn *net.UnixConn) (peerCred, error) {
	a, ok := conn.RemoteAddr().(*net.UnixAddr)
	if !ok || a == nil {
		return peerCred{}, errors.New("unnamed client")
	}
	base := filepath.Base(a.Name)
	if !strings.HasPrefix(base, "uid-") {
		return peerCred{}, fmt.Errorf("client %q names no uid", base)
	}
	uid, err := strconv.ParseUint(strings.SplitN(strings.TrimPrefix(base, "uid-"), "-", 2)[0], 10, 32)
	if err != nil {
		return peerCred{}, err
	}
	return peerCred{pid: 1, uid: uint32(uid), gid: uint32(uid)}, nil
}

// serveWith is serveAt with the credentials seam replaced and setup
// applied before serving.
func serveWith(t *testing.T, h Handler, creds func(*net.UnixConn) (peerCred, error), setup ...func(*Server)) (*Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "iked.sock")
	s, err := Listen(path, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.creds = creds
	for _, f := range setup {
		f(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		s.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return s, path
}

var clientSeq struct {
	sync.Mutex
	n int
}

// dialAs connects to path from a client socket bound under dir with a
// name that uidFromAddr reads as uid.
func dialAs(t *testing.T, dir, path string, uid uint32) *net.UnixConn {
	t.Helper()
	clientSeq.Lock()
	clientSeq.n++
	n := clientSeq.n
	clientSeq.Unlock()
	laddr := &net.UnixAddr{Name: filepath.Join(dir, fmt.Sprintf("uid-%d-%d", uid, n)), Net: "unix"}
	c, err := net.DialUnix("unix", laddr, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// askAs sends one request line as uid and returns the response.
func askAs(t *testing.T, dir, path string, uid uint32, req Request) Response {
	t.Helper()
	c := dialAs(t, dir, path, uid)
	b, _ := json.Marshal(req)
	// A refused connection is answered before the request is read: the
	// write may fail, the answer is there all the same.
	_, _ = c.Write(append(b, '\n'))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		t.Fatalf("%s as uid %d: %v", req.Command, uid, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestUnprivilegedClientsOnlyRead: a client that is neither root nor the
// daemon's user may run the read-only commands; every other command,
// including one the server does not know, is refused before it reaches
// the handler. Root and the daemon's user may run everything.
func TestUnprivilegedClientsOnlyRead(t *testing.T) {
	h := &fakeHandler{sas: sampleSAs(), status: Status{Version: "v"}}
	_, path := serveWith(t, h, uidFromAddr, func(s *Server) { s.ownUID = 990 }) // as if iked ran as its own user
	dir := t.TempDir()
	const monitor = 4242

	for _, req := range []Request{{Command: CommandSAs}, {Command: CommandStatus}, {Command: CommandPeers, Target: "192.0.2.9"}} {
		if resp := askAs(t, dir, path, monitor, req); resp.Error != "" {
			t.Errorf("%s refused to the monitoring user: %s", req.Command, resp.Error)
		}
	}
	if resp := askAs(t, dir, path, monitor, Request{Command: CommandPolicy}); resp.Error != "no IPsec policy is assigned" {
		t.Errorf("policy: %q (want the handler's answer)", resp.Error)
	}
	for _, req := range []Request{
		{Command: CommandInitiate, Connection: "site-a"},
		{Command: CommandTerminate, Target: "site-a"},
		{Command: CommandRekey, Target: "ike-1"},
		{Command: "reload"}, // a command added later is privileged unless listed as read-only
	} {
		resp := askAs(t, dir, path, monitor, req)
		if !strings.HasPrefix(resp.Error, "permission denied: "+req.Command+" changes state, which needs root or iked's own user (uid 990)") ||
			!strings.Contains(resp.Error, "may run list-certs, list-conns, log, monitor, peers, policy, sas, stats, status") {
			t.Errorf("%s as uid %d: %q", req.Command, monitor, resp.Error)
		}
	}
	h.mu.Lock()
	if len(h.initiated)+len(h.terminated) != 0 {
		t.Errorf("refused requests reached the handler: %v %v", h.initiated, h.terminated)
	}
	h.mu.Unlock()
	for _, uid := range []uint32{0, 990} {
		if resp := askAs(t, dir, path, uid, Request{Command: CommandTerminate, Target: "site-a"}); resp.Error != "" || resp.Terminated != 2 {
			t.Errorf("terminate as uid %d: %+v", uid, resp)
		}
		if resp := askAs(t, dir, path, uid, Request{Command: CommandRekey, Target: "ike-1"}); resp.Error != "" || resp.Rekeyed != "ike-2" {
			t.Errorf("rekey as uid %d: %+v", uid, resp)
		}
	}
}

// TestUnreadableCredentialsAreUnprivileged: a client whose credentials
// cannot be read may only read.
func TestUnreadableCredentialsAreUnprivileged(t *testing.T) {
	h := &fakeHandler{sas: sampleSAs()}
	_, path := serveWith(t, h, func(*net.UnixConn) (peerCred, error) { return peerCred{}, errors.New("no credentials") })
	if resp, err := do(t, path, Request{Command: CommandSAs}); err != nil || len(resp.SAs) != 2 {
		t.Fatalf("sas: %v", err)
	}
	if _, err := do(t, path, Request{Command: CommandTerminate, Target: "site-a"}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("terminate: %v", err)
	}
}

// TestSOPeerCredIsTheKernels: the server reads the connecting process's
// pid and uid from the kernel.
func TestSOPeerCredIsTheKernels(t *testing.T) {
	got := make(chan peerCred, 1)
	_, path := serveWith(t, &fakeHandler{}, func(c *net.UnixConn) (peerCred, error) {
		cred, err := soPeerCred(c)
		got <- cred
		return cred, err
	})
	if _, err := do(t, path, Request{Command: CommandSAs}); err != nil {
		t.Fatal(err)
	}
	c := <-got
	if int(c.pid) != os.Getpid() || int(c.uid) != os.Geteuid() || int(c.gid) != os.Getegid() {
		t.Fatalf("SO_PEERCRED %+v, want pid %d uid %d gid %d", c, os.Getpid(), os.Geteuid(), os.Getegid())
	}
}

// TestGarbageClientDisconnectedOthersServed: clients that send garbage
// (not JSON, binary, a line too long) are answered with an error and
// disconnected, while a client that was connected all along, clients
// meanwhile and clients that come later are served.
func TestGarbageClientDisconnectedOthersServed(t *testing.T) {
	h := &fakeHandler{sas: sampleSAs()}
	// The early client's hang guard is a minute, not the default.
	_, path := serveWith(t, h, soPeerCred, func(s *Server) { s.readTimeout = time.Minute })

	// A client that connects first and sends its request last.
	early, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	early.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := early.Write([]byte(`{"command":`)); err != nil {
		t.Fatal(err)
	}

	garbage := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{0x00, 0xff, 0xfe, 0x80, '\n'},
		[]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), // a TLS ClientHello's start, then EOF
		[]byte(`{"command":"sas"}{"command":"terminate","target":"site-a"}` + "\n"),
		[]byte(`["sas"]` + "\n"),
		[]byte(strings.Repeat("\xff", MaxRequestSize+10)),
	}
	var wg sync.WaitGroup
	for i, g := range garbage {
		wg.Go(func() {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			_, _ = c.Write(g)
			_ = c.(*net.UnixConn).CloseWrite()
			answer, err := io.ReadAll(c) // until the server hangs up
			if err != nil {
				t.Errorf("garbage %d: %v", i, err)
				return
			}
			var resp Response
			if err := json.Unmarshal(answer, &resp); err != nil || resp.Error == "" || strings.Count(string(answer), "\n") != 1 {
				t.Errorf("garbage %d: answer %q, want one error line then the end", i, answer)
			}
		})
	}
	for range 5 {
		wg.Go(func() {
			if resp, err := do(t, path, Request{Command: CommandSAs}); err != nil || len(resp.SAs) != 2 {
				t.Errorf("a well-behaved client meanwhile: %v", err)
			}
		})
	}
	wg.Wait()
	h.mu.Lock()
	if len(h.terminated) != 0 {
		t.Errorf("garbage reached the handler: %v", h.terminated)
	}
	h.mu.Unlock()
	// The early client finishes its request and is served.
	if _, err := early.Write([]byte(`"sas"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(early).ReadBytes('\n')
	var resp Response
	if err != nil || json.Unmarshal(line, &resp) != nil || len(resp.SAs) != 2 {
		t.Fatalf("the early client: %q, %v", line, err)
	}
	if resp, err := do(t, path, Request{Command: CommandSAs}); err != nil || len(resp.SAs) != 2 {
		t.Fatalf("after the garbage: %v", err)
	}
}

// TestSilentClientCutOff: a client that connects and says nothing is
// disconnected at the read timeout, and holds no slot afterwards.
func TestSilentClientCutOff(t *testing.T) {
	s, path := serveWith(t, &fakeHandler{sas: sampleSAs()}, uidFromAddr, func(s *Server) { s.readTimeout = 100 * time.Millisecond })
	c := dialAs(t, t.TempDir(), path, 4242)
	c.SetDeadline(time.Now().Add(30 * time.Second)) // hang guard
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("silent client: read %d, %v; want the server to hang up", n, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.usersMu.Lock()
		n := len(s.users)
		s.usersMu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the silent client's slot is still counted: %d users", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConnectionsPerUserBounded: one unprivileged user holds at most
// maxConnsPerUser connections; the next is refused with a reason, root is
// still served, and a freed slot can be used again.
func TestConnectionsPerUserBounded(t *testing.T) {
	// The held connections send nothing: they must outlive the wait below
	// on a loaded machine, so the server's read timeout is no factor.
	h := &fakeHandler{sas: sampleSAs()}
	srv, path := serveWith(t, h, uidFromAddr, func(s *Server) { s.readTimeout = 5 * time.Minute })
	dir := t.TempDir()
	var held []*net.UnixConn
	for range maxConnsPerUser {
		held = append(held, dialAs(t, dir, path, 4242))
	}
	// Wait until the server has counted them all. Asking sooner would
	// race them: the server handles connections in parallel, so the
	// question could take the last slot and a held connection be the one
	// refused.
	deadline := time.Now().Add(time.Minute) // a hang guard
	for {
		srv.usersMu.Lock()
		n := srv.users[4242]
		srv.usersMu.Unlock()
		if n == maxConnsPerUser {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server counts %d of the user's %d connections", n, maxConnsPerUser)
		}
		time.Sleep(time.Millisecond)
	}
	resp := askAs(t, dir, path, 4242, Request{Command: CommandSAs})
	if want := fmt.Sprintf("too many control connections from uid 4242 (limit %d)", maxConnsPerUser); resp.Error != want {
		t.Fatalf("connection %d: %q, want %q", maxConnsPerUser+1, resp.Error, want)
	}
	if resp := askAs(t, dir, path, 0, Request{Command: CommandSAs}); resp.Error != "" {
		t.Fatalf("root refused while uid 4242 holds its limit: %s", resp.Error)
	}
	if resp := askAs(t, dir, path, 4243, Request{Command: CommandSAs}); resp.Error != "" {
		t.Fatalf("another user refused: %s", resp.Error)
	}
	held[0].Close()
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp = askAs(t, dir, path, 4242, Request{Command: CommandSAs})
		if resp.Error == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if resp.Error != "" {
		t.Fatalf("slot not freed: %s", resp.Error)
	}
}

// TestSocketGroupAndMode: with a group, the socket file is that group's
// and mode 0660 from the moment it appears at its path; modes that open
// it to others are refused.
func TestSocketGroupAndMode(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to give the socket to another group")
		}
		t.Skip("needs root to give the socket to another group")
	}
	const gid = 4243
	path := filepath.Join(t.TempDir(), "iked.sock")
	s, err := ListenWith(path, &fakeHandler{}, nil, Options{Mode: 0o660, SetGID: true, GID: gid})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || st.Gid != gid || int(st.Uid) != os.Geteuid() {
		t.Fatalf("socket mode %04o uid %d gid %d; want 0660, %d, %d", fi.Mode().Perm(), st.Uid, st.Gid, os.Geteuid(), gid)
	}
	for _, m := range []fs.FileMode{0o666, 0o604, 0o060, 0o400} {
		if _, err := ListenWith(filepath.Join(t.TempDir(), "x.sock"), &fakeHandler{}, nil, Options{Mode: m}); err == nil {
			t.Errorf("mode %04o accepted", m)
		}
	}
}
