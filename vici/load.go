package vici

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/auth/cert"
	"github.com/iked/iked/config"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// Connections loaded over VICI (vici_config.c): load-conn turns a
// swanctl.conf connection into an engine connection, unload-conn removes
// one, get-conns lists them. A key iked cannot honour is refused by name
// rather than ignored, so that a configuration never means less than it
// says; keys that ask for what iked does anyway are accepted.

func init() {
	commands["load-conn"] = loadConn
	commands["unload-conn"] = unloadConn
	commands["get-conns"] = func(c *client, _ *Message) *Message {
		return NewMessage().SetList("conns", c.s.store.connNames())
	}
	commands["load-authority"] = func(*client, *Message) *Message {
		return reply(errorf("authorities: not supported by iked (give CA certificates with load-cert and cacerts)"))
	}
	commands["load-pool"] = func(*client, *Message) *Message {
		return reply(errorf("pools: iked assigns no virtual IPs"))
	}
}

// loadedConn is a connection loaded over VICI: its definition (kept to
// build it again when credentials change) and the engine connection.
type loadedConn struct {
	def   *Message
	child string
	conn  *ike.Connection
	start bool // start_action = start: initiate once loaded
}

func (st *store) connNames() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]string{}, st.order...)
}

// childName returns the child name of a connection loaded over VICI.
func (st *store) childName(conn string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if lc := st.conns[conn]; lc != nil {
		return lc.child
	}
	return ""
}

// connections returns the loaded engine connections in load order.
func (st *store) connections() []*ike.Connection {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make([]*ike.Connection, 0, len(st.order))
	for _, n := range st.order {
		out = append(out, st.conns[n].conn)
	}
	return out
}

// Connections returns the connections loaded over VICI, for the daemon
// to give the engine beside the file's (after a reload too).
func (s *Server) Connections() []*ike.Connection { return s.store.connections() }

func loadConn(c *client, req *Message) *Message {
	s := c.s
	keys := req.Keys()
	if len(keys) != 1 {
		return reply(errorf("expected one connection section, got %d", len(keys)))
	}
	name := keys[0]
	def, ok := req.Sub(name)
	if !ok {
		return reply(errorf("invalid section: %s", name))
	}
	if s.cfg.FileConnections != nil {
		for _, n := range s.cfg.FileConnections() {
			if n == name {
				return reply(errorf("connection '%s' is defined in iked's configuration file; edit it there", name))
			}
		}
	}
	lc, err := s.buildConn(name, def)
	if err != nil {
		return reply(errorf("%v, config discarded", err))
	}
	st := s.store
	st.mu.Lock()
	old := st.conns[name]
	st.conns[name] = lc
	if old == nil {
		st.order = append(st.order, name)
	}
	st.mu.Unlock()
	if err := s.applyConns(); err != nil {
		st.mu.Lock()
		if old != nil {
			st.conns[name] = old
		} else {
			delete(st.conns, name)
			st.order = st.order[:len(st.order)-1]
		}
		st.mu.Unlock()
		return reply(errorf("connection '%s': %v, config discarded", name, err))
	}
	verb := "added"
	if old != nil {
		verb = "replaced"
	}
	s.log.Info("vici connection "+verb, "connection", name, "child", lc.child)
	if lc.start {
		go func() {
			if _, err := s.cfg.Engine.Initiate(s.ctx, name); err != nil {
				s.log.Warn("vici connection start failed", "connection", name, "err", err)
			}
		}()
	}
	return reply(result{})
}

func unloadConn(c *client, req *Message) *Message {
	s := c.s
	name, _ := req.Get("name")
	if name == "" {
		return reply(errorf("missing connection name to unload"))
	}
	st := s.store
	st.mu.Lock()
	lc := st.conns[name]
	if lc != nil {
		delete(st.conns, name)
		for i, n := range st.order {
			if n == name {
				st.order = append(st.order[:i], st.order[i+1:]...)
				break
			}
		}
	}
	st.mu.Unlock()
	if lc == nil {
		return reply(errorf("connection '%s' not found for unloading", name))
	}
	if err := s.applyConns(); err != nil {
		return reply(errorf("unloading '%s': %v", name, err))
	}
	s.log.Info("vici connection unloaded", "connection", name)
	return reply(result{})
}

