package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// Load reads and parses the configuration file at path. Relative paths in
// the file (such as a PSK file) are resolved against path's directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path) // #nosec G304 -- the configuration file the administrator names on the command line
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &Error{File: path, Msg: "cannot read configuration: " + err.Error()}
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error()}
	}
	cfg, err := Parse(data, path, dir)
	if err == nil {
		warnReadableSecrets(cfg, path)
	}
	return cfg, err
}

// Parse parses a configuration. filename prefixes error messages; baseDir
// resolves relative paths in the file (such as a PSK file; "" means the
// working directory). The error is an *Error, or several joined with
// errors.Join, the first being the earliest problem found.
func Parse(data []byte, filename, baseDir string) (*Config, error) {
	w := &walker{file: filename}
	cfg := &Config{
		File:              filename,
		Listen:            DefaultListen(),
		ControlSocket:     DefaultControlSocket,
		ControlSocketGID:  -1,
		Log:               Log{Format: DefaultLogFormat, Level: DefaultLogLevel},
		Backend:           BackendAuto,
		MetricsPerSALimit: DefaultMetricsPerSALimit,
		IKE: IKE{
			CookieThreshold:   DefaultCookieThreshold,
			HalfOpenTimeout:   DefaultHalfOpenTimeout,
			RetransmitTimeout: DefaultRetransmitTimeout,
			RetransmitBase:    DefaultRetransmitBase,
			RetransmitTries:   DefaultRetransmitTries,
			Fragmentation:     true,
			FragmentSize:      DefaultFragmentSize,
			NATKeepalive:      DefaultNATKeepalive,
			MaxMessageSize:    DefaultMaxMessageSize,
			HalfOpenPerPeer:   DefaultHalfOpenPerPeer,
			AuthFailureLimit:  DefaultAuthFailureLimit,
			AuthFailureWindow: DefaultAuthFailureWindow,
		},
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case err == io.EOF:
		// An empty file (or only comments): nothing to do.
		w.checkSomethingToDo(cfg, nil, false)
		return nil, w.errs[0]
	case err != nil:
		return nil, w.syntaxError(err, data)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == io.EOF:
	case err != nil:
		return nil, w.syntaxError(err, data)
	default:
		return nil, w.newError(&extra, "only one YAML document is allowed (found a second \"---\")")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	w.top(root, cfg, baseDir)
	// Report in file order; within a line, in the order found.
	sort.SliceStable(w.errs, func(i, j int) bool { return errLine(w.errs[i]) < errLine(w.errs[j]) })
	switch len(w.errs) {
	case 0:
		cfg.Warnings, cfg.secretLine = w.warns, w.secretLine
		return cfg, nil
	case 1:
		return nil, w.errs[0]
	}
	return nil, errors.Join(w.errs...)
}

// errLine returns the line of an *Error, or 0.
func errLine(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Line
	}
	return 0
}

// yamlErrorRE splits yaml.v3's syntax errors, "yaml: line 3: message".
var yamlErrorRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlParserProblems are the problems reported by yaml.v3's parser (as
// opposed to its scanner), whose line numbers it reports 0-based.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// unknownAnchorRE matches yaml.v3's error for an undefined alias.
var unknownAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// syntaxError converts a YAML syntax error to an *Error, correcting the
// line where yaml.v3 gets it wrong or omits it.
func (w *walker) syntaxError(err error, data []byte) *Error {
	msg := err.Error()
	line := 0
	if m := yamlErrorRE.FindStringSubmatch(msg); m != nil {
		if m[1] != "" {
			line, _ = strconv.Atoi(m[1])
		}
		msg = m[2]
	}
	lines := strings.Split(string(data), "\n")
	switch {
	case yamlParserProblems[msg]:
		line++
	case strings.Contains(msg, "tab character"):
		// The scanner reports where the scalar started; point at the
		// first line indented with a tab instead.
		for i, l := range lines {
			indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
			if strings.Contains(indent, "\t") && strings.TrimSpace(l) != "" {
				line, msg = i+1, msg+" (indent with spaces, not tabs)"
				break
			}
		}
	case unknownAnchorRE.MatchString(msg):
		name := unknownAnchorRE.FindStringSubmatch(msg)[1]
		for i, l := range lines {
			if strings.Contains(l, "*"+name) {
				line = i + 1
				break
			}
		}
	}
	if n := len(strings.Split(strings.TrimRight(string(data), "\n"), "\n")); line > n {
		line = n // the end of the stream is after the last line
	}
	if line == 0 {
		line = 1 // yaml.v3 omits the line when it is the first one
	}
	return &Error{File: w.file, Line: line, Msg: "invalid YAML: " + msg}
}

