package vici

import (
	"crypto/x509"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
)

// The read side: version, stats, list-sas, list-conns, list-certs,
// list-authorities, get-authorities, get-pools (vici_query.c).

func init() {
	commands["version"] = version
	commands["stats"] = stats
	commands["list-sas"] = listSAs
	commands["list-conns"] = listConns
	commands["list-certs"] = listCerts
	commands["list-authorities"] = func(*client, *Message) *Message { return NewMessage() }
	commands["get-authorities"] = func(*client, *Message) *Message { return NewMessage().SetList("authorities", nil) }
	commands["get-pools"] = func(*client, *Message) *Message { return NewMessage() }
}

func version(c *client, _ *Message) *Message {
	m := NewMessage().Set("daemon", "iked").Set("version", c.s.cfg.Version)
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Set("sysname", unix.ByteSliceToString(u.Sysname[:]))
		m.Set("release", unix.ByteSliceToString(u.Release[:]))
		m.Set("machine", unix.ByteSliceToString(u.Machine[:]))
	}
	return m
}

// jobPriorities are charon's job priority names, under which it counts
// worker threads and queued jobs; iked has no job queue, so they are 0.
var jobPriorities = []string{"critical", "high", "medium", "low"}

func stats(c *client, _ *Message) *Message {
	m := NewMessage()
	now := time.Now()
	up := m.Section("uptime")
	up.Set("running", timeDelta(now.Sub(c.s.cfg.Started)))
	up.Set("since", c.s.cfg.Started.Format("Jan 02 15:04:05 2006"))
	// Goroutines stand for charon's worker threads; none is idle or busy
	// with a prioritised job in charon's sense.
	w := m.Section("workers")
	w.SetInt("total", int64(runtime.NumGoroutine()))
	w.Set("idle", "0")
	act := w.Section("active")
	q := m.Section("queues")
	for _, p := range jobPriorities {
		act.Set(p, "0")
		q.Set(p, "0")
	}
	m.Set("scheduled", "0")
	st := c.s.cfg.Engine.Stats()
	total := 0
	for _, n := range st.IKESAs {
		total += n
	}
	sas := m.Section("ikesas")
	sas.SetInt("total", int64(total))
	sas.SetInt("half-open", int64(st.HalfOpen))
	m.SetList("plugins", c.s.cfg.Plugins)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem := m.Section("mem")
	mem.SetUint("total", ms.HeapAlloc)
	mem.SetUint("allocs", ms.Mallocs-ms.Frees)
	return m
}

// timeDelta prints a duration as strongSwan's %V: the largest unit that
// fits, "5 seconds", "1 minute", "3 hours", "2 days".
func timeDelta(d time.Duration) string {
	s := int64(d / time.Second)
	unit, n := "second", s
	switch {
	case s >= 86400:
		unit, n = "day", s/86400
	case s >= 3600:
		unit, n = "hour", s/3600
	case s >= 60:
		unit, n = "minute", s/60
	}
	if n != 1 {
		unit += "s"
	}
	return strconv.FormatInt(n, 10) + " " + unit
}

func listSAs(c *client, req *Message) *Message {
	s := c.s
	ikeName, _ := req.Get("ike")
	ikeID := intValue(req, "ike-id")
	childName, _ := req.Get("child")
	childID := intValue(req, "child-id")
	filtered := ikeName != "" || ikeID != 0 || childName != "" || childID != 0
	sas := s.allSAs()
	extras := s.cfg.Engine.SAExtras()
	live := map[string]bool{}
	for _, in := range sas {
		for _, ch := range in.Children {
			live[ch.SPIIn] = true
		}
		if (ikeName != "" && in.Connection != ikeName) || (ikeID != 0 && int64(uniqueID(in.ID)) != ikeID) {
			continue
		}
		var children []ike.ChildInfo
		for _, ch := range in.Children {
			if childName != "" && s.childName(in.Connection) != childName {
				continue
			}
			if childID != 0 && int64(s.ids.get(ch.SPIIn)) != childID {
				continue
			}
			children = append(children, ch)
		}
		ev := NewMessage()
		ev.put(connName(in.Connection), s.saSection(in, extras[in.ID], children, time.Now()))
		c.stream("list-sa", ev)
	}
	if !filtered {
		s.ids.keepOnly(live)
	}
	return NewMessage()
}

// connName is the section name of an IKE SA: its connection's name.
func connName(n string) string {
	if n == "" {
		return "(unnamed)"
	}
	return n
}

