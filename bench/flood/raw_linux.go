package flood

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// rawSocket is an IPPROTO_RAW socket: the packets sent carry their own
// IPv4 header (IP_HDRINCL is implied), spoofed source included.
type rawSocket struct{ fd int }

func openRaw() (*rawSocket, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return nil, err
	}
	return &rawSocket{fd: fd}, nil
}

func (s *rawSocket) send(pkt []byte, dst netip.Addr) error {
	return unix.Sendto(s.fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()})
}

func (s *rawSocket) close() { _ = unix.Close(s.fd) }