// topKeys are the keys of the top-level mapping.
var topKeys = []string{"listen", "control_socket", "control_socket_group", "control_socket_mode", "vici_socket", "metrics_listen", "metrics_per_sa_limit", "log", "backend", "userspace", "key_log", "ike", "connections", "authentication", "policy", "policies", "filter_lists"}

// connInfo keeps the nodes of a connection needed by checks that span the
// whole file.
type connInfo struct {
	local *yaml.Node
}

// top decodes the top-level mapping into cfg.
func (w *walker) top(root *yaml.Node, cfg *Config, baseDir string) {
	pairs, ok := w.mapping(root, "configuration", "", topKeys, true)
	if !ok {
		return
	}
	var listenNode, connectionsNode, modeNode *yaml.Node
	var infos []connInfo
	var refs policyRefs
	var authNode *yaml.Node
	for _, p := range pairs {
		v := p.vNode
		switch p.key {
		case "authentication":
			authNode = v
		case "policy":
			refs.section = v
		case "policies":
			refs.policies = v
		case "filter_lists":
			refs.lists = v
		case "listen":
			if l, ok := w.listen(v); ok {
				cfg.Listen, listenNode = l, v
			}
		case "control_socket":
			if s, ok := w.str(v, p.key); ok {
				if s == "" {
					w.errorf(v, "control_socket: empty path (expected the path of a Unix socket)")
				} else {
					cfg.ControlSocket = s
				}
			}
		case "vici_socket":
			if s, ok := w.str(v, p.key); ok {
				if s == "" {
					w.errorf(v, "vici_socket: empty path (expected the path of a Unix socket, e.g. /run/iked/charon.vici; omit the key to turn VICI off)")
				} else {
					cfg.ViciSocket = s
				}
			}
		case "metrics_listen":
			if s, ok := w.str(v, p.key); ok {
				if msg := checkTCPAddr(s); msg != "" {
					w.errorf(v, "metrics_listen: %q: %s", s, msg)
				} else {
					cfg.MetricsListen = s
				}
			}
		case "metrics_per_sa_limit":
			if n, ok := w.integer(v, p.key, 0, 10_000_000); ok {
				cfg.MetricsPerSALimit = int(n)
			}
		case "log":
			w.log(v, &cfg.Log)
		case "backend":
			if s, ok := w.oneOf(v, p.key, BackendAuto, BackendMemory, BackendUserspace, BackendXFRM); ok {
				cfg.Backend = s
			}
		case "userspace":
			w.userspace(v, &cfg.Userspace)
		case "key_log":
			if s, ok := w.str(v, p.key); ok {
				cfg.KeyLog = s
				w.checkKeyLog(v, s)
			}
		case "control_socket_group":
			w.controlSocketGroup(v, cfg)
		case "control_socket_mode":
			w.controlSocketMode(v, cfg)
			modeNode = v
		case "ike":
			w.ike(v, &cfg.IKE)
		case "connections":
			cfg.Connections, infos = w.connections(v, baseDir)
			connectionsNode = v
		}
	}
	if authNode != nil {
		w.authentication(authNode, cfg, baseDir)
	}
	w.policy(refs, cfg)
	w.checkLocalListen(cfg, listenNode, infos)
	w.finishControlSocket(cfg, modeNode)
	w.checkSomethingToDo(cfg, connectionsNode, refs.section != nil || cfg.ViciSocket != "")
}

