package transport

import (
	"net/netip"
	"sync"
)

// NonESPMarker wraps a bind on the NAT-T port (4500): IKE messages there
// are preceded by four zero octets, the non-ESP marker (RFC 3948 §2.2),
// which this wrapper strips on receipt and adds on sending. Datagrams
// without it are ESP-in-UDP for the data plane, or NAT keepalives (one
// 0xFF octet), and are not IKE: ReadFrom skips them and counts them.
type NonESPMarker struct {
	Bind

	mu      sync.Mutex
	skipped uint64
}

// WithNonESPMarker wraps b.
func WithNonESPMarker(b Bind) *NonESPMarker {
	return &NonESPMarker{Bind: b}
}

// ReadFrom implements Bind, returning only IKE messages with the marker removed.
func (m *NonESPMarker) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	for {
		n, from, err := m.Bind.ReadFrom(b)
		if err != nil {
			return n, from, err
		}
		if n >= 4 && b[0]|b[1]|b[2]|b[3] == 0 {
			return copy(b, b[4:n]), from, nil
		}
		m.mu.Lock()
		m.skipped++
		m.mu.Unlock()
	}
}

// WriteTo implements Bind, prefixing the marker.
func (m *NonESPMarker) WriteTo(b []byte, addr netip.AddrPort) error {
	buf := make([]byte, 4, 4+len(b))
	return m.Bind.WriteTo(append(buf, b...), addr)
}

// SendKeepalive implements NATTBind.
func (m *NonESPMarker) SendKeepalive(addr netip.AddrPort) error {
	return m.Bind.WriteTo([]byte{0xff}, addr)
}

// Skipped returns how many non-IKE datagrams were skipped.
func (m *NonESPMarker) Skipped() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.skipped
}
