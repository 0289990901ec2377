package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"github.com/iked/iked/auth"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The checks that refuse set-ups which would run but are weak or not what
// the administrator meant (docs/security.md): secret files others can
// read, a certificate that is not a CA given as a trust anchor, a PSK that
// YAML reads as a number, a file with nothing to do; and the warnings for
// set-ups that are allowed but worth a second look.

// Warning is a weakness in a configuration that loads: --check-config
// prints it and the daemon logs it at start and on reload.
type Warning struct {
	// File is the file name as given to Load or Parse.
	File string
	// Line is the 1-based line of the YAML node concerned; 0 when unknown.
	Line int
	// Msg says what is weak and what to do about it.
	Msg string
}

// String formats the warning as "FILE:LINE: message".
func (w Warning) String() string { return (&Error{File: w.File, Line: w.Line, Msg: w.Msg}).Error() }

// warnf records a warning at n's line. Like errors, warnings never quote a
// secret.
func (w *walker) warnf(n *yaml.Node, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	w.warns = append(w.warns, Warning{File: w.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// RecommendedPSKLength is the PSK length, in octets, below which a key is
// accepted with a warning. auth/psk refuses keys shorter than 8 octets; 20
// random characters from a 64-symbol alphabet carry 120 bits, above the
// 112 bits NIST asks of symmetric keys, which a shorter typed passphrase
// does not reach (RFC 7296 §2.15 warns that a PSK is only as strong as its
// entropy).
const RecommendedPSKLength = 20

// secretFileKeys are, per auth method, the options that name files holding
// a secret: refused when group or others may access them, the rule
// auth/cert applies to private keys (as ssh does to its keys).
var secretFileKeys = map[string][]string{
	"psk":      {"file"},
	"kerberos": {"keytab"},
	"cert":     {"key"},
}

// fileKeys are, per auth method, the options that name files (a path or a
// list of paths): each must be a regular file, so that a device or a pipe
// named by mistake (/dev/zero, /dev/stdin) is refused instead of read
// forever.
var fileKeys = map[string][]string{
	"psk":      {"file"},
	"kerberos": {"keytab", "krb5_conf"},
	"cert":     {"cert", "key", "ca", "intermediates", "crls"},
}

// secretFileWhat names a secret file in messages.
var secretFileWhat = map[string]string{"file": "pre-shared key file", "keytab": "keytab", "key": "private key"}

// checkSecretFile refuses path when group or others may access it. A file
// that does not exist or cannot be read is left to its user, which says
// so. what names the file ("keytab").
func (w *walker) checkSecretFile(n *yaml.Node, name, what, path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return true // the user of the file says what is wrong with it
	}
	if err := auth.CheckSecretFile(what, path, fi); err != nil {
		w.errorf(n, "%s: %v", name, err)
		return false
	}
	return true
}

// checkAuthOptions makes the security checks of an auth section before its
// method reads anything: secret files' modes, a PSK's YAML type, trust
// anchors that are CAs. It returns false when it recorded an error.
func (w *walker) checkAuthOptions(method string, opts []pair, baseDir string) bool {
	ok := true
	for _, p := range opts {
		n := deref(p.vNode)
		if contains(fileKeys[method], p.key) && !w.checkRegularFiles(n, "auth."+p.key, baseDir) {
			ok = false
			continue
		}
		switch {
		case contains(secretFileKeys[method], p.key) && n.Kind == yaml.ScalarNode && n.Tag == tagStr && n.Value != "":
			ok = w.checkSecretFile(n, "auth."+p.key, secretFileWhat[p.key], resolvePath(baseDir, n.Value)) && ok
		case method == "psk" && p.key == "secret":
			ok = w.checkPSKType(n) && ok
			if w.secretLine == 0 {
				w.secretLine = n.Line
			}
		case method == "cert" && p.key == "ca" && n.Kind == yaml.SequenceNode:
			for _, e := range n.Content {
				if e = deref(e); e.Kind == yaml.ScalarNode && e.Tag == tagStr {
					ok = w.checkCAFile(e, resolvePath(baseDir, e.Value)) && ok
				}
			}
		}
	}
	return ok
}

// checkRegularFiles refuses a path (or a list of paths) that exists and is
// not a regular file (after symbolic links).
func (w *walker) checkRegularFiles(n *yaml.Node, name, baseDir string) bool {
	nodes := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		nodes = n.Content
	}
	ok := true
	for _, e := range nodes {
		if e = deref(e); e.Kind != yaml.ScalarNode || e.Tag != tagStr || e.Value == "" {
			continue
		}
		path := resolvePath(baseDir, e.Value)
		if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
			w.errorf(e, "%s: %s is not a regular file (%s)", name, path, fileKind(fi.Mode()))
			ok = false
		}
	}
	return ok
}

