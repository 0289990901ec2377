package config

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/internal/testpki"
)

// parseIn writes files into a fresh directory and parses src there.
func parseIn(t *testing.T, src string, files map[string][]byte, modes map[string]fs.FileMode) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		mode := fs.FileMode(0o600)
		if m, ok := modes[name]; ok {
			mode = m
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	return Parse([]byte(strings.ReplaceAll(src, "DIR", dir)), "s.yaml", dir)
}

// wantRefused fails unless err is one error at line whose message holds
// every fragment and none of the secrets.
func wantRefused(t *testing.T, err error, line int, fragments []string, secrets ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want an error at line %d with %q", line, fragments)
	}
	msg := err.Error()
	if want := fmt.Sprintf("s.yaml:%d: ", line); line > 0 && !strings.HasPrefix(msg, want) {
		t.Errorf("error %q does not start with %q", msg, want)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q lacks %q", msg, f)
		}
	}
	for _, s := range secrets {
		if strings.Contains(msg, s) {
			t.Errorf("error %q reveals the secret", msg)
		}
	}
}

const pskFromFile = "connections:\n  a:\n    remote: 192.0.2.1\n    auth: {method: psk, file: peer.psk}\n"

// TestPSKFileReadableByOthersRefused: a PSK file group or others may
// access is refused, with the rule and message private keys have and the
// chmod to run; 0600 and 0400 are accepted.
func TestPSKFileReadableByOthersRefused(t *testing.T) {
	key := []byte("a long random pre-shared key\n")
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604, 0o660, 0o620, 0o602} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			_, err := parseIn(t, pskFromFile, map[string][]byte{"peer.psk": key}, map[string]fs.FileMode{"peer.psk": mode})
			wantRefused(t, err, 4, []string{"auth.file: pre-shared key file ", "peer.psk is accessible by group or others",
				fmt.Sprintf("(mode %04o)", mode), "run chmod 600 ", "/peer.psk"}, strings.TrimSpace(string(key)))
		})
	}
	for _, mode := range []fs.FileMode{0o600, 0o400} {
		if _, err := parseIn(t, pskFromFile, map[string][]byte{"peer.psk": key}, map[string]fs.FileMode{"peer.psk": mode}); err != nil {
			t.Errorf("mode %04o refused: %v", mode, err)
		}
	}
}

// TestKeytabReadableByOthersRefused: the same rule for a Kerberos keytab,
// checked before the keytab is read.
func TestKeytabReadableByOthersRefused(t *testing.T) {
	src := "connections:\n  a:\n    remote: 192.0.2.1\n    auth:\n      method: kerberos\n      keytab: host.keytab\n" +
		"      realm: EXAMPLE.TEST\n      kdcs: [192.0.2.88]\n      allowed: [\"@EXAMPLE.TEST\"]\n"
	_, err := parseIn(t, src, map[string][]byte{"host.keytab": []byte("\x05\x02")}, map[string]fs.FileMode{"host.keytab": 0o640})
	wantRefused(t, err, 6, []string{"auth.keytab: keytab ", "host.keytab is accessible by group or others (mode 0640); run chmod 600 "})
}

// TestPrivateKeyReadableByOthersRefused: a certificate's private key,
// refused at the line of "key".
func TestPrivateKeyReadableByOthersRefused(t *testing.T) {
	src := "connections:\n  a:\n    remote: 192.0.2.1\n    auth:\n      method: cert\n      cert: host.pem\n      key: host.key\n      ca: [root.pem]\n"
	_, err := parseIn(t, src, map[string][]byte{"host.pem": nil, "host.key": []byte("x"), "root.pem": nil}, map[string]fs.FileMode{"host.key": 0o644})
	wantRefused(t, err, 7, []string{"auth.key: private key ", "host.key is accessible by group or others (mode 0644); run chmod 600 "})
}

// TestKeyLogReadableByOthersRefused: an existing key log that others may
// read is refused; a new one (created 0600 by the daemon) or a private one
// is accepted.
func TestKeyLogReadableByOthersRefused(t *testing.T) {
	src := "key_log: DIR/keys.log\nconnections: {}\n"
	_, err := parseIn(t, src, map[string][]byte{"keys.log": nil}, map[string]fs.FileMode{"keys.log": 0o644})
	wantRefused(t, err, 1, []string{"key_log: key log ", "keys.log is accessible by group or others (mode 0644); run chmod 600 "})
	if _, err := parseIn(t, src, map[string][]byte{"keys.log": nil}, nil); err != nil {
		t.Errorf("private key log refused: %v", err)
	}
	if _, err := parseIn(t, src, nil, nil); err != nil {
		t.Errorf("new key log refused: %v", err)
	}
}

