package vici

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iked/iked/ike"
)

// The fields of IKE and Child SAs as charon's list-sa event spells them
// (vici_query.c list_ike and list_child): states, algorithm names and
// modes in strongSwan's enum names, times in seconds relative to now.

// ikeState maps the engine's states to strongSwan's ike_sa_state names.
func ikeState(s string) string {
	switch s {
	case "connecting", "authenticating":
		return "CONNECTING"
	case "established":
		return "ESTABLISHED"
	case "deleting":
		return "DELETING"
	case "dead":
		return "DESTROYING"
	}
	return strings.ToUpper(s)
}

// isakmpIDBase is added to an ISAKMP SA's number ("isakmp-N") for its
// unique ID, so that IKEv1 and IKEv2 SAs, numbered apart by their engines,
// never share one: swanctl shows ISAKMP SAs as #2147483649 and up.
const isakmpIDBase = 1 << 31

// isISAKMP reports whether id names an IKEv1 SA.
func isISAKMP(id string) bool { return strings.HasPrefix(id, "isakmp-") }

// uniqueID is the IKE SA's number in "ike-N", or isakmpIDBase+N for
// "isakmp-N".
func uniqueID(id string) uint64 {
	if isISAKMP(id) {
		n, err := strconv.ParseUint(strings.TrimPrefix(id, "isakmp-"), 10, 31)
		if err != nil || n == 0 {
			return 0
		}
		return isakmpIDBase + n
	}
	n, _ := strconv.ParseUint(strings.TrimPrefix(id, "ike-"), 10, 32)
	return n
}

// ikeSAName is the IKE SA's number as a string, "" for no ID.
func ikeSAID(id string) string {
	if n := uniqueID(id); n != 0 {
		return strconv.FormatUint(n, 10)
	}
	return ""
}

// identity prints an identity as strongSwan's %Y does: the value without
// iked's type prefix, "%any" for none.
func identity(s string) string {
	if s == "" || s == "any" {
		return "%any"
	}
	if _, v, ok := strings.Cut(s, ":"); ok {
		switch {
		case strings.HasPrefix(s, "fqdn:"), strings.HasPrefix(s, "email:"), strings.HasPrefix(s, "ip:"), strings.HasPrefix(s, "dn:"):
			return v
		case strings.HasPrefix(s, "keyid:"):
			return "@#" + v
		}
	}
	return s
}

// algorithms splits a suite in strongSwan notation
// ("AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519",
// "AES_CBC-256/HMAC_SHA2_256_128/NO_EXT_SEQ") into its parts.
type algorithms struct {
	encr, encrBits, integ, prf, dh string
	esn                            bool
	// ake are the additional key exchanges ("KE1_ML_KEM_768" in the
	// suite), listed as ake1 ... ake7 as strongSwan 6 lists them.
	ake [7]string
}

func parseAlgorithms(s string) algorithms {
	var a algorithms
	for i, p := range strings.Split(s, "/") {
		switch {
		case p == "":
		case i == 0:
			a.encr = p
			if j := strings.LastIndexByte(p, '-'); j > 0 {
				if _, err := strconv.Atoi(p[j+1:]); err == nil {
					a.encr, a.encrBits = p[:j], p[j+1:]
				}
			}
		case strings.HasPrefix(p, "PRF_"):
			a.prf = p
		case strings.HasPrefix(p, "HMAC_"), strings.HasPrefix(p, "AES_XCBC"), strings.HasPrefix(p, "AES_CMAC"):
			a.integ = p
		case p == "EXT_SEQ":
			a.esn = true
		case p == "NO_EXT_SEQ":
		case len(p) > 4 && p[0:2] == "KE" && p[2] >= '1' && p[2] <= '7' && p[3] == '_':
			a.ake[p[2]-'1'] = p[4:]
		default:
			a.dh = p
		}
	}
	return a
}

func (a algorithms) add(m *Message, withPRF bool) {
	if a.encr != "" {
		m.Set("encr-alg", a.encr)
		if a.encrBits != "" {
			m.Set("encr-keysize", a.encrBits)
		}
	}
	if a.integ != "" {
		m.Set("integ-alg", a.integ)
	}
	if a.prf != "" && withPRF {
		m.Set("prf-alg", a.prf)
	}
	if a.dh != "" {
		m.Set("dh-group", a.dh)
	}
	for i, k := range a.ake {
		if k != "" {
			m.Set("ake"+strconv.Itoa(i+1), k)
		}
	}
}

// secondsUntil is t - now in whole seconds; secondsSince now - t.
func secondsUntil(t, now time.Time) int64 { return int64(t.Sub(now) / time.Second) }
func secondsSince(t, now time.Time) int64 { return int64(now.Sub(t) / time.Second) }