// fileKind names what a non-regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a plain file"
}

// checkPSKType refuses a PSK that YAML reads as something other than a
// string: written unquoted, 12345678 is a number and true a boolean, which
// a tool that rewrites the file may turn into another key (1e9, 0x10,
// 012345678), and which is short on entropy anyway. The message never
// quotes the value.
func (w *walker) checkPSKType(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		return true // the decoder says what it expected
	}
	switch n.Tag {
	case tagInt, tagFloat:
		w.errorf(n, "auth.secret: YAML reads this pre-shared key as a number; quote it (secret: \"…\") so that it is a string, and prefer a long random key")
		return false
	case tagBool:
		w.errorf(n, "auth.secret: YAML reads this pre-shared key as a boolean; quote it (secret: \"…\") so that it is a string, and prefer a long random key")
		return false
	}
	return true
}

// warnWeakPSK warns about a PSK shorter than RecommendedPSKLength, inline
// or in a file, once the method has accepted it.
func (w *walker) warnWeakPSK(method string, opts []pair, baseDir string) {
	if method != "psk" {
		return
	}
	for _, p := range opts {
		n := deref(p.vNode)
		if n.Kind != yaml.ScalarNode || n.Tag != tagStr {
			continue
		}
		length := -1
		switch p.key {
		case "secret":
			length = len(n.Value)
		case "file":
			// The key as auth/psk reads it: the content less trailing
			// line ends.
			b, err := os.ReadFile(resolvePath(baseDir, n.Value)) // #nosec G304 -- the configured PSK file, already read by auth/psk
			if err != nil {
				continue
			}
			length = len(strings.TrimRight(string(b), "\r\n"))
			clear(b)
		}
		if length >= 0 && length < RecommendedPSKLength {
			w.warnf(n, "auth.%s: the pre-shared key is %d characters long; use at least %d random characters (e.g. head -c 30 /dev/urandom | base64), or certificates or Kerberos", p.key, length, RecommendedPSKLength)
		}
	}
}

// checkCAFile refuses a trust anchor that is not a CA certificate: a
// leaf given as "ca" would make that one certificate trusted to sign
// others' certificates in the eyes of the administrator, while only a CA
// should be. A file that cannot be read or parsed is left to auth/cert.
func (w *walker) checkCAFile(n *yaml.Node, path string) bool {
	b, err := os.ReadFile(path) // #nosec G304 -- a configured trust anchor, read again by auth/cert
	if err != nil {
		return true
	}
	var certs []*x509.Certificate
	for rest := b; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return true
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return true
		}
		certs = append(certs, c)
	}
	for _, c := range certs {
		if why := notCA(c); why != "" {
			w.errorf(n, "auth.ca: %s: certificate %q is not a CA certificate (%s); ca lists the CAs that issue peers' certificates: give the issuing CA of %q instead", path, c.Subject.String(), why, c.Subject.String())
			return false
		}
	}
	return true
}

// notCA says why c cannot be a trust anchor, or "": RFC 5280 §4.2.1.9
// (basicConstraints cA) and §4.2.1.3 (keyCertSign when keyUsage is
// present).
func notCA(c *x509.Certificate) string {
	switch {
	case !c.BasicConstraintsValid:
		return "it has no basicConstraints extension"
	case !c.IsCA:
		return "its basicConstraints say CA:FALSE"
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return "its keyUsage lacks keyCertSign"
	}
	return ""
}

// resolvePath resolves p against baseDir as the auth methods do.
func resolvePath(baseDir, p string) string {
	if filepath.IsAbs(p) || baseDir == "" {
		return p
	}
	return filepath.Join(baseDir, p)
}

// warnReadableSecrets warns when the configuration file at path holds an
// inline PSK and group or others may read it. A warning, not an error:
// configuration files are commonly 0644, and refusing one that worked
// would stop a running set-up at its next restart.
func warnReadableSecrets(cfg *Config, path string) {
	if cfg.secretLine == 0 {
		return
	}
	fi, err := os.Stat(path)
	if err != nil {
		return
	}
	if mode := fi.Mode().Perm(); mode&0o077 != 0 {
		cfg.Warnings = append(cfg.Warnings, Warning{File: path, Line: cfg.secretLine, Msg: fmt.Sprintf(
			"this file holds a pre-shared key and group or others may read it (mode %04o): run chmod 600 %s, or move the key to a file of its own (auth: {method: psk, file: …})", mode, path)})
	}
}