// listen decodes the list of UDP addresses to bind.
func (w *walker) listen(n *yaml.Node) ([]netip.AddrPort, bool) {
	strs, nodes, ok := w.strList(n, "listen")
	if !ok {
		return nil, false
	}
	if len(strs) == 0 {
		w.errorf(n, "listen: empty list (expected at least one address such as \"0.0.0.0:500\"; omit the key for the defaults)")
		return nil, false
	}
	var out []netip.AddrPort
	seen := make(map[netip.AddrPort]int)
	for i, s := range strs {
		ap, msg := parseAddrPort(s, -1, true)
		if msg != "" {
			w.errorf(nodes[i], "listen: %q: %s", s, msg)
			ok = false
			continue
		}
		if first, dup := seen[ap]; dup && ap.Port() != 0 {
			w.errorf(nodes[i], "listen: %q listed twice (first at line %d)", s, first)
			ok = false
			continue
		}
		seen[ap] = nodes[i].Line
		out = append(out, ap)
	}
	return out, ok
}

// parseAddrPort parses "IP:port" or "[IPv6]:port"; with defaultPort >= 0
// a bare IP is accepted too. It returns a message saying what is wrong,
// or "".
func parseAddrPort(s string, defaultPort int, allowZeroPort bool) (netip.AddrPort, string) {
	if a, err := netip.ParseAddr(s); err == nil {
		if defaultPort < 0 {
			return netip.AddrPort{}, "missing port (expected IP:port or [IPv6]:port)"
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(defaultPort)), ""
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if defaultPort < 0 {
			return netip.AddrPort{}, "expected IP:port or [IPv6]:port"
		}
		return netip.AddrPort{}, "expected an IP address, IP:port, [IPv6]:port"
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Sprintf("%q is not an IP address (host names are not supported)", host)
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (pn == 0 && !allowZeroPort) {
		lo := 1
		if allowZeroPort {
			lo = 0
		}
		return netip.AddrPort{}, fmt.Sprintf("invalid port (expected %d to 65535)", lo)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(pn)), ""
}

// checkTCPAddr checks a "host:port" listen address for the metrics
// endpoint; it returns what is wrong, or "".
func checkTCPAddr(s string) string {
	if s == "" {
		return ""
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return "expected host:port, e.g. 127.0.0.1:9764"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "invalid port (expected 0 to 65535)"
	}
	return ""
}

// logKeys are the keys of the "log" section.
var logKeys = []string{"format", "level"}

// log decodes the "log" section.
func (w *walker) log(n *yaml.Node, l *Log) {
	pairs, _ := w.mapping(n, "log", "in log", logKeys, false)
	for _, p := range pairs {
		switch p.key {
		case "format":
			if s, ok := w.oneOf(p.vNode, "log.format", "text", "json", LogFormatJournal); ok {
				l.Format = s
			}
		case "level":
			if s, ok := w.oneOf(p.vNode, "log.level", "debug", "info", "warn", "error"); ok {
				l.Level = s
			}
		}
	}
}

// ikeKeys are the keys of the "ike" section.
var ikeKeys = []string{"cookie_threshold", "half_open_timeout", "retransmit_timeout", "retransmit_base", "retransmit_tries", "fragmentation", "fragment_size", "nat_keepalive", "max_message_size", "half_open_per_peer", "auth_failure_limit", "auth_failure_window"}

// ike decodes the "ike" section.
func (w *walker) ike(n *yaml.Node, c *IKE) {
	pairs, _ := w.mapping(n, "ike", "in ike", ikeKeys, false)
	for _, p := range pairs {
		name := "ike." + p.key
		switch p.key {
		case "cookie_threshold":
			if v, ok := w.integer(p.vNode, name, 0, 1<<31-1); ok {
				c.CookieThreshold = int(v)
			}
		case "half_open_timeout":
			if d, ok := w.duration(p.vNode, name); ok {
				c.HalfOpenTimeout = d
			}
		case "retransmit_timeout":
			if d, ok := w.duration(p.vNode, name); ok {
				c.RetransmitTimeout = d
			}
		case "retransmit_base":
			if f, ok := w.number(p.vNode, name, 1, 10); ok {
				c.RetransmitBase = f
			}
		case "retransmit_tries":
			if v, ok := w.integer(p.vNode, name, 0, 100); ok {
				c.RetransmitTries = int(v)
			}
		case "fragmentation":
			if s, ok := w.oneOf(p.vNode, name, "true", "false"); ok {
				c.Fragmentation = s == "true"
			}
		case "nat_keepalive":
			if d, ok := w.duration(p.vNode, name); ok {
				c.NATKeepalive = d
			}
		case "fragment_size":
			if v, ok := w.integer(p.vNode, name, 576, 65535); ok {
				c.FragmentSize = int(v)
			}
		case "max_message_size":
			// §2: every implementation must take 1280 octets; UDP carries
			// no more than 65507.
			if v, ok := w.integer(p.vNode, name, 1280, 65507); ok {
				c.MaxMessageSize = int(v)
			}
		case "half_open_per_peer":
			if v, ok := w.integer(p.vNode, name, 0, 1<<20); ok {
				c.HalfOpenPerPeer = int(v)
			}
		case "auth_failure_limit":
			if v, ok := w.integer(p.vNode, name, 0, 1<<20); ok {
				c.AuthFailureLimit = int(v)
			}
		case "auth_failure_window":
			if d, ok := w.duration(p.vNode, name); ok {
				c.AuthFailureWindow = d
			}
		}
	}
}

// connNameRE is the syntax of connection names.
var connNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// connections decodes the "connections" mapping.
func (w *walker) connections(n *yaml.Node, baseDir string) ([]Connection, []connInfo) {
	pairs, _ := w.mapping(n, "connections", "in connections", nil, true)
	var conns []Connection
	var infos []connInfo
	for _, p := range pairs {
		if !connNameRE.MatchString(p.key) {
			w.errorf(p.kNode, "connection name %q: only letters, digits, '.', '_' and '-' are allowed", p.key)
			continue
		}
		c, info, ok := w.connection(p, baseDir)
		if ok {
			conns = append(conns, c)
			infos = append(infos, info)
		}
	}
	return conns, infos
}

// connKeys are the keys of a connection.
var connKeys = []string{"local", "remote", "local_id", "remote_id", "auth", "ike_proposals", "esp_proposals", "local_ts", "remote_ts", "mode", "start_action", "force_encap", "rekey_time", "ike_rekey_time", "reauth_time", "rekey_bytes", "life_bytes", "dpd_delay", "dpd_action", "updown", "updown_timeout", "interface", "version", "allow_legacy", "childless", "require_pq"}

// connection decodes one connection.
func (w *walker) connection(p pair, baseDir string) (Connection, connInfo, bool) {
	errsBefore := len(w.errs)
	c := Connection{Name: p.key, Line: p.kNode.Line, Mode: ModeTunnel, StartAction: StartNone, Childless: ChildlessAllow,
		RekeyTime: DefaultRekeyTime, IKERekeyTime: DefaultIKERekeyTime, DPDDelay: DefaultDPDDelay,
		Updown: Updown{Timeout: DefaultUpdownTimeout}, Fingerprint: connFingerprint(p.vNode)}
	var info connInfo
	context := fmt.Sprintf("in connection %q", p.key)
	pairs, ok := w.mapping(p.vNode, fmt.Sprintf("connection %q", p.key), context, connKeys, false)
	if !ok {
		return c, info, false
	}
	nodes := make(map[string]*yaml.Node)
	var localIDSet bool
	var remoteTSNodes, localTSNodes []*yaml.Node
	for _, kv := range pairs {
		v := kv.vNode
		nodes[kv.key] = v
		switch kv.key {
		case "local":
			s, ok := w.str(v, kv.key)
			if !ok {
				break
			}
			if s == "%any" {
				break
			}
			a, err := netip.ParseAddr(s)
			switch {
			case err != nil:
				w.errorf(v, "local: %q is not an IP address (expected an IP address or %%any; the local port comes from listen)", s)
			case a.IsUnspecified():
				w.errorf(v, "local: %q: write %%any (or omit local) for any address", s)
			default:
				c.Local = a.Unmap()
				info.local = v
			}
		case "remote":
			s, ok := w.str(v, kv.key)
			if !ok || s == "%any" {
				break
			}
			ap, msg := parseAddrPort(s, DefaultIKEPort, false)
			if msg != "" {
				// Not an address: a DNS name, resolved at initiation.
				host, port, hmsg := parseRemoteHost(s)
				if hmsg == "" {
					c.RemoteHost, c.Remote = host, netip.AddrPortFrom(netip.Addr{}, port)
					break
				}
				msg = hmsg
			}
			switch {
			case msg != "":
				if strings.HasPrefix(msg, "expected") {
					msg += " or %any"
				}
				w.errorf(v, "remote: %q: %s", s, msg)
			case ap.Addr().IsUnspecified():
				w.errorf(v, "remote: %q: write %%any for any peer", s)
			default:
				c.Remote = ap
			}
		case "local_id":
			s, ok := w.str(v, kv.key)
			if !ok {
				break
			}
			if s == "%any" {
				w.errorf(v, "local_id: cannot be %%any (expected an identity such as fqdn:host.example)")
				break
			}
			if id, err := ike.ParseIdentity(s); err != nil {
				w.errorf(v, "local_id: %v", err)
			} else {
				c.LocalID, localIDSet = id, true
			}
		case "remote_id":
			s, ok := w.str(v, kv.key)
			if !ok || s == "%any" {
				break
			}
			if id, err := ike.ParseIdentity(s); err != nil {
				w.errorf(v, "remote_id: %v", err)
			} else {
				c.RemoteID = id
			}
		case "auth":
			c.Auth, c.AuthName = w.auth(kv, baseDir)
		case "ike_proposals", "esp_proposals":
			// Read once the version is known (versionProposals).
		case "local_ts":
			c.LocalTS, localTSNodes = w.selectors(v, kv.key)
		case "remote_ts":
			c.RemoteTS, remoteTSNodes = w.selectors(v, kv.key)
		case "mode":
			if s, ok := w.oneOf(v, kv.key, ModeTunnel, ModeTransport); ok {
				c.Mode = s
			}
		case "start_action":
			if s, ok := w.oneOf(v, kv.key, StartNone, StartInitiate); ok {
				c.StartAction = s
			}
		case "rekey_time", "ike_rekey_time", "reauth_time", "dpd_delay":
			if d, ok := w.durationOrZero(v, kv.key); ok {
				switch kv.key {
				case "rekey_time":
					c.RekeyTime = d
				case "ike_rekey_time":
					c.IKERekeyTime = d
				case "reauth_time":
					c.ReauthTime = d
				default:
					c.DPDDelay = d
				}
			}
		case "rekey_bytes", "life_bytes":
			if v, ok := w.integer(v, kv.key, 0, 1<<62); ok {
				if kv.key == "rekey_bytes" {
					c.RekeyBytes = uint64(v)
				} else {
					c.LifeBytes = uint64(v)
				}
			}
		case "dpd_action":
			if s, ok := w.oneOf(v, kv.key, "clear", "restart", "hold"); ok {
				c.DPDAction = s
			}
		case "force_encap":
			if s, ok := w.oneOf(v, kv.key, "true", "false"); ok {
				c.ForceEncap = s == "true"
			}
		case "require_pq":
			if s, ok := w.oneOf(v, kv.key, "true", "false"); ok {
				c.RequirePQ = s == "true"
			}
		case "version":
			if s, ok := w.oneOf(v, kv.key, VersionIKEv2, VersionIKEv1, VersionAuto); ok {
				c.Version = s
			}
		case "allow_legacy":
			if s, ok := w.oneOf(v, kv.key, "true", "false"); ok {
				c.AllowLegacy = s == "true"
			}
		case "updown":
			if s, ok := w.updown(v, baseDir); ok {
				c.Updown.Script = s
			}
		case "updown_timeout":
			if d, ok := w.duration(v, kv.key); ok {
				c.Updown.Timeout = d
			}
		case "interface":
			if n, ok := w.integer(v, kv.key, 1, 1<<32-1); ok {
				c.Interface = uint32(n)
			}
		case "childless":
			if s, ok := w.oneOf(v, kv.key, ChildlessAllow, ChildlessNever, ChildlessPrefer, ChildlessForce); ok {
				c.Childless = s
			}
		}
	}
	if c.Version == "" {
		c.Version = VersionIKEv2
	}
	w.versionProposals(&c, nodes)
	// Missing keys are reported only when nothing else is wrong: a
	// misspelt key is the better message.
	clean := len(w.errs) == errsBefore
	if nodes["remote"] == nil && clean {
		w.errorf(p.kNode, "connection %q: missing key \"remote\" (the peer's IP address[:port], or %%any to accept any peer)", p.key)
	}
	if nodes["auth"] == nil && clean {
		w.errorf(p.kNode, "connection %q: missing key \"auth\" (e.g. auth: {method: psk, file: secret.txt}; methods: %s)", p.key, strings.Join(auth.Names(), ", "))
	}
	if !localIDSet && c.Local.IsValid() {
		// A method that proves a particular identity (a certificate's
		// subject) supplies the default itself, through the engine.
		if m, ok := c.Auth.(auth.ProvenIdentity); !ok || m.ProvenIdentity() == nil {
			c.LocalID = ike.IdentityFromAddr(c.Local)
		}
	}
	if c.DPDAction == "" {
		// A connection this side brings up is brought up again.
		c.DPDAction = "clear"
		if c.StartAction == StartInitiate {
			c.DPDAction = "restart"
		}
	}

	// Checks spanning several keys, made only when the keys were valid.
	if len(w.errs) == errsBefore {
		if c.StartAction == StartInitiate && c.RemoteIsAny() {
			w.errorf(nodes["start_action"], "start_action: initiate needs a remote address, but remote is %%any")
		}
		if c.Local.IsValid() && c.Remote.Addr().IsValid() && c.Local.Is4() != c.Remote.Addr().Is4() {
			w.errorf(nodes["remote"], "remote: %s and local %s are of different address families", c.Remote.Addr(), c.Local)
		}
		if c.Mode == ModeTransport {
			w.checkHostSelectors("local_ts", c.LocalTS, localTSNodes)
			w.checkHostSelectors("remote_ts", c.RemoteTS, remoteTSNodes)
		}
		if len(c.LocalTS) > 0 && len(c.RemoteTS) > 0 && !shareFamily(c.LocalTS, c.RemoteTS) {
			w.errorf(nodes["remote_ts"], "remote_ts: no address family in common with local_ts (an IPv4 selector needs an IPv4 peer selector, IPv6 likewise)")
		}
		if c.RequirePQ && c.SpeaksIKEv1() {
			w.errorf(nodes["require_pq"], "require_pq: needs version ikev2 (IKEv1 has no post-quantum key exchange), and this connection's is %s", c.Version)
		} else if c.RequirePQ && !anyOffersPQ(c.IKEProposals) {
			at := nodes["ike_proposals"]
			if at == nil {
				at = nodes["require_pq"]
			}
			w.errorf(at, "require_pq: no IKE proposal has a post-quantum key exchange (add one, e.g. aes256gcm16-prfsha384-x25519-ke1_mlkem768)")
		}
	}
	return c, info, len(w.errs) == errsBefore
}

// anyOffersPQ reports whether some proposal can negotiate a post-quantum
// key exchange (ML-KEM).
func anyOffersPQ(props []transform.Proposal) bool {
	for i := range props {
		if props[i].OffersPostQuantum() {
			return true
		}
	}
	return false
}

// userspaceKeys are the keys of the "userspace" section.
var userspaceKeys = []string{"tun", "mtu", "addresses", "replay_window", "raw_ipv4", "offload"}

// userspace reads the userspace data plane's section.
func (w *walker) userspace(n *yaml.Node, u *Userspace) {
	pairs, _ := w.mapping(n, "userspace", "in userspace", userspaceKeys, false)
	for _, p := range pairs {
		name := "userspace." + p.key
		switch p.key {
		case "tun":
			if s, ok := w.str(p.vNode, name); ok {
				if len(s) == 0 || len(s) > 15 {
					w.errorf(p.vNode, "%s: %q is not a valid interface name (1 to 15 characters)", name, s)
				} else {
					u.TUN = s
				}
			}
		case "mtu":
			if v, ok := w.integer(p.vNode, name, 576, 9000); ok {
				u.MTU = int(v)
			}
		case "addresses":
			if list, nodes, ok := w.strList(p.vNode, name); ok {
				for i, s := range list {
					pfx, err := netip.ParsePrefix(s)
					if err != nil {
						if a, aerr := netip.ParseAddr(s); aerr == nil {
							pfx, err = netip.PrefixFrom(a, a.BitLen()), nil
						}
					}
					if err != nil {
						w.errorf(nodes[i], "%s: %q is not an address or prefix", name, s)
						continue
					}
					u.Addresses = append(u.Addresses, pfx)
				}
			}
		case "replay_window":
			if v, ok := w.integer(p.vNode, name, 0, 1<<20); ok {
				u.ReplayWindow = uint32(v)
			}
		case "raw_ipv4":
			if s, ok := w.oneOf(p.vNode, name, "true", "false"); ok {
				u.RawIPv4 = s == "true"
			}
		case "offload":
			if s, ok := w.oneOf(p.vNode, name, "true", "false"); ok {
				u.NoOffload = s == "false"
			}
		}
	}
}

// auth builds the connection's auth method from its section, kv.
func (w *walker) auth(kv pair, baseDir string) (auth.Method, string) {
	n := kv.vNode
	errsBefore := len(w.errs)
	pairs, ok := w.mapping(n, "auth", "in auth", nil, false)
	if !ok || len(w.errs) != errsBefore {
		return nil, ""
	}
	var methodNode *yaml.Node
	var others []pair
	for _, p := range pairs {
		if p.key == "method" {
			methodNode = p.vNode
		} else {
			others = append(others, p)
		}
	}
	names := strings.Join(auth.Names(), ", ")
	if methodNode == nil {
		w.errorf(kv.kNode, "auth: missing key \"method\" (expected one of: %s)", names)
		return nil, ""
	}
	name, ok := w.str(methodNode, "auth.method")
	if !ok {
		return nil, ""
	}
	factory, ok := auth.Lookup(name)
	if !ok {
		w.errorf(methodNode, "auth: unknown method %q (expected one of: %s)", name, names)
		return nil, ""
	}
	decoded := false
	decode := func(into any) error {
		decoded = true
		return w.decodeStrict(n, "auth", into, []string{"method"})
	}
	if !w.checkAuthOptions(name, others, baseDir) {
		return nil, ""
	}
	m, err := factory(decode, baseDir)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			w.errs = append(w.errs, err) // already positioned by decode
			return nil, ""
		}
		// Point at the one option if there is only one (psk's secret or
		// file), else at the auth key.
		at := kv.kNode
		if len(others) == 1 {
			at = others[0].vNode
		}
		w.errorf(at, "auth: %v", err)
		return nil, ""
	}
	if !decoded && len(others) > 0 {
		w.errorf(others[0].kNode, "auth: unknown key %q (method %q takes no options)", others[0].key, name)
		return nil, ""
	}
	if m == nil {
		w.errorf(methodNode, "auth: method %q returned no method", name)
		return nil, ""
	}
	w.warnWeakPSK(name, others, baseDir)
	return m, name
}

