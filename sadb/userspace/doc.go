// Package userspace is the "userspace" data-plane backend: ESP (RFC 4303)
// in tunnel mode, done in Go, between a TUN device and the IKE NAT-T UDP
// socket (ESP-in-UDP, RFC 3948) — the data plane strongSwan's
// kernel-libipsec speaks. It needs no XFRM support in the kernel, only
// /dev/net/tun and CAP_NET_ADMIN.
//
// The Backend owns the UDP socket of port 4500 and reads it in batches
// (recvmmsg): ESP goes to the data plane, NAT keepalives are dropped, and
// IKE messages (behind the non-ESP marker) are handed to the IKE engine
// through IKEBind, a transport.Bind the engine adds like any other. Packets
// the kernel routes into the TUN device are matched against outbound
// policies and SAs, sealed and sent in batches (sendmmsg).
//
// Routes for the remote traffic selectors of outbound SAs and Protect
// policies point into the TUN device; the peer's own address is always
// carved out of them, so that IKE and ESP to the peer never loop into the
// tunnel. AH (RFC 4302) and ESP without UDP encapsulation go over raw IPv4
// sockets when Config.RawIPv4 is set.
//
// The packet transforms are in the esp sub-package. The backend is Linux
// only; elsewhere New returns an error.
package userspace