// applyConns hands the loaded connections to the daemon.
func (s *Server) applyConns() error {
	if s.cfg.SetConnections == nil {
		return fmt.Errorf("the daemon takes no connections over VICI")
	}
	return s.cfg.SetConnections(s.store.connections())
}

// rebuildConns builds the loaded connections again after a credential
// change (a certificate or key loaded), keeping those that fail.
func (s *Server) rebuildConns() {
	st := s.store
	st.mu.Lock()
	defs := map[string]*Message{}
	for n, lc := range st.conns {
		defs[n] = lc.def
	}
	st.mu.Unlock()
	if len(defs) == 0 {
		return
	}
	changed := false
	for n, def := range defs {
		lc, err := s.buildConn(n, def)
		if err != nil {
			s.log.Warn("vici connection not rebuilt with the new credentials; the old one stays", "connection", n, "err", err)
			continue
		}
		st.mu.Lock()
		if cur := st.conns[n]; cur != nil && cur.def == def {
			st.conns[n] = lc
			changed = true
		}
		st.mu.Unlock()
	}
	if changed {
		if err := s.applyConns(); err != nil {
			s.log.Warn("vici connections not applied after a credential change", "err", err)
		}
	}
}

// connKeys are the keys of a connection section and what iked does with
// them; unsupported ones are refused with their reason.
var unsupportedConnKeys = map[string]string{
	"vips": "iked requests no virtual IPs", "pools": "iked assigns no virtual IPs",
	"aggressive": "IKEv1 only", "pull": "IKEv1 only", "dscp": "not supported", "childless": "not supported",
	"keyingtries": "iked initiates once per request", "if_id_in": "no XFRM interfaces", "if_id_out": "no XFRM interfaces",
	"ppk_id": "no postquantum preshared keys", "ppk_required": "no postquantum preshared keys",
	"mediation": "no mediation", "mediated_by": "no mediation", "mediation_peer": "no mediation",
	"over_time": "iked keeps no separate hard IKE lifetime", "rand_time": "iked's jitter is a tenth of the rekey time",
	"dpd_timeout": "IKEv1 only", "local_port": "iked's local port comes from listen",
}