// proposals parses a list of proposal strings from n, or defaults when n
// is nil.
func (w *walker) proposals(n *yaml.Node, key string, parse func(string) (transform.Proposal, error), defaults ...string) ([]string, []transform.Proposal) {
	strs, nodes := defaults, []*yaml.Node(nil)
	if n != nil {
		var ok bool
		strs, nodes, ok = w.strList(n, key)
		if !ok {
			return nil, nil
		}
		if len(strs) == 0 {
			w.errorf(n, "%s: empty list (expected at least one proposal; omit the key for the defaults)", key)
			return nil, nil
		}
	}
	var out []transform.Proposal
	for i, s := range strs {
		at := n
		if nodes != nil {
			at = nodes[i]
		}
		p, err := parse(s)
		if err != nil {
			w.errorf(at, "%s: %v", key, err)
			continue
		}
		out = append(out, p)
	}
	return strs, out
}

// deprecated warns of the deprecated algorithms (SHA-1) that an IKEv2
// connection's proposals name: allowed because named (iked's defaults
// never hold them), warned about so that they do not stay by accident. (An
// IKEv1 or auto connection's are the legacy ones, version.go.)
func (w *walker) deprecated(n *yaml.Node, key string, strs []string, ps []transform.Proposal) {
	if n == nil || len(strs) != len(ps) {
		return // the defaults, or a list with errors reported already
	}
	for i, p := range ps {
		old := p.LegacyAlgorithms()
		if len(old) == 0 {
			continue
		}
		at := n
		if n.Kind == yaml.SequenceNode && i < len(n.Content) {
			at = n.Content[i]
		}
		advice := ""
		if i == 0 {
			advice = "; put a proposal without it first"
		}
		w.warnf(at, "%s: %q uses the deprecated %s (RFC 8247, RFC 8221: only for peers that offer nothing better)%s", key, strs[i], strings.Join(old, ", "), advice)
	}
}

