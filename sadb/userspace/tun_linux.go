//go:build linux

package userspace

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tun is a layer-3 TUN device without packet information headers, its fd
// non-blocking and driven by the Go poller.
type tun struct {
	file  *os.File
	rc    syscall.RawConn
	name  string
	index int
	// vnet is set when every packet read or written is preceded by a
	// vnet header (IFF_VNET_HDR); tso when the kernel also hands over TCP
	// super-segments to cut (TUNSETOFFLOAD).
	vnet, tso bool
}

// openTUN creates the device; with offload, it asks for vnet headers and
// TCP segmentation offload, and does without them if the kernel refuses.
func openTUN(name string, offload bool) (*tun, error) {
	if offload {
		t, err := openTUNFlags(name, unix.IFF_TUN|unix.IFF_NO_PI|unix.IFF_VNET_HDR)
		if err == nil {
			return t, nil
		}
	}
	return openTUNFlags(name, unix.IFF_TUN|unix.IFF_NO_PI)
}

func openTUNFlags(name string, flags uint16) (*tun, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("tun %q: %w", name, err)
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("tun %q: TUNSETIFF: %w", name, err)
	}
	t := &tun{name: ifr.Name(), vnet: flags&unix.IFF_VNET_HDR != 0}
	if t.vnet {
		t.tso = enableOffload(fd)
	}
	// The index, asked of the device itself (SIOCGIFINDEX on any socket of
	// this namespace).
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		_ = unix.Close(fd)
		return nil, err
	}
	defer unix.Close(s)
	ir, _ := unix.NewIfreq(t.name)
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ir); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("tun %s: index: %w", t.name, err)
	}
	t.index = int(ir.Uint32())
	t.file = os.NewFile(uintptr(fd), "/dev/net/tun:"+t.name)
	if t.rc, err = t.file.SyscallConn(); err != nil {
		_ = t.file.Close()
		return nil, err
	}
	return t, nil
}

func (t *tun) close() error { return t.file.Close() }

// rawRead and rawWrite are read(2) and write(2) without the allocation-free
// but escape-prone unix wrappers' checks.
func rawRead(fd uintptr, b []byte) (int, unix.Errno) {
	n, _, e := unix.Syscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return int(n), e
}

func rawWrite(fd uintptr, b []byte) (int, unix.Errno) {
	n, _, e := unix.Syscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	return int(n), e
}
