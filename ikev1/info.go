package ikev1

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SAInfo is a snapshot of one ISAKMP SA for ikectl and the control
// socket, in the IKEv2 engine's shape (docs/ikectl.md): the cookies are
// the SPIs.
type SAInfo struct {
	ID          string
	Connection  string
	SPIi, SPIr  string
	State       string
	Role        string
	LocalAddr   string
	RemoteAddr  string
	LocalID     string
	RemoteID    string
	Auth        string
	Algorithms  string
	NATLocal    bool
	NATRemote   bool
	Established time.Time
	Children    []ChildInfo
}

// ChildInfo is a snapshot of one IPsec SA pair.
type ChildInfo struct {
	SPIIn, SPIOut         string
	Protocol, Mode        string
	LocalTS, RemoteTS     []string
	Algorithms            string
	BytesIn, BytesOut     uint64
	PacketsIn, PacketsOut uint64
	Installed             time.Time
}

// SAs returns a snapshot of every ISAKMP SA, ordered by ID.
func (e *Engine) SAs() []SAInfo {
	sas := e.allSAs()
	out := make([]SAInfo, 0, len(sas))
	for _, sa := range sas {
		out = append(out, sa.info())
	}
	sort.Slice(out, func(i, j int) bool { return saNumber(out[i].ID) < saNumber(out[j].ID) })
	return out
}

func saNumber(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "isakmp-"))
	return n
}

// info snapshots the SA with its IPsec SAs' counters (read after the lock
// is released: the data plane is a call-out).
func (sa *isakmpSA) info() SAInfo {
	sa.mu.Lock()
	in := SAInfo{ID: sa.id(), SPIi: cookieHex(sa.icookie), SPIr: cookieHex(sa.rcookie), State: sa.state.String(),
		Role: sa.role(), LocalAddr: sa.local.String(), RemoteAddr: sa.remote.String(),
		LocalID: sa.localID.String(), RemoteID: sa.remoteID.String(), Auth: sa.authName,
		NATLocal: sa.natLocal, NATRemote: sa.natRemote, Established: sa.established}
	if sa.conn != nil {
		in.Connection = sa.conn.Name
	}
	if sa.suite != nil {
		in.Algorithms = sa.suite.String()
	}
	children := append([]*ipsecSA(nil), sa.ipsecs...)
	for _, c := range children {
		in.Children = append(in.Children, ChildInfo{
			SPIIn: fmt.Sprintf("%08x", c.inbound.SPI), SPIOut: fmt.Sprintf("%08x", c.outbound.SPI),
			Protocol: "esp", Mode: c.suite.mode.String(),
			LocalTS: []string{formatSelector(c.localTS)}, RemoteTS: []string{formatSelector(c.remoteTS)},
			Algorithms: c.suite.String(), Installed: c.inbound.Installed,
		})
	}
	sa.mu.Unlock()
	db := sa.eng.cfg.SADB
	for i, c := range children {
		if ctr, err := db.Counters(c.inbound.ID()); err == nil {
			in.Children[i].BytesIn, in.Children[i].PacketsIn = ctr.Bytes, ctr.Packets
		}
		if ctr, err := db.Counters(c.outbound.ID()); err == nil {
			in.Children[i].BytesOut, in.Children[i].PacketsOut = ctr.Bytes, ctr.Packets
		}
	}
	return in
}