// buildConn makes an engine connection from a load-conn section.
func (s *Server) buildConn(name string, def *Message) (*loadedConn, error) {
	if !connNameOK(name) {
		return nil, fmt.Errorf("invalid connection name %q (letters, digits, '.', '_' and '-')", name)
	}
	b := connBuilder{s: s, conn: &ike.Connection{Name: name, IKERekeyTime: config.DefaultIKERekeyTime, DPDAction: ike.DPDClear}}
	var locals, remotes []*Message
	var children *Message
	remotePort := uint64(config.DefaultIKEPort)
	var remoteAddr netip.Addr
	for _, k := range def.Keys() {
		if why, ok := unsupportedConnKeys[k]; ok {
			return nil, fmt.Errorf("unsupported option: %s (%s)", k, why)
		}
		v, _ := def.Get(k)
		var err error
		switch k {
		case "version":
			if v != "0" && v != "2" {
				err = fmt.Errorf("iked speaks IKEv2 only")
			}
		case "local_addrs":
			b.conn.Local, err = oneAddr(def, k, true)
		case "remote_addrs":
			remoteAddr, err = oneAddr(def, k, false)
		case "remote_port":
			remotePort, err = strconv.ParseUint(v, 10, 16)
			if err == nil && remotePort == 0 {
				err = fmt.Errorf("port 0")
			}
		case "proposals":
			b.conn.IKEProposals, err = proposals(def, k, transform.ParseIKEProposal, config.DefaultIKEProposals())
		case "encap":
			b.conn.ForceEncap, err = parseBool(v)
		case "mobike":
			err = mustBe(v, false, "iked has no MOBIKE")
		case "fragmentation":
			if v != "yes" && v != "accept" {
				err = fmt.Errorf("iked always offers fragmentation (set ike.fragmentation in iked.yaml)")
			}
		case "send_certreq", "send_cert", "unique":
			err = b.acceptDefault(k, v)
		case "dpd_delay":
			b.conn.DPDDelay, err = parseTime(v)
		case "rekey_time":
			b.conn.IKERekeyTime, err = parseTime(v)
		case "reauth_time":
			b.conn.ReauthTime, err = parseTime(v)
		case "children":
			children, _ = def.Sub(k)
		default:
			sub, isSection := def.Sub(k)
			switch {
			case isSection && strings.HasPrefix(k, "local"):
				locals = append(locals, sub)
			case isSection && strings.HasPrefix(k, "remote"):
				remotes = append(remotes, sub)
			default:
				return nil, fmt.Errorf("unknown option: %s", k)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("invalid value for: %s (%v)", k, err)
		}
	}
	if remoteAddr.IsValid() {
		b.conn.Remote = netip.AddrPortFrom(remoteAddr, uint16(remotePort))
	}
	if len(b.conn.IKEProposals) == 0 {
		b.conn.IKEProposals, _ = proposals(nil, "", transform.ParseIKEProposal, config.DefaultIKEProposals())
	}
	if len(locals) != 1 || len(remotes) != 1 {
		return nil, fmt.Errorf("iked needs exactly one local and one remote authentication round (got %d and %d)", len(locals), len(remotes))
	}
	if err := b.auth(locals[0], remotes[0]); err != nil {
		return nil, err
	}
	child, start, err := b.child(children)
	if err != nil {
		return nil, err
	}
	if start && !b.conn.Remote.Addr().IsValid() {
		return nil, fmt.Errorf("invalid value for: start_action (start needs a remote address, but remote_addrs is %%any)")
	}
	return &loadedConn{def: def, child: child, conn: b.conn, start: start}, nil
}

func connNameOK(n string) bool {
	if n == "" {
		return false
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

type connBuilder struct {
	s    *Server
	conn *ike.Connection
}

// acceptDefault accepts keys whose value asks for what iked does.
func (b *connBuilder) acceptDefault(k, v string) error {
	ok := map[string][]string{
		"send_certreq": {"yes", "true"},
		"send_cert":    {"ifasked", "always"},
		"unique":       {"no", "never"},
	}[k]
	for _, o := range ok {
		if v == o {
			return nil
		}
	}
	return fmt.Errorf("iked supports %s = %s only", k, strings.Join(ok, " or "))
}

func mustBe(v string, want bool, why string) error {
	got, err := parseBool(v)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s", why)
	}
	return nil
}

func parseBool(v string) (bool, error) {
	switch v {
	case "yes", "true", "enabled", "1":
		return true, nil
	case "no", "false", "disabled", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not yes or no", v)
}

// parseTime reads strongSwan's times: seconds, or a number with s, m, h or
// d.
func parseTime(v string) (time.Duration, error) {
	mult := time.Second
	n := v
	if len(v) > 0 {
		switch v[len(v)-1] {
		case 's':
			n = v[:len(v)-1]
		case 'm':
			n, mult = v[:len(v)-1], time.Minute
		case 'h':
			n, mult = v[:len(v)-1], time.Hour
		case 'd':
			n, mult = v[:len(v)-1], 24*time.Hour
		}
	}
	x, err := strconv.ParseUint(strings.TrimSpace(n), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time (seconds, or a number with s, m, h or d)", v)
	}
	return time.Duration(x) * mult, nil
}

// parseBytes reads strongSwan's byte counts: a number with k, m or g
// (powers of 1024).
func parseBytes(v string) (uint64, error) {
	mult := uint64(1)
	n := v
	if len(v) > 0 {
		switch v[len(v)-1] {
		case 'k', 'K':
			n, mult = v[:len(v)-1], 1<<10
		case 'm', 'M':
			n, mult = v[:len(v)-1], 1<<20
		case 'g', 'G':
			n, mult = v[:len(v)-1], 1<<30
		}
	}
	x, err := strconv.ParseUint(strings.TrimSpace(n), 10, 64)
	if err != nil || x > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a byte count", v)
	}
	return x * mult, nil
}

// oneAddr reads an address list of one address (or %any); iked binds a
// connection to one peer address.
func oneAddr(def *Message, k string, local bool) (netip.Addr, error) {
	l, ok := def.List(k)
	if !ok {
		v, _ := def.Get(k)
		l = []string{v}
	}
	if len(l) != 1 {
		return netip.Addr{}, fmt.Errorf("iked takes one address or %%any, got %d", len(l))
	}
	if l[0] == "%any" || l[0] == "%any4" || l[0] == "%any6" || l[0] == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(l[0])
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address (host names, ranges and subnets are not supported)", l[0])
	}
	if a.IsUnspecified() {
		return netip.Addr{}, nil
	}
	_ = local
	return a.Unmap(), nil
}

// proposals reads a proposal list; "default" stands for iked's defaults.
func proposals(def *Message, k string, parse func(string) (transform.Proposal, error), defaults []string) ([]transform.Proposal, error) {
	var l []string
	if def != nil {
		var ok bool
		if l, ok = def.List(k); !ok {
			v, _ := def.Get(k)
			l = []string{v}
		}
	}
	if len(l) == 0 {
		l = defaults
	}
	var out []transform.Proposal
	for _, p := range l {
		if p == "default" {
			for _, d := range defaults {
				x, err := parse(d)
				if err != nil {
					return nil, err
				}
				out = append(out, x)
			}
			continue
		}
		x, err := parse(p)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// auth builds the connection's auth method from its local and remote
// rounds: psk on both sides, or pubkey on both (certificates).
func (b *connBuilder) auth(local, remote *Message) error {
	lo, err := authRound(local, "local")
	if err != nil {
		return err
	}
	ro, err := authRound(remote, "remote")
	if err != nil {
		return err
	}
	if lo.id != "" {
		id, err := ike.ParseIdentity(lo.id)
		if err != nil {
			return fmt.Errorf("invalid value for: id (%v)", err)
		}
		b.conn.LocalID = id
	}
	if ro.id != "" && ro.id != "%any" {
		id, err := ike.ParseIdentity(ro.id)
		if err != nil {
			return fmt.Errorf("invalid value for: id (%v)", err)
		}
		b.conn.RemoteID = id
	}
	if b.conn.Local.IsValid() && b.conn.LocalID.IsZero() && lo.class == "psk" {
		b.conn.LocalID = ike.IdentityFromAddr(b.conn.Local)
	}
	switch {
	case lo.class == "psk" && ro.class == "psk":
		if len(lo.certs)+len(ro.certs)+len(ro.cacerts) > 0 {
			return fmt.Errorf("unsupported option: certs (with auth = psk)")
		}
		b.conn.Auth = &dynamicPSK{st: b.s.store, local: b.conn.LocalID, remote: b.conn.RemoteID}
		return nil
	case lo.class == "pubkey" && ro.class == "pubkey":
		m, err := b.certMethod(lo, ro)
		if err != nil {
			return err
		}
		b.conn.Auth = m
		return nil
	}
	return fmt.Errorf("invalid value for: auth (iked authenticates both sides alike: psk and psk, or pubkey and pubkey; got %s and %s)", lo.class, ro.class)
}

// round is one side's authentication settings.
type round struct {
	class, id      string
	certs, cacerts [][]byte
}

func authRound(m *Message, side string) (round, error) {
	r := round{class: "pubkey"}
	for _, k := range m.Keys() {
		v, _ := m.Get(k)
		switch k {
		case "auth":
			switch {
			case v == "psk":
				r.class = "psk"
			case v == "pubkey" || strings.HasPrefix(v, "pubkey-") || v == "rsa" || strings.HasPrefix(v, "rsa-") ||
				v == "ecdsa" || strings.HasPrefix(v, "ecdsa-") || v == "ed25519":
				r.class = "pubkey"
			default:
				return r, fmt.Errorf("invalid value for: auth (%q: iked supports psk and pubkey)", v)
			}
		case "id":
			r.id = v
		case "certs":
			r.certs, _ = m.RawList(k)
		case "cacerts":
			r.cacerts, _ = m.RawList(k)
		case "round":
			if v != "0" && v != "1" {
				return r, fmt.Errorf("unsupported option: round (one authentication round per side)")
			}
		case "revocation":
			if v != "relaxed" {
				return r, fmt.Errorf("unsupported option: revocation (iked checks the CRLs it is given)")
			}
		default:
			return r, fmt.Errorf("unsupported option: %s (in %s)", k, side)
		}
	}
	return r, nil
}

// certMethod builds a cert method: our certificate from local certs, its
// key among the loaded ones, the trust anchors from remote cacerts or all
// CA certificates loaded with load-cert. auth/cert reads files, so the
// material goes through a private directory beside the socket that is
// removed at once.
func (b *connBuilder) certMethod(lo, ro round) (auth.Method, error) {
	if len(lo.certs) == 0 {
		return nil, fmt.Errorf("invalid value for: certs (auth = pubkey needs the local certificate in certs)")
	}
	leaf, err := parseCert(lo.certs[0])
	if err != nil {
		return nil, fmt.Errorf("invalid value for: certs (%v)", err)
	}
	key, ok := b.s.store.keyFor(leaf.PublicKey)
	if !ok {
		return nil, fmt.Errorf("no private key loaded for certificate %s (load it first: private/ in swanctl's directory)", dnString(leaf))
	}
	defer clear(key)
	var cas []*x509.Certificate
	for _, raw := range ro.cacerts {
		c, err := parseCert(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid value for: cacerts (%v)", err)
		}
		cas = append(cas, c)
	}
	loaded := b.s.store.caCerts()
	if len(cas) == 0 {
		cas = loaded
	}
	// Intermediate CAs loaded with load-cert complete our chain for the
	// peer, as charon sends what it finds among its certificates.
	var inters []*x509.Certificate
	for _, c := range loaded {
		if !bytes.Equal(c.RawIssuer, c.RawSubject) {
			inters = append(inters, c)
		}
	}
	if len(cas) == 0 {
		return nil, fmt.Errorf("no CA certificate loaded to verify the peer (x509ca/ in swanctl's directory, or remote cacerts)")
	}
	dir, err := os.MkdirTemp(filepath.Dir(b.s.cfg.Path), ".vici-cred")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	write := func(name string, blocks ...[]byte) (string, error) {
		p := filepath.Join(dir, name)
		var data []byte
		for _, bl := range blocks {
			data = append(data, bl...)
		}
		err := os.WriteFile(p, data, 0o600)
		clear(data)
		return p, err
	}
	chain := [][]byte{pemCert(leaf)}
	for _, raw := range lo.certs[1:] {
		c, err := parseCert(raw)
		if err != nil {
			return nil, fmt.Errorf("invalid value for: certs (%v)", err)
		}
		chain = append(chain, pemCert(c))
	}
	for _, c := range inters {
		if !c.Equal(leaf) {
			chain = append(chain, pemCert(c))
		}
	}
	o := cert.Options{}
	if o.Cert, err = write("cert.pem", chain...); err != nil {
		return nil, err
	}
	if o.Key, err = write("key.pem", key); err != nil {
		return nil, err
	}
	var caBlocks [][]byte
	for _, c := range cas {
		caBlocks = append(caBlocks, pemCert(c))
	}
	ca, err := write("ca.pem", caBlocks...)
	if err != nil {
		return nil, err
	}
	o.CA = []string{ca}
	m, err := cert.FromOptions(o, dir)
	if err != nil {
		return nil, fmt.Errorf("invalid value for: certs (%v)", err)
	}
	if b.conn.LocalID.IsZero() {
		id := m.ProvenIdentity()
		b.conn.LocalID = ike.Identity{Type: id.IDType, Value: id.Data}
	}
	return m, nil
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// child reads the children section: iked negotiates one Child SA per
// connection.
func (b *connBuilder) child(children *Message) (string, bool, error) {
	if children == nil || len(children.Keys()) == 0 {
		return "", false, fmt.Errorf("missing children: iked negotiates a Child SA with every IKE SA")
	}
	if len(children.Keys()) > 1 {
		return "", false, fmt.Errorf("unsupported option: children (iked negotiates one CHILD_SA per connection; got %d)", len(children.Keys()))
	}
	name := children.Keys()[0]
	ch, ok := children.Sub(name)
	if !ok {
		return "", false, fmt.Errorf("invalid section: %s", name)
	}
	c := b.conn
	c.Mode, c.RekeyTime = ike.ModeTunnel, config.DefaultRekeyTime
	start := false
	for _, k := range ch.Keys() {
		v, _ := ch.Get(k)
		var err error
		switch k {
		case "local_ts", "remote_ts":
			var ts []wire.TrafficSelector
			ts, err = trafficSelectors(ch, k)
			if k == "local_ts" {
				c.LocalTS = ts
			} else {
				c.RemoteTS = ts
			}
		case "esp_proposals":
			c.ESPProposals, err = proposals(ch, k, transform.ParseESPProposal, config.DefaultESPProposals())
		case "ah_proposals":
			return "", false, fmt.Errorf("unsupported option: ah_proposals (iked negotiates ESP)")
		case "mode":
			switch v {
			case "tunnel":
				c.Mode = ike.ModeTunnel
			case "transport":
				c.Mode = ike.ModeTransport
			default:
				err = fmt.Errorf("iked supports tunnel and transport")
			}
		case "start_action":
			switch v {
			case "none", "clear":
			case "start", "restart":
				start = true
			default:
				err = fmt.Errorf("iked supports none and start (trap policies come from its IPsec policy)")
			}
		case "dpd_action":
			switch v {
			case "clear", "none":
				c.DPDAction = ike.DPDClear
			case "restart", "start":
				c.DPDAction = ike.DPDRestart
			case "trap", "route":
				c.DPDAction = ike.DPDHold
			default:
				err = fmt.Errorf("%q is not clear, restart or trap", v)
			}
		case "close_action":
			if v != "none" && v != "clear" {
				err = fmt.Errorf("iked supports close_action = none only")
			}
		case "rekey_time":
			c.RekeyTime, err = parseTime(v)
		case "rekey_bytes":
			c.RekeyBytes, err = parseBytes(v)
		case "life_bytes":
			c.LifeBytes, err = parseBytes(v)
		case "life_time", "rand_time", "rand_bytes", "rekey_packets", "life_packets", "rand_packets", "updown",
			"hostaccess", "policies", "policies_fwd_out", "replay_window", "ipcomp", "inactivity", "reqid", "mark_in",
			"mark_in_sa", "mark_out", "set_mark_in", "set_mark_out", "tfc_padding", "priority", "interface",
			"hw_offload", "sha256_96", "copy_df", "copy_ecn", "copy_dscp", "if_id_in", "if_id_out", "label", "label_mode":
			return "", false, fmt.Errorf("unsupported option: %s (in child %s)", k, name)
		default:
			return "", false, fmt.Errorf("unknown option: %s", k)
		}
		if err != nil {
			return "", false, fmt.Errorf("invalid value for: %s (%v)", k, err)
		}
	}
	if len(c.ESPProposals) == 0 {
		c.ESPProposals, _ = proposals(nil, "", transform.ParseESPProposal, config.DefaultESPProposals())
	}
	return name, start, nil
}

// trafficSelectors reads a selector list; "dynamic" (the IKE address)
// is iked's default and leaves the list empty.
func trafficSelectors(m *Message, k string) ([]wire.TrafficSelector, error) {
	l, ok := m.List(k)
	if !ok {
		v, _ := m.Get(k)
		l = []string{v}
	}
	var out []wire.TrafficSelector
	for _, s := range l {
		if s == "dynamic" || s == "%dynamic" {
			if len(l) > 1 {
				return nil, fmt.Errorf("dynamic mixed with other selectors")
			}
			return nil, nil
		}
		ts, err := ike.ParseTrafficSelector(strings.ReplaceAll(s, "..", "-"))
		if err != nil {
			return nil, err
		}
		out = append(out, ts)
	}
	return out, nil
}