// certAuth is a cert connection whose trust anchors are the files in cas.
func certAuth(cas ...string) string {
	return "connections:\n  a:\n    remote: 192.0.2.1\n    auth:\n      method: cert\n      cert: host.pem\n      key: host.key\n" +
		"      ca:\n        - " + strings.Join(cas, "\n        - ") + "\n"
}

// TestLeafCertificateAsCARefused: a peer's own certificate given as a
// trust anchor is refused with the reason, at the line of the entry; a
// CA whose keyUsage lacks keyCertSign too; real CAs load.
func TestLeafCertificateAsCARefused(t *testing.T) {
	pki := testpki.New(t, "SecurityCheck", "p256", 0)
	key := testpki.Key(t, "p256", "security-host")
	leaf := pki.Issue(t, key, testpki.Leaf{CN: "host.example", DNS: []string{"host.example"}})
	peer := pki.Issue(t, testpki.Key(t, "p256", "security-peer"), testpki.Leaf{CN: "peer.example", DNS: []string{"peer.example"}})
	// A CA certificate without keyCertSign in its keyUsage.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Sign-less CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature}
	ck := testpki.Key(t, "p256", "security-signless")
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, ck.Public(), ck)
	if err != nil {
		t.Fatal(err)
	}
	signless, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"host.pem": testpki.CertPEM(leaf, pki.Inter), "host.key": testpki.KeyPEM(t, key),
		"root.pem": testpki.CertPEM(pki.Root), "inter.pem": testpki.CertPEM(pki.Inter),
		"peer.pem": testpki.CertPEM(peer), "bundle.pem": testpki.CertPEM(pki.Root, peer), "peer.der": peer.Raw,
		"signless.pem": testpki.CertPEM(signless),
	}
	for _, c := range []struct {
		cas  []string
		line int
		want string
	}{
		{[]string{"peer.pem"}, 9, `peer.pem: certificate "CN=peer.example,O=iked interop,C=CH" is not a CA certificate (its basicConstraints say CA:FALSE)`},
		{[]string{"root.pem", "peer.der"}, 10, "peer.der: certificate \"CN=peer.example"},
		{[]string{"bundle.pem"}, 9, "bundle.pem: certificate \"CN=peer.example"},
		{[]string{"signless.pem"}, 9, `signless.pem: certificate "CN=Sign-less CA" is not a CA certificate (its keyUsage lacks keyCertSign)`},
	} {
		_, err := parseIn(t, certAuth(c.cas...), files, nil)
		wantRefused(t, err, c.line, []string{"auth.ca: ", c.want, "give the issuing CA"})
	}
	for _, cas := range [][]string{{"root.pem"}, {"root.pem", "inter.pem"}} {
		if _, err := parseIn(t, certAuth(cas...), files, nil); err != nil {
			t.Errorf("CAs %v refused: %v", cas, err)
		}
	}
}

// TestEmptyConfigurationRefused: a file with nothing to do is refused, with
// what to write; "connections: {}" and a policy-only host are accepted.
func TestEmptyConfigurationRefused(t *testing.T) {
	for _, c := range []struct {
		src  string
		line int
	}{
		{"", 0},
		{"# iked.yaml\n# nothing yet\n", 0},
		{"---\n", 0},
		{"listen: [\"0.0.0.0:500\"]\nlog: {level: info}\n", 0},
		{"connections:\n", 1},
		{"backend: memory\nconnections:\n#  a:\n#    remote: 192.0.2.1\n", 2},
		{"authentication:\n  lab: {method: psk, secret: \"a long enough key for the lab\"}\nconnections:\n", 3},
	} {
		_, err := Parse([]byte(c.src), "s.yaml", "")
		frags := []string{"no connections and no policy", `write "connections: {}"`}
		if c.line > 0 {
			frags = []string{"connections: empty", "add connections, or a policy", `write "connections: {}"`}
		}
		wantRefused(t, err, c.line, frags)
		if err != nil && c.line == 0 && !strings.HasPrefix(err.Error(), "s.yaml: ") {
			t.Errorf("%q: error %q does not name the file", c.src, err)
		}
	}
	for _, src := range []string{
		"connections: {}\n",
		"listen: [\"0.0.0.0:500\"]\nconnections: {}\n",
		policyAuth + "policy: {assign: server-request-security}\n",
		"vici_socket: /run/iked/vici.sock\n", // connections come from swanctl --load-all
	} {
		if _, err := Parse([]byte(src), "s.yaml", ""); err != nil {
			t.Errorf("%q refused: %v", src, err)
		}
	}
	// Other errors are not hidden behind "nothing to do".
	_, err := Parse([]byte("log: {level: loud}\n"), "s.yaml", "")
	wantRefused(t, err, 1, []string{"log.level: unknown value"})
}

