package vici

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The VICI socket gets the same protection as iked's control socket: the
// file is created with mode 0600 (owner only) without a moment at the
// umask's mode, a stale socket is replaced only when nobody answers on
// it, and each connecting process's credentials are checked once more
// (authorize), so that a socket whose mode an administrator loosened by
// mistake still serves only the daemon's user and root.

// listenSocket binds the socket at path with mode 0600.
func listenSocket(path string) (*net.UnixListener, os.FileInfo, error) {
	if err := removeStale(path); err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".vici")
	if err != nil {
		return nil, nil, fmt.Errorf("vici socket %s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("vici socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		_ = ln.Close()
		return nil, nil, fmt.Errorf("vici socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return fail(errors.New("file created concurrently, is another iked starting?"))
	} else if err != nil {
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

// removeStale removes a socket file at path that nobody listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vici socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("vici socket %s: file exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("vici socket %s is in use: is charon or another iked running?", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("vici socket %s: cannot tell whether another daemon listens: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing stale vici socket: %w", err)
	}
	return nil
}

// authorize decides whether the process at the other end of conn may use
// the socket: root or the daemon's own user, as the control socket's mode
// allows. It is the one place to change when the control socket grows a
// group option.
func authorize(conn *net.UnixConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	if cred.Uid == 0 || int(cred.Uid) == os.Geteuid() {
		return nil
	}
	return fmt.Errorf("uid %d (pid %d) is neither root nor the daemon's user", cred.Uid, cred.Pid)
}