// selectors parses a list of traffic selectors.
func (w *walker) selectors(n *yaml.Node, key string) ([]wire.TrafficSelector, []*yaml.Node) {
	strs, nodes, ok := w.strList(n, key)
	if !ok {
		return nil, nil
	}
	if len(strs) == 0 {
		w.errorf(n, "%s: empty list (expected at least one traffic selector; omit the key for the default)", key)
		return nil, nil
	}
	var out []wire.TrafficSelector
	for i, s := range strs {
		ts, err := ike.ParseTrafficSelector(s)
		if err != nil {
			w.errorf(nodes[i], "%s: %v", key, err)
			continue
		}
		out = append(out, ts)
	}
	return out, nodes
}

// checkHostSelectors refuses selectors wider than one address (transport
// mode).
func (w *walker) checkHostSelectors(key string, list []wire.TrafficSelector, nodes []*yaml.Node) {
	for i, ts := range list {
		if ts.StartAddr != ts.EndAddr {
			w.errorf(nodes[i], "%s: %q covers more than one address, but mode transport protects only the peers' own traffic (use a single address or mode tunnel)", key, ike.FormatTrafficSelector(ts))
		}
	}
}

// shareFamily reports whether a and b have an address family in common.
func shareFamily(a, b []wire.TrafficSelector) bool {
	for _, x := range a {
		for _, y := range b {
			if x.Type == y.Type {
				return true
			}
		}
	}
	return false
}

// checkLocalListen refuses a connection's local address that no listen
// address covers.
func (w *walker) checkLocalListen(cfg *Config, listenNode *yaml.Node, infos []connInfo) {
	for i, c := range cfg.Connections {
		if !c.Local.IsValid() || infos[i].local == nil {
			continue
		}
		covered := false
		for _, l := range cfg.Listen {
			a := l.Addr()
			if a == c.Local || (a.IsUnspecified() && a.Is4() == c.Local.Is4()) {
				covered = true
				break
			}
		}
		if !covered {
			var ls []string
			for _, l := range cfg.Listen {
				ls = append(ls, l.String())
			}
			where := ""
			if listenNode != nil {
				where = fmt.Sprintf(" at line %d", listenNode.Line)
			}
			w.errorf(infos[i].local, "local: %s is not covered by any listen address (listen%s: %s)", c.Local, where, strings.Join(ls, ", "))
		}
	}
}