// checkKeyLog refuses a key log that exists and is open to group or
// others: it holds every session key, and the daemon would otherwise only
// tighten its mode after others may have read it.
func (w *walker) checkKeyLog(n *yaml.Node, path string) {
	if path != "" {
		w.checkSecretFile(n, "key_log", "key log", path)
	}
}

// checkSomethingToDo refuses a file with neither connections nor a policy
// nor a VICI socket to load connections through, such as an empty file or
// one whose connections are all commented out: the daemon would start and
// silently do nothing. "connections: {}" says that is meant (a host that
// gets its connections later). Reported only when the file is otherwise
// valid.
func (w *walker) checkSomethingToDo(cfg *Config, connectionsNode *yaml.Node, elsewhere bool) {
	if len(w.errs) > 0 || len(cfg.Connections) > 0 || elsewhere {
		return
	}
	const how = `add connections, or a policy (policy: {assign: NAME}), or a vici_socket to load them with swanctl; to run with none on purpose, write "connections: {}"`
	switch n := deref(connectionsNode); {
	case n == nil:
		w.errs = append(w.errs, &Error{File: w.file, Msg: "nothing to do: no connections and no policy (" + how + ")"})
	case n.Kind == yaml.MappingNode && n.Style&yaml.FlowStyle != 0:
		// connections: {} — explicitly none.
	default:
		w.errorf(n, "connections: empty (%s)", how)
	}
}

// Control socket access (keys "control_socket_group", "control_socket_mode").
const (
	// ControlSocketPrivate is the default mode: the daemon's user only.
	ControlSocketPrivate fs.FileMode = 0o600
	// ControlSocketGroupMode is the mode with control_socket_group: its
	// members may connect (which takes write permission on the socket) and
	// run the read-only commands.
	ControlSocketGroupMode fs.FileMode = 0o660
)

// controlSocketGroup decodes "control_socket_group": a group name or a
// numeric GID, looked up now so that a typo is a file:line error.
func (w *walker) controlSocketGroup(n *yaml.Node, cfg *Config) {
	s, ok := w.str(n, "control_socket_group")
	if !ok {
		return
	}
	if s == "" {
		w.errorf(n, "control_socket_group: empty (expected a group name or a numeric GID)")
		return
	}
	if gid, err := strconv.ParseUint(s, 10, 31); err == nil {
		cfg.ControlSocketGroup, cfg.ControlSocketGID = s, int(gid)
		return
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		w.errorf(n, "control_socket_group: no group %q on this host (expected a group name or a numeric GID)", s)
		return
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		w.errorf(n, "control_socket_group: group %q has GID %q, not a number", s, g.Gid)
		return
	}
	cfg.ControlSocketGroup, cfg.ControlSocketGID = s, gid
}

// controlSocketMode decodes "control_socket_mode", written in octal like
// chmod's (0660, "0660", 0o660): 0600 or 0660. Others never get access:
// a monitoring user is given the group.
func (w *walker) controlSocketMode(n *yaml.Node, cfg *Config) {
	s, ok := w.str(n, "control_socket_mode")
	if !ok {
		return
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O"), 8, 32)
	if err != nil {
		w.errorf(n, "control_socket_mode: %q is not an octal mode (expected 0600 or 0660)", s)
		return
	}
	switch mode := fs.FileMode(v); mode {
	case ControlSocketPrivate, ControlSocketGroupMode:
		cfg.ControlSocketMode = mode
	default:
		why := "only 0600 (the daemon's user) and 0660 (and control_socket_group) are allowed"
		switch {
		case mode&0o007 != 0:
			why = "others must not reach the control socket: put the users that may read the daemon's state in control_socket_group and use 0660"
		case mode&0o060 == 0o040:
			why = "connecting to a socket needs write permission, so 0640 lets the group do nothing: use 0660"
		}
		w.errorf(n, "control_socket_mode: %04o: %s", mode, why)
	}
}

// finishControlSocket applies the mode's default and warns about a group
// that the mode shuts out.
func (w *walker) finishControlSocket(cfg *Config, modeNode *yaml.Node) {
	switch {
	case modeNode == nil && cfg.ControlSocketGID >= 0:
		cfg.ControlSocketMode = ControlSocketGroupMode
	case modeNode == nil:
		cfg.ControlSocketMode = ControlSocketPrivate
	case cfg.ControlSocketGID >= 0 && cfg.ControlSocketMode == ControlSocketPrivate:
		w.warnf(modeNode, "control_socket_mode 0600 gives control_socket_group %q no access (use 0660, or drop the group)", cfg.ControlSocketGroup)
	}
}