// TestNumericPSKRefused: a PSK YAML reads as a number or a boolean is
// refused with "quote it", without quoting the value; quoted, the same
// characters are accepted.
func TestNumericPSKRefused(t *testing.T) {
	for _, v := range []string{"12345678901234567890", "0x1234567890abcdef", "1234567890.123456789", "6.02e23", "0o12345670123", ".inf", "true", "False"} {
		src := conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: " + v + "}\n")
		_, err := Parse([]byte(src), "s.yaml", "")
		wantRefused(t, err, 4, []string{"auth.secret: YAML reads this pre-shared key as a ", `quote it (secret: "…")`}, v)
		if _, err := Parse([]byte(conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \""+v+"000000\"}\n")), "s.yaml", ""); err != nil {
			t.Errorf("quoted %q refused: %v", v, err)
		}
	}
}

// TestShortPSKWarned: a PSK accepted but shorter than RecommendedPSKLength
// is warned about, inline or in a file, without the key in the warning.
func TestShortPSKWarned(t *testing.T) {
	const short = "Tr0ub4dor&3" // 11 characters
	const long = "correct horse battery staple"
	for _, c := range []struct {
		auth  string
		files map[string][]byte
		warn  string
	}{
		{`{method: psk, secret: "` + short + `"}`, nil, "auth.secret: the pre-shared key is 11 characters long; use at least 20"},
		{`{method: psk, file: k.psk}`, map[string][]byte{"k.psk": []byte(short + "\r\n")}, "auth.file: the pre-shared key is 11 characters long"},
		{`{method: psk, secret: "` + long + `"}`, nil, ""},
		{`{method: psk, file: k.psk}`, map[string][]byte{"k.psk": []byte(long + "\n")}, ""},
	} {
		cfg, err := parseIn(t, conn("    remote: 192.0.2.1\n    auth: "+c.auth+"\n"), c.files, nil)
		if err != nil {
			t.Fatalf("%s: %v", c.auth, err)
		}
		if c.warn == "" {
			if len(cfg.Warnings) != 0 {
				t.Errorf("%s: warnings %v", c.auth, cfg.Warnings)
			}
			continue
		}
		if len(cfg.Warnings) != 1 {
			t.Fatalf("%s: warnings %v, want one", c.auth, cfg.Warnings)
		}
		w := cfg.Warnings[0]
		if w.Line != 4 || !strings.Contains(w.String(), "s.yaml:4: "+c.warn) || strings.Contains(w.String(), short) {
			t.Errorf("%s: warning %q", c.auth, w)
		}
	}
	// Below the minimum it is an error, not a warning.
	_, err := Parse([]byte(conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"abc\"}\n")), "s.yaml", "")
	wantRefused(t, err, 4, []string{"too short"}, "abc\"")
}

// TestControlSocketAccess: the group (by name or GID) and mode keys, their
// defaults and what is refused.
func TestControlSocketAccess(t *testing.T) {
	parse := func(top string) (*Config, error) {
		return Parse([]byte(top+"connections: {}\n"), "s.yaml", "")
	}
	for _, c := range []struct {
		top  string
		gid  int
		mode fs.FileMode
	}{
		{"", -1, 0o600},
		{"control_socket_group: root\n", 0, 0o660},
		{"control_socket_group: 4242\n", 4242, 0o660},
		{"control_socket_group: \"4242\"\ncontrol_socket_mode: 0660\n", 4242, 0o660},
		{"control_socket_mode: \"0660\"\n", -1, 0o660},
		{"control_socket_mode: 0o600\n", -1, 0o600},
	} {
		cfg, err := parse(c.top)
		if err != nil {
			t.Errorf("%q: %v", c.top, err)
			continue
		}
		if cfg.ControlSocketGID != c.gid || cfg.ControlSocketMode != c.mode || len(cfg.Warnings) != 0 {
			t.Errorf("%q: gid %d mode %04o warnings %v; want %d %04o", c.top, cfg.ControlSocketGID, cfg.ControlSocketMode, cfg.Warnings, c.gid, c.mode)
		}
	}
	for _, c := range []struct{ top, want string }{
		{"control_socket_group: no-such-group-iked\n", `control_socket_group: no group "no-such-group-iked" on this host`},
		{"control_socket_group: \"\"\n", "control_socket_group: empty"},
		{"control_socket_mode: 0666\n", "control_socket_mode: 0666: others must not reach the control socket"},
		{"control_socket_mode: 0640\n", "control_socket_mode: 0640: connecting to a socket needs write permission"},
		{"control_socket_mode: 0700\n", "control_socket_mode: 0700: only 0600"},
		{"control_socket_mode: rw\n", `control_socket_mode: "rw" is not an octal mode`},
	} {
		_, err := parse(c.top)
		wantRefused(t, err, 1, []string{c.want})
	}
	cfg, err := parse("control_socket_group: 4242\ncontrol_socket_mode: 0600\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || cfg.Warnings[0].Line != 2 || !strings.Contains(cfg.Warnings[0].Msg, "gives control_socket_group \"4242\" no access") {
		t.Errorf("warnings %v", cfg.Warnings)
	}
}