// intValue reads a decimal key; absent or invalid is 0, as charon's get_int.
func intValue(m *Message, k string) int64 {
	v, _ := m.Get(k)
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

func listConns(c *client, req *Message) *Message {
	s := c.s
	only, _ := req.Get("ike")
	for _, conn := range s.cfg.Engine.Connections() {
		if only != "" && conn.Name != only {
			continue
		}
		ev := NewMessage()
		ev.put(conn.Name, s.connSection(conn))
		c.stream("list-conn", ev)
	}
	return NewMessage()
}

// connSection describes a connection as charon's list-conn event does.
func (s *Server) connSection(conn *ike.Connection) *Message {
	m := NewMessage()
	local := "%any"
	if conn.Local.IsValid() {
		local = conn.Local.String()
	}
	remote := "%any"
	if conn.Remote.Addr().IsValid() {
		remote = conn.Remote.Addr().String()
	}
	m.SetList("local_addrs", []string{local})
	m.SetList("remote_addrs", []string{remote})
	if conn.Remote.Port() != 0 {
		m.SetUint("remote_port", uint64(conn.Remote.Port()))
	}
	m.Set("version", "IKEv2")
	m.SetInt("reauth_time", int64(conn.ReauthTime/time.Second))
	m.SetInt("rekey_time", int64(conn.IKERekeyTime/time.Second))
	m.Set("unique", "UNIQUE_NO")
	if conn.DPDDelay > 0 {
		m.SetInt("dpd_delay", int64(conn.DPDDelay/time.Second))
	}
	class := authClass(conn)
	l := m.Section("local-1")
	l.Set("class", class)
	l.Set("id", identity(conn.LocalID.String()))
	r := m.Section("remote-1")
	r.Set("class", class)
	if !conn.RemoteID.IsZero() {
		r.Set("id", identity(conn.RemoteID.String()))
	}
	for _, a := range []*Message{l, r} {
		a.SetList("groups", nil)
		a.SetList("cert_policy", nil)
	}
	var certs []string
	if cm, ok := conn.Auth.(interface{ Certificate() *x509.Certificate }); ok && cm.Certificate() != nil {
		certs = append(certs, dnString(cm.Certificate()))
	}
	l.SetList("certs", certs)
	l.SetList("cacerts", nil)
	r.SetList("certs", nil)
	r.SetList("cacerts", nil)
	ch := m.Section("children").Section(s.childName(conn.Name))
	mode := "TUNNEL"
	if conn.Mode == ike.ModeTransport {
		mode = "TRANSPORT"
	}
	ch.Set("mode", mode)
	ch.SetInt("rekey_time", int64(conn.RekeyTime/time.Second))
	ch.SetUint("rekey_bytes", conn.RekeyBytes)
	ch.Set("rekey_packets", "0")
	ch.Set("dpd_action", dpdAction(conn.DPDAction))
	ch.Set("close_action", "clear")
	ch.SetList("local-ts", tsOrDynamic(conn.LocalTS))
	ch.SetList("remote-ts", tsOrDynamic(conn.RemoteTS))
	return m
}

// authClass names the connection's auth method as strongSwan's
// auth_class_names; methods strongSwan does not have keep iked's name.
func authClass(conn *ike.Connection) string {
	if conn.Auth == nil {
		return "any"
	}
	switch conn.Auth.Name() {
	case "psk":
		return "pre-shared key"
	case "cert":
		return "public key"
	}
	return conn.Auth.Name()
}

// dpdAction names a DPD action as strongSwan's action_names.
func dpdAction(a ike.DPDAction) string {
	switch a {
	case ike.DPDRestart:
		return "restart"
	case ike.DPDHold:
		return "trap"
	}
	return "clear"
}

func tsOrDynamic(ts []wire.TrafficSelector) []string {
	if len(ts) == 0 {
		return []string{"dynamic"}
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = ike.FormatTrafficSelector(t)
	}
	return selectors(out)
}

func listCerts(c *client, req *Message) *Message {
	typ, _ := req.Get("type")
	flag, _ := req.Get("flag")
	subject, _ := req.Get("subject")
	if typ != "" && typ != "ANY" && typ != "X509" {
		return NewMessage() // iked holds no other kind
	}
	for _, ce := range c.s.certificates() {
		f := "NONE"
		if ce.cert.IsCA && ce.cert.BasicConstraintsValid {
			f = "CA"
		}
		if flag != "" && flag != "ANY" && flag != f {
			continue
		}
		if subject != "" && !subjectMatches(ce.cert, subject) {
			continue
		}
		ev := NewMessage().Set("type", "X509").Set("flag", f)
		if ce.hasKey {
			ev.Set("has_privkey", "yes")
		}
		ev.SetBytes("data", ce.cert.Raw)
		c.stream("list-cert", ev)
	}
	return NewMessage()
}

// subjectMatches compares a subject filter with a certificate: its DN
// (in either order), or one of its names.
func subjectMatches(cert *x509.Certificate, subject string) bool {
	if id, err := ike.ParseIdentity(subject); err == nil && id.Type == wire.IDDERASN1DN {
		return id.Matches(&wire.ID{IDType: wire.IDDERASN1DN, Data: cert.RawSubject})
	}
	for _, n := range cert.DNSNames {
		if strings.EqualFold(n, subject) {
			return true
		}
	}
	for _, n := range cert.EmailAddresses {
		if strings.EqualFold(n, subject) {
			return true
		}
	}
	for _, a := range cert.IPAddresses {
		if a.String() == subject {
			return true
		}
	}
	return false
}

// dnString is a certificate's subject as strongSwan prints it: in the
// order of the encoding, "C=CH, O=Example, CN=gw".
func dnString(cert *x509.Certificate) string {
	return identity(ike.Identity{Type: wire.IDDERASN1DN, Value: cert.RawSubject}.String())
}
