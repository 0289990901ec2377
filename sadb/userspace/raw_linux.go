//go:build linux

package userspace

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSocks are the raw IPv4 sockets of plain ESP and of AH.
type rawSocks struct {
	esp, ah *rawSock
}

type rawSock struct {
	file *os.File
	rc   syscall.RawConn
	fd   int
}

func openRaw() (*rawSocks, error) {
	r := &rawSocks{}
	var err error
	if r.esp, err = openRawSock(unix.IPPROTO_ESP, false); err != nil {
		return nil, err
	}
	if r.ah, err = openRawSock(unix.IPPROTO_AH, true); err != nil {
		_ = r.esp.file.Close()
		return nil, err
	}
	return r, nil
}

// openRawSock opens a raw IPv4 socket for proto; with hdrincl the packets
// sent carry their own IPv4 header (AH authenticates it).
func openRawSock(proto int, hdrincl bool) (*rawSock, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("userspace: raw socket for protocol %d: %w", proto, err)
	}
	if hdrincl {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
			_ = unix.Close(fd)
			return nil, fmt.Errorf("userspace: IP_HDRINCL: %w", err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	s := &rawSock{file: os.NewFile(uintptr(fd), fmt.Sprintf("raw:%d", proto)), fd: fd}
	if s.rc, err = s.file.SyscallConn(); err != nil {
		_ = s.file.Close()
		return nil, err
	}
	return s, nil
}

func (r *rawSocks) close() {
	_ = r.esp.file.Close()
	_ = r.ah.file.Close()
}

// rawRx reads one packet at a time from a raw socket.
type rawRx struct {
	buf []byte
	n   int
	err error
	fn  func(fd uintptr) bool
}

func newRawRx(size int) *rawRx {
	r := &rawRx{buf: make([]byte, size)}
	r.fn = r.recv
	return r
}

func (r *rawRx) recv(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.buf[0])), uintptr(len(r.buf)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			r.n, r.err = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.n, r.err = 0, e
		return true
	}
}
