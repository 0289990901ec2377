//go:build linux

package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// rtnl is a route netlink socket, opened in the network namespace of the
// Backend so that later route changes land there whatever thread makes them.
type rtnl struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
}

func openRTNL() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("netlink: %w", err)
	}
	return &rtnl{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (r *rtnl) close() error { return unix.Close(r.fd) }

// request sends one message and waits for its acknowledgement.
func (r *rtnl) request(typ uint16, flags uint16, body []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	ne := binary.NativeEndian
	ne.PutUint32(msg[0:4], uint32(unix.SizeofNlMsghdr+len(body)))
	ne.PutUint16(msg[4:6], typ)
	ne.PutUint16(msg[6:8], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(msg[8:12], r.seq)
	msg = append(msg, body...)
	if err := unix.Sendto(r.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	for {
		n, _, err := unix.Recvfrom(r.fd, r.buf, 0)
		if err != nil {
			return err
		}
		for b := r.buf[:n]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(ne.Uint32(b[0:4]))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return errors.New("netlink: truncated reply")
			}
			if ne.Uint32(b[8:12]) == r.seq && ne.Uint16(b[4:6]) == unix.NLMSG_ERROR && l >= unix.SizeofNlMsghdr+4 {
				if code := int32(ne.Uint32(b[16:20])); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
			b = b[(l+3)&^3:]
		}
	}
}

func appendAttr(b []byte, typ uint16, v []byte) []byte {
	l := unix.SizeofRtAttr + len(v)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func family(a netip.Addr) byte {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// route adds (or replaces) or deletes the route of p through ifindex.
func (r *rtnl) route(add bool, p netip.Prefix, ifindex int) error {
	body := []byte{family(p.Addr()), byte(p.Bits()), 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_STATIC, unix.RT_SCOPE_LINK, unix.RTN_UNICAST, 0, 0, 0, 0}
	body = appendAttr(body, unix.RTA_DST, p.Addr().AsSlice())
	body = appendAttr(body, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(ifindex)))
	if add {
		return r.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, body)
	}
	return r.request(unix.RTM_DELROUTE, 0, body)
}

// addr adds or deletes an address on ifindex.
func (r *rtnl) addr(add bool, p netip.Prefix, ifindex int) error {
	body := []byte{family(p.Addr()), byte(p.Bits()), 0, unix.RT_SCOPE_UNIVERSE}
	body = binary.NativeEndian.AppendUint32(body, uint32(ifindex))
	body = appendAttr(body, unix.IFA_LOCAL, p.Addr().AsSlice())
	body = appendAttr(body, unix.IFA_ADDRESS, p.Addr().AsSlice())
	if add {
		return r.request(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, body)
	}
	return r.request(unix.RTM_DELADDR, 0, body)
}

// tunTxQueueLen is the TUN device's transmit queue: the kernel queues the
// inner packets there while the outbound path seals a batch, and the
// default of 500 overflowed under a single TCP stream (the drops were TCP
// retransmissions).
const tunTxQueueLen = 5000

// in6AddrGenModeNone is IN6_ADDR_GEN_MODE_NONE of <linux/if_link.h>: no
// IPv6 link-local address is generated (x/sys/unix lacks the constant).
const in6AddrGenModeNone = 1

// prepareLink sets what must be in place before the device is up: a longer
// transmit queue, and no IPv6 link-local address, whose router
// solicitations and MLD reports would otherwise go into the tunnel and be
// counted as packets without a route.
func (r *rtnl) prepareLink(ifindex int) error {
	body := make([]byte, unix.SizeofIfInfomsg)
	body[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(body[4:8], uint32(ifindex))
	body = appendAttr(body, unix.IFLA_TXQLEN, binary.NativeEndian.AppendUint32(nil, tunTxQueueLen))
	inet6 := appendAttr(nil, unix.IFLA_INET6_ADDR_GEN_MODE, []byte{in6AddrGenModeNone})
	af := appendAttr(nil, unix.AF_INET6, inet6)
	body = appendAttr(body, unix.IFLA_AF_SPEC|unix.NLA_F_NESTED, af)
	return r.request(unix.RTM_NEWLINK, 0, body)
}

// linkUp sets the MTU of ifindex and brings it up.
func (r *rtnl) linkUp(ifindex, mtu int) error {
	body := make([]byte, unix.SizeofIfInfomsg)
	body[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(body[4:8], uint32(ifindex))
	binary.NativeEndian.PutUint32(body[8:12], unix.IFF_UP)
	binary.NativeEndian.PutUint32(body[12:16], unix.IFF_UP)
	body = appendAttr(body, unix.IFLA_MTU, binary.NativeEndian.AppendUint32(nil, uint32(mtu)))
	return r.request(unix.RTM_NEWLINK, 0, body)
}

// steerRulePriority is the priority of the fwmark rule: before the main
// table (32766), after the local one (0), so that local traffic stays local.
const steerRulePriority = 1000

// steerRule adds or deletes the rule "fwmark mark lookup table" of one
// address family, which sends the packets a policy layer marked into the
// table holding the TUN device's default route.
func (r *rtnl) steerRule(add bool, fam byte, mark, table uint32) error {
	body := []byte{fam, 0, 0, 0, unix.RT_TABLE_UNSPEC, 0, 0, unix.FR_ACT_TO_TBL, 0, 0, 0, 0}
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	body = appendAttr(body, unix.FRA_FWMARK, u32(mark))
	body = appendAttr(body, unix.FRA_FWMASK, u32(mark))
	body = appendAttr(body, unix.FRA_TABLE, u32(table))
	body = appendAttr(body, unix.FRA_PRIORITY, u32(steerRulePriority))
	if add {
		return r.request(unix.RTM_NEWRULE, unix.NLM_F_CREATE|unix.NLM_F_EXCL, body)
	}
	return r.request(unix.RTM_DELRULE, 0, body)
}

// defaultRoute adds or deletes the default route of one address family
// through ifindex in table.
func (r *rtnl) defaultRoute(add bool, fam byte, table uint32, ifindex int) error {
	body := []byte{fam, 0, 0, 0, unix.RT_TABLE_UNSPEC, unix.RTPROT_STATIC, unix.RT_SCOPE_LINK, unix.RTN_UNICAST, 0, 0, 0, 0}
	body = appendAttr(body, unix.RTA_TABLE, binary.NativeEndian.AppendUint32(nil, table))
	body = appendAttr(body, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(ifindex)))
	if add {
		return r.request(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, body)
	}
	return r.request(unix.RTM_DELROUTE, 0, body)
}
