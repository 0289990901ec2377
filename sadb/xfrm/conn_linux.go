//go:build linux

package xfrm

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// conn is a NETLINK_XFRM socket on the runtime's poller, so that a read
// can time out and Close can interrupt it.
type conn struct {
	f   *os.File
	rc  syscall.RawConn
	pid uint32 // the port ID the kernel gave the socket
}

// dial opens a NETLINK_XFRM socket in the network namespace at path (the
// current one when empty), member of the multicast groups (a bit mask,
// 1<<(XFRMNLGRP-1)).
func dial(namespace string, groups uint32) (*conn, error) {
	if runtime.GOARCH == "386" {
		// i386 aligns __u64 to 4 octets: its xfrm structures differ from
		// the layouts here (and a 64-bit kernel translates them only with
		// CONFIG_XFRM_USER_COMPAT).
		return nil, fmt.Errorf("xfrm: the XFRM structures of 386 are not supported: %w", ErrNoESP)
	}
	var fd int
	err := inNamespace(namespace, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_XFRM)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("xfrm: netlink socket: %w", err)
	}
	fail := func(what string, err error) (*conn, error) {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("xfrm: netlink %s: %w", what, err)
	}
	// Ask for the kernel's error strings and for errors without a copy of
	// the request (which would echo key material); old kernels ignore both.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	if groups != 0 {
		// Events come in bursts (an acquire per flow); lose as few as we can.
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 1<<20)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		return fail("bind", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	nl, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return fail("getsockname", errors.New("not a netlink address"))
	}
	f := os.NewFile(uintptr(fd), "netlink-xfrm")
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &conn{f: f, rc: rc, pid: nl.Pid}, nil
}

// inNamespace runs fn on an OS thread switched into the network namespace
// at path. The thread returns to its namespace afterwards, or, if that
// fails, dies with its goroutine rather than serve others.
func inNamespace(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path) // #nosec G304 -- the network namespace path the caller (tests, the VM harness) gives
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", path, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

func (c *conn) send(b []byte) error {
	var err error
	werr := c.rc.Write(func(fd uintptr) bool {
		err = unix.Sendto(int(fd), b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return err != unix.EAGAIN
	})
	if werr != nil {
		return werr
	}
	return err
}

// receive reads one datagram from the kernel, whatever its size.
func (c *conn) receive() ([]byte, error) {
	for {
		var (
			data []byte
			from unix.Sockaddr
			err  error
		)
		rerr := c.rc.Read(func(fd uintptr) bool {
			var peek [1]byte
			var n int
			n, _, err = unix.Recvfrom(int(fd), peek[:], unix.MSG_PEEK|unix.MSG_TRUNC)
			if err == unix.EAGAIN {
				return false
			}
			if err != nil {
				return true
			}
			data = make([]byte, n)
			n, from, err = unix.Recvfrom(int(fd), data, 0)
			data = data[:max(n, 0)]
			return err != unix.EAGAIN
		})
		if rerr != nil {
			return nil, rerr
		}
		if err != nil {
			return nil, err
		}
		if nl, ok := from.(*unix.SockaddrNetlink); ok && nl.Pid != 0 {
			continue // only the kernel speaks to us
		}
		return data, nil
	}
}

func (c *conn) setReadDeadline(t time.Time) error { return c.f.SetReadDeadline(t) }

func (c *conn) close() error { return c.f.Close() }
