// Package ipsec is the vocabulary that the key-exchange engines (IKEv2 in
// package ike, IKEv1 beside it) and the data plane (sadb) share: traffic
// selectors, as both IKE versions negotiate them and every backend
// installs them. It is a leaf: it imports nothing of iked, so that the
// data plane never depends on an engine and neither engine on the other.
package ipsec

import "net/netip"

// TSType is the address family of a traffic selector, numbered as IKEv2's
// Traffic Selector Types (RFC 7296 §3.13.1); IKEv1's ID payloads map onto
// the same two.
type TSType uint8

// Traffic selector types.
const (
	TSIPv4AddrRange TSType = 7
	TSIPv6AddrRange TSType = 8
)

// TrafficSelector is one traffic selector: an address range, an IP
// protocol and a port range. StartAddr and EndAddr are both IPv4 for
// TSIPv4AddrRange and both IPv6 for TSIPv6AddrRange.
type TrafficSelector struct {
	Type       TSType
	IPProtocol uint8 // 0 = any
	StartPort  uint16
	EndPort    uint16
	StartAddr  netip.Addr
	EndAddr    netip.Addr
}