// addIKE fills m with an IKE SA's fields (list_ike), without child-sas.
func addIKE(m *Message, in ike.SAInfo, x ike.SAExtra, now time.Time) {
	m.SetUint("uniqueid", uniqueID(in.ID))
	if isISAKMP(in.ID) {
		m.Set("version", "1")
	} else {
		m.Set("version", "2")
	}
	m.Set("state", ikeState(in.State))
	addHost(m, "local", in.LocalAddr)
	m.Set("local-id", identity(in.LocalID))
	addHost(m, "remote", in.RemoteAddr)
	m.Set("remote-id", identity(in.RemoteID))
	if in.Role == "initiator" {
		m.Set("initiator", "yes")
	}
	m.Set("initiator-spi", in.SPIi)
	m.Set("responder-spi", in.SPIr)
	if in.NATLocal {
		m.Set("nat-local", "yes")
	}
	if in.NATRemote {
		m.Set("nat-remote", "yes")
	}
	if in.NATLocal || in.NATRemote {
		m.Set("nat-any", "yes")
	}
	parseAlgorithms(in.Algorithms).add(m, true)
	if in.State == "established" {
		m.SetInt("established", secondsSince(in.Established, now))
		if !x.IKERekey.IsZero() {
			m.SetInt("rekey-time", secondsUntil(x.IKERekey, now))
		}
		if !x.Reauth.IsZero() {
			m.SetInt("reauth-time", secondsUntil(x.Reauth, now))
		}
	}
}

// addHost sets PREFIX-host and PREFIX-port from "addr:port".
func addHost(m *Message, prefix, addrPort string) {
	ap, err := netip.ParseAddrPort(addrPort)
	if err != nil {
		m.Set(prefix+"-host", "%any")
		m.Set(prefix+"-port", "0")
		return
	}
	m.Set(prefix+"-host", ap.Addr().Unmap().String())
	m.SetUint(prefix+"-port", uint64(ap.Port()))
}

// childName is the name of a Child SA's configuration: the child name a
// connection loaded over VICI gave it, else the connection's name (a
// connection of the configuration file has one Child SA).
func (s *Server) childName(conn string) string {
	if n := s.store.childName(conn); n != "" {
		return n
	}
	return conn
}

// addChild fills m with a Child SA's fields (list_child).
func addChild(m *Message, name string, id uint32, c ike.ChildInfo, ce ike.ChildExtra, encap bool, now time.Time) {
	m.Set("name", name)
	m.SetUint("uniqueid", uint64(id))
	m.SetUint("reqid", uint64(ce.ReqID))
	m.Set("state", "INSTALLED")
	m.Set("mode", strings.ToUpper(c.Mode))
	m.Set("protocol", strings.ToUpper(c.Protocol))
	if encap {
		m.Set("encap", "yes")
	}
	m.Set("spi-in", c.SPIIn)
	m.Set("spi-out", c.SPIOut)
	a := parseAlgorithms(c.Algorithms)
	a.add(m, false)
	if a.esn {
		m.Set("esn", "1")
	}
	m.SetUint("bytes-in", c.BytesIn)
	m.SetUint("packets-in", c.PacketsIn)
	m.SetUint("bytes-out", c.BytesOut)
	m.SetUint("packets-out", c.PacketsOut)
	if !ce.Rekey.IsZero() {
		m.SetInt("rekey-time", secondsUntil(ce.Rekey, now))
	}
	m.SetInt("install-time", secondsSince(c.Installed, now))
	m.SetList("local-ts", selectors(c.LocalTS))
	m.SetList("remote-ts", selectors(c.RemoteTS))
}

// selectors prints traffic selectors as strongSwan's %R: ranges that are
// not a prefix as "from..to".
func selectors(ts []string) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		addr, rest, _ := strings.Cut(t, "[")
		if a, b, ok := strings.Cut(addr, "-"); ok {
			addr = a + ".." + b
		}
		if rest != "" {
			addr += "[" + rest
		}
		out[i] = addr
	}
	return out
}

// childIDs gives Child SAs the unique numbers strongSwan tools address
// them by (--child-id), keyed by inbound SPI. An entry goes when its
// Child SA goes down, and with any SA a full listing no longer shows.
type childIDs struct {
	mu   sync.Mutex
	ids  map[string]uint32
	next uint32
}

func (c *childIDs) init() { c.ids = map[string]uint32{} }

func (c *childIDs) get(spiIn string) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.ids[spiIn]
	if !ok {
		c.next++
		id = c.next
		c.ids[spiIn] = id
	}
	return id
}

func (c *childIDs) forget(spiIn string) {
	c.mu.Lock()
	delete(c.ids, spiIn)
	c.mu.Unlock()
}

// keepOnly forgets every SPI not in live.
func (c *childIDs) keepOnly(live map[string]bool) {
	c.mu.Lock()
	for k := range c.ids {
		if !live[k] {
			delete(c.ids, k)
		}
	}
	c.mu.Unlock()
}

// saSection builds the section of one IKE SA with the given Child SAs.
func (s *Server) saSection(in ike.SAInfo, x ike.SAExtra, children []ike.ChildInfo, now time.Time) *Message {
	m := NewMessage()
	addIKE(m, in, x, now)
	cs := m.Section("child-sas")
	name := s.childName(in.Connection)
	for _, c := range children {
		id := s.ids.get(c.SPIIn)
		addChild(cs.Section(name+"-"+strconv.FormatUint(uint64(id), 10)), name, id, c, x.Children[c.SPIIn], x.Encap, now)
	}
	return m
}