// TestPeerLimits: the per-address limits' keys and defaults.
func TestPeerLimits(t *testing.T) {
	cfg, err := Parse([]byte("ike: {half_open_per_peer: 0, auth_failure_limit: 10, auth_failure_window: 5m}\nconnections: {}\n"), "s.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IKE.HalfOpenPerPeer != 0 || cfg.IKE.AuthFailureLimit != 10 || cfg.IKE.AuthFailureWindow != 5*time.Minute {
		t.Errorf("IKE %+v", cfg.IKE)
	}
	_, err = Parse([]byte("ike:\n  auth_failure_window: 0s\nconnections: {}\n"), "s.yaml", "")
	wantRefused(t, err, 2, []string{"ike.auth_failure_window: duration \"0s\" must be positive"})
	_, err = Parse([]byte("ike:\n  half_open_per_peer: -1\nconnections: {}\n"), "s.yaml", "")
	wantRefused(t, err, 2, []string{"ike.half_open_per_peer: -1 out of range"})
}

// TestFilesMustBeRegular: a device, directory or pipe named where a file
// is expected is refused instead of read (forever, for /dev/zero).
func TestFilesMustBeRegular(t *testing.T) {
	for _, c := range []struct{ auth, want string }{
		{"{method: psk, file: /dev/zero}", "auth.file: /dev/zero is not a regular file (a device)"},
		{"{method: psk, file: DIR}", "is not a regular file (a directory)"},
		{"{method: cert, cert: /dev/null, key: k, ca: [/dev/urandom]}", "auth.cert: /dev/null is not a regular file (a device)"},
		{"{method: kerberos, keytab: /dev/null, realm: R, kdcs: [192.0.2.1], allowed: [\"@R\"]}", "auth.keytab: /dev/null is not a regular file (a device)"},
	} {
		_, err := parseIn(t, conn("    remote: 192.0.2.1\n    auth: "+c.auth+"\n"), nil, nil)
		wantRefused(t, err, 4, []string{c.want})
	}
}

// TestInlineSecretInReadableFileWarned: a configuration file others may
// read that holds a PSK inline gets a warning (not an error: such files
// are commonly 0644).
func TestInlineSecretInReadableFileWarned(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "iked.yaml")
	src := conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"a long random pre-shared key\"}\n")
	for _, c := range []struct {
		mode fs.FileMode
		warn bool
	}{{0o644, true}, {0o640, true}, {0o600, false}} {
		if err := os.WriteFile(path, []byte(src), c.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		got := len(cfg.Warnings) == 1 && cfg.Warnings[0].Line == 4 &&
			strings.Contains(cfg.Warnings[0].Msg, fmt.Sprintf("holds a pre-shared key and group or others may read it (mode %04o): run chmod 600 %s", c.mode, path))
		if got != c.warn || (!c.warn && len(cfg.Warnings) != 0) {
			t.Errorf("mode %04o: warnings %v", c.mode, cfg.Warnings)
		}
	}
	// A PSK in a file of its own: no warning about the configuration.
	if err := os.WriteFile(path, []byte(pskFromFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "peer.psk"), []byte("a long random pre-shared key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := Load(path); err != nil || len(cfg.Warnings) != 0 {
		t.Errorf("PSK in its own file: %v, warnings %v", err, cfg.Warnings)
	}
}
