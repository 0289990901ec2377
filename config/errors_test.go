package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
)

// conn wraps a connection body (indented by four spaces) in a minimal
// valid file. The body starts at line 3.
func conn(body string) string {
	return "connections:\n  a:\n" + body
}

const okAuth = "    auth: {method: psk, secret: \"0123456789abcdef\"}\n"

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		src  string
		line int
		want []string // fragments of the first error's message
	}{
		{"unknown top-level key", "listen: [\"127.0.0.1:500\"]\nlisten_addr: x\n", 2,
			[]string{`unknown key "listen_addr" (expected one of: listen, control_socket,`}},
		{"unknown connection key", conn("    remote: 192.0.2.1\n    remote_adress: 192.0.2.2\n" + okAuth), 4,
			[]string{`unknown key "remote_adress" in connection "a" (expected one of: local, remote,`}},
		{"bad IKE proposal", conn("    remote: 192.0.2.1\n" + okAuth + "    ike_proposals:\n      - aes256gcm16-prfsha256-x25519\n      - aes999-sha256-modp2048\n"), 7,
			[]string{"ike_proposals: ", `"aes999"`}},
		{"bad ESP proposal", conn("    remote: 192.0.2.1\n" + okAuth + "    esp_proposals: [aes256gcm16-prfsha256]\n"), 5,
			[]string{"esp_proposals: ", "prfsha256"}},
		{"empty proposal list", conn("    remote: 192.0.2.1\n" + okAuth + "    ike_proposals: []\n"), 5,
			[]string{"ike_proposals: empty list"}},
		{"require_pq without ML-KEM", conn("    remote: 192.0.2.1\n" + okAuth + "    ike_proposals: [aes256gcm16-prfsha384-x25519-ke1_ecp256]\n    require_pq: true\n"), 5,
			[]string{"require_pq: no IKE proposal has a post-quantum key exchange"}},
		{"require_pq with the defaults", conn("    remote: 192.0.2.1\n" + okAuth + "    require_pq: true\n"), 5,
			[]string{"require_pq: no IKE proposal has a post-quantum key exchange"}},
		{"require_pq over IKEv1", conn("    remote: 192.0.2.1\n" + okAuth + "    version: ikev1\n    require_pq: true\n"), 6,
			[]string{"require_pq: needs version ikev2 (IKEv1 has no post-quantum key exchange), and this connection's is ikev1"}},
		{"require_pq not a bool", conn("    remote: 192.0.2.1\n" + okAuth + "    require_pq: yes\n"), 5,
			[]string{"require_pq"}},
		{"additional key exchange without a start", conn("    remote: 192.0.2.1\n" + okAuth + "    esp_proposals: [aes256gcm16-ke1_mlkem768]\n"), 5,
			[]string{"esp_proposals: ", "no key exchange method to start with"}},
		{"mlkem512", conn("    remote: 192.0.2.1\n" + okAuth + "    ike_proposals: [aes256gcm16-prfsha384-x25519-ke1_mlkem512]\n"), 5,
			[]string{"ike_proposals: ", "not implemented"}},
		{"bad listen port", "log: {level: info}\nlisten:\n  - 127.0.0.1:500\n  - 1.2.3.4:99999\n", 4,
			[]string{`listen: "1.2.3.4:99999": invalid port`}},
		{"listen without port", "listen: [127.0.0.1]\n", 1,
			[]string{`listen: "127.0.0.1": missing port`}},
		{"listen host name", "listen: [\"localhost:500\"]\n", 1,
			[]string{`listen: "localhost:500": "localhost" is not an IP address`}},
		{"listen duplicate", "listen: [\"127.0.0.1:500\", \"127.0.0.1:500\"]\n", 1,
			[]string{`listen: "127.0.0.1:500" listed twice`}},
		{"listen empty", "listen: []\n", 1, []string{"listen: empty list"}},
		{"bad remote port", conn("    remote: 192.0.2.1:0\n" + okAuth), 3,
			[]string{`remote: "192.0.2.1:0": invalid port (expected 1 to 65535)`}},
		{"bad remote address", conn("    remote: gateway!example\n" + okAuth), 3,
			[]string{`remote: "gateway!example": expected an IP address, IP:port, [IPv6]:port, a DNS name or name:port`, "%any"}},
		{"remote all digits", conn("    remote: 10.0.0.300\n" + okAuth), 3,
			[]string{`remote: "10.0.0.300": expected an IP address`}},
		{"updown not executable", conn("    remote: 192.0.2.1\n" + okAuth + "    updown: /etc/passwd\n"), 5,
			[]string{"updown: /etc/passwd is not executable"}},
		{"updown missing", conn("    remote: 192.0.2.1\n" + okAuth + "    updown: /nonexistent/updown.sh\n"), 5,
			[]string{"updown: stat /nonexistent/updown.sh: no such file or directory"}},
		{"log format", "log: {format: syslog}\n", 1,
			[]string{`log.format: unknown value "syslog" (expected one of: text, json, journal)`}},
		{"bad duration", "ike:\n  retransmit_timeout: 2s\n  half_open_timeout: 30\n", 3,
			[]string{`ike.half_open_timeout: invalid duration "30" (expected a Go duration such as "4s"`}},
		{"negative duration", "ike: {retransmit_timeout: -1s}\n", 1,
			[]string{`ike.retransmit_timeout: duration "-1s" must be positive`}},
		{"quoted integer", "ike:\n  cookie_threshold: \"10\"\n", 2,
			[]string{"ike.cookie_threshold: expected an integer, got a string"}},
		{"retransmit base out of range", "ike:\n  retransmit_base: 0.5\n", 2,
			[]string{"ike.retransmit_base: 0.5 out of range (expected 1 to 10)"}},
		{"bad identity", conn("    remote: 192.0.2.1\n" + okAuth + "    remote_id: ip:999.1.1.1\n"), 5,
			[]string{`remote_id: identity "999.1.1.1": not an IP address`}},
		{"empty identity", conn("    remote: 192.0.2.1\n" + okAuth + "    local_id: \"\"\n"), 5,
			[]string{"local_id: empty identity"}},
		{"scalar for list", "listen: 127.0.0.1:500\n", 1,
			[]string{"listen: expected a list of strings, got a string"}},
		{"list for scalar", conn("    remote: 192.0.2.1\n" + okAuth + "    mode: [tunnel]\n"), 5,
			[]string{"mode: expected a string, got a list"}},
		{"mapping for list", conn("    remote: 192.0.2.1\n" + okAuth + "    local_ts: {a: b}\n"), 5,
			[]string{"local_ts: expected a list of strings, got a mapping"}},
		{"list for mapping", "connections:\n  - a\n", 2,
			[]string{"connections: expected a mapping, got a list"}},
		{"null value", "control_socket:\n", 1,
			[]string{"control_socket: missing value (expected a string)"}},
		{"duplicate top-level key", "backend: memory\nlog: {level: info}\nbackend: memory\n", 3,
			[]string{`duplicate key "backend" (first defined at line 1)`}},
		{"duplicate connection", conn("    remote: 192.0.2.1\n"+okAuth) + "  a:\n    remote: 192.0.2.2\n" + okAuth, 5,
			[]string{`duplicate key "a" in connections (first defined at line 2)`}},
		{"duplicate connection key", conn("    remote: 192.0.2.1\n" + okAuth + "    remote: 192.0.2.2\n"), 5,
			[]string{`duplicate key "remote" in connection "a" (first defined at line 3)`}},
		{"merge key", "connections:\n  a:\n    <<: {remote: 192.0.2.1}\n" + okAuth, 3,
			[]string{"merge keys (<<) are not supported"}},
		{"bad connection name", "connections:\n  a b:\n    remote: 192.0.2.1\n" + okAuth, 2,
			[]string{`connection name "a b": only letters, digits`}},
		{"missing remote", conn(okAuth), 2,
			[]string{`connection "a": missing key "remote"`}},
		{"missing auth", conn("    remote: 192.0.2.1\n"), 2,
			[]string{`connection "a": missing key "auth"`, "psk"}},
		{"auth not a mapping", conn("    remote: 192.0.2.1\n    auth: psk\n"), 4,
			[]string{"auth: expected a mapping, got a string"}},
		{"auth without method", conn("    remote: 192.0.2.1\n    auth:\n      secret: \"0123456789abcdef\"\n"), 4,
			[]string{`auth: missing key "method" (expected one of: `, "psk"}},
		{"unknown auth method", conn("    remote: 192.0.2.1\n    auth: {method: eap-tls}\n"), 4,
			[]string{`auth: unknown method "eap-tls" (expected one of: `, "psk"}},
		{"psk missing", conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n"), 4,
			[]string{"auth: psk: a secret or a file is required"}},
		{"psk too short", conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n      secret: short\n"), 6,
			[]string{"auth: pre-shared key too short: 5 octets, need at least 8"}},
		{"psk file missing", conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n      file: nosuch.txt\n"), 6,
			[]string{"auth: psk: open " + filepath.Join(dir, "nosuch.txt"), "no such file"}},
		{"psk secret and file", conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n      secret: \"0123456789abcdef\"\n      file: x\n"), 4,
			[]string{"auth: psk: give either secret or file, not both"}},
		{"psk unknown key", conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n      secrett: \"0123456789abcdef\"\n"), 6,
			[]string{`unknown key "secrett" in auth (expected one of: method, secret, file)`}},
		{"psk wrong type", conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n      secret: [a, b]\n"), 6,
			[]string{"auth.secret: expected a string, got a list"}},
		{"bad mode", conn("    remote: 192.0.2.1\n" + okAuth + "    mode: tunel\n"), 5,
			[]string{`mode: unknown value "tunel" (expected one of: tunnel, transport)`}},
		{"bad start_action", conn("    remote: 192.0.2.1\n" + okAuth + "    start_action: start\n"), 5,
			[]string{`start_action: unknown value "start" (expected one of: none, initiate)`}},
		{"remote any with initiate", conn("    remote: \"%any\"\n" + okAuth + "    start_action: initiate\n"), 5,
			[]string{"start_action: initiate needs a remote address, but remote is %any"}},
		{"address families differ", conn("    local: 192.0.2.1\n    remote: 2001:db8::1\n" + okAuth), 4,
			[]string{"remote: 2001:db8::1 and local 192.0.2.1 are of different address families"}},
		{"transport with subnet", conn("    remote: 192.0.2.1\n" + okAuth + "    mode: transport\n    remote_ts: [192.0.2.1, 10.0.0.0/8]\n"), 6,
			[]string{`remote_ts: "10.0.0.0/8" covers more than one address, but mode transport`}},
		{"bad traffic selector", conn("    remote: 192.0.2.1\n" + okAuth + "    local_ts:\n      - 10.1.0.1/24\n"), 6,
			[]string{`local_ts: traffic selector "10.1.0.1/24": host bits set`}},
		{"selector families disjoint", conn("    remote: 192.0.2.1\n" + okAuth + "    local_ts: [10.1.0.0/24]\n    remote_ts: [\"2001:db8::/64\"]\n"), 6,
			[]string{"remote_ts: no address family in common with local_ts"}},
		{"local not listened on", "listen: [\"127.0.0.1:500\"]\n" + conn("    local: 127.0.0.5\n    remote: 127.0.0.2\n"+okAuth), 4,
			[]string{"local: 127.0.0.5 is not covered by any listen address (listen at line 1: 127.0.0.1:500)"}},
		{"local any address", conn("    local: 0.0.0.0\n    remote: 192.0.2.1\n" + okAuth), 3,
			[]string{`local: "0.0.0.0": write %any`}},
		{"bad backend", "backend: kernel\n", 1,
			[]string{`backend: unknown value "kernel" (expected one of: auto, memory, userspace, xfrm)`}},
		{"bad tun name", "userspace:\n  tun: a-name-far-too-long\n", 2,
			[]string{`userspace.tun: "a-name-far-too-long" is not a valid interface name`}},
		{"bad tun address", "userspace:\n  addresses: [10.1.0.300]\n", 2,
			[]string{`userspace.addresses: "10.1.0.300" is not an address or prefix`}},
		{"bad offload", "userspace:\n  offload: maybe\n", 2,
			[]string{`userspace.offload: unknown value "maybe" (expected one of: true, false)`}},
		{"bad log level", "log:\n  format: text\n  level: verbose\n", 3,
			[]string{`log.level: unknown value "verbose" (expected one of: debug, info, warn, error)`}},
		{"bad log key", "log:\n  colour: true\n", 2,
			[]string{`unknown key "colour" in log (expected one of: format, level)`}},
		{"bad metrics address", "metrics_listen: 9764\n", 1,
			[]string{`metrics_listen: "9764": expected host:port`}},
		{"negative per-SA limit", "metrics_per_sa_limit: -1\n", 1,
			[]string{`metrics_per_sa_limit: -1 out of range (expected 0 to 10000000)`}},
		{"top level not a mapping", "- a\n- b\n", 1,
			[]string{"configuration: expected a mapping, got a list"}},
		{"two documents", "backend: memory\n---\nbackend: memory\n", 2,
			[]string{"only one YAML document is allowed"}},
		{"YAML syntax error in flow mapping", "backend: memory\nlog: {level: info\nkey_log: x\n", 2,
			[]string{"invalid YAML: did not find expected ',' or '}'"}},
		{"YAML syntax error in block mapping", "backend: memory\nkey_log: x\n- a\n", 3,
			[]string{"invalid YAML: did not find expected key"}},
		{"YAML syntax error on first line", "log: {level: info\n", 1,
			[]string{"invalid YAML: did not find expected ',' or '}'"}},
		{"YAML scanner error", "backend: memory\nkey_log: x\nlog: @x\n", 3,
			[]string{"invalid YAML: found character that cannot start any token"}},
		{"tab indentation", "backend: memory\nlog:\n  level: info\n\tformat: text\n", 4,
			[]string{"invalid YAML: ", "tab"}},
		{"unknown anchor", "backend: memory\nkey_log: x\nlog: *nope\n", 3,
			[]string{"invalid YAML: unknown anchor 'nope' referenced"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "bad.yaml", dir)
			if os.Getenv("CONFIG_SHOW_ERRORS") != "" {
				t.Logf("%v", err)
			}
			if err == nil {
				t.Fatalf("no error for:\n%s", tt.src)
			}
			first, _, _ := strings.Cut(err.Error(), "\n")
			prefix := fmt.Sprintf("bad.yaml:%d: ", tt.line)
			if !strings.HasPrefix(first, prefix) {
				t.Errorf("first error %q does not start with %q (all: %v)", first, prefix, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(first, w) {
					t.Errorf("first error %q does not contain %q", first, w)
				}
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%v is not an *Error", err)
			}
		})
	}
}

// TestSecretNotInErrors checks that no error message quotes the PSK.
func TestSecretNotInErrors(t *testing.T) {
	const secret = "Sup3r-Secret-Pre-Shared-Key"
	const short = "xQ9#kv"
	srcs := []string{
		// errors elsewhere in a file holding the secret
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"" + secret + "\"}\n    mode: bogus\n    remote_adress: x\n"),
		// secret under a misspelt key, with a wrong-typed sibling
		conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n      secrte: \"" + secret + "\"\n"),
		conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n      secret: \"" + secret + "\"\n      file: 42\n"),
		conn("    remote: 192.0.2.1\n    auth:\n      method: [psk]\n      secret: \"" + secret + "\"\n"),
		conn("    remote: 192.0.2.1\n    auth:\n      method: nope\n      secret: \"" + secret + "\"\n"),
		conn("    auth:\n      method: psk\n      secret: \"" + secret + "\"\n"),
		// secret that is too short, or of the wrong type
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"" + short + "\"}\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: {" + secret + ": 1}}\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: [\"" + secret + "\"]}\n"),
		// duplicate secret keys
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"" + secret + "\", secret: \"" + secret + "\"}\n"),
		// a syntax error on the secret's line
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"" + secret + "\"\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: " + secret + ": x}\n"),
	}
	for i, src := range srcs {
		_, err := Parse([]byte(src), "s.yaml", t.TempDir())
		if err == nil {
			t.Errorf("case %d: no error", i)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, secret) || strings.Contains(msg, short) {
			t.Errorf("case %d: error reveals the secret: %s", i, msg)
		}
	}
}

// testOptions exercises the strict decoder handed to auth factories with
// the kinds of fields a method may have.
type testOptions struct {
	Name    string        `yaml:"name"`
	Count   uint8         `yaml:"count"`
	Enabled bool          `yaml:"enabled"`
	Timeout time.Duration `yaml:"timeout"`
	Ratio   float64       `yaml:"ratio"`
	Peers   []string      `yaml:"peers"`
	Nested  struct {
		Realm string `yaml:"realm"`
	} `yaml:"nested"`
	Labels  map[string]int `yaml:"labels"`
	Ignored string         `yaml:"-"`
}

type testMethod struct{ o testOptions }

func (*testMethod) Name() string                                  { return "x-test" }
func (*testMethod) Accepts(wire.AuthMethod) bool                  { return false }
func (*testMethod) NewSession(*auth.Params) (auth.Session, error) { return nil, errors.New("no") }

var lastTestOptions testOptions

func init() {
	auth.Register("x-test", func(decode func(any) error, _ string) (auth.Method, error) {
		var o testOptions
		if err := decode(&o); err != nil {
			return nil, err
		}
		lastTestOptions = o
		return &testMethod{o}, nil
	})
}

func TestAuthDecode(t *testing.T) {
	src := conn(`    remote: 192.0.2.1
    auth:
      method: x-test
      name: 1234
      count: 200
      enabled: true
      timeout: 1m30s
      ratio: 0.25
      peers: [p1, p2]
      nested: {realm: EXAMPLE.COM}
      labels: {x: 1, y: 2}
`)
	c, err := Parse([]byte(src), "t.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	o := lastTestOptions
	if o.Name != "1234" || o.Count != 200 || !o.Enabled || o.Timeout != 90*time.Second || o.Ratio != 0.25 ||
		len(o.Peers) != 2 || o.Peers[1] != "p2" || o.Nested.Realm != "EXAMPLE.COM" || o.Labels["y"] != 2 {
		t.Errorf("decoded %+v", o)
	}
	if c.Connections[0].AuthName != "x-test" {
		t.Errorf("AuthName = %q", c.Connections[0].AuthName)
	}

	bad := []struct {
		body string
		line int
		want string
	}{
		{"      count: 300\n", 6, "auth.count: 300 out of range (expected 0 to 255)"},
		{"      count: -1\n", 6, "auth.count: -1 out of range"},
		{"      enabled: yes\n", 6, "auth.enabled: expected true or false, got a string"},
		{"      timeout: 5\n", 6, `auth.timeout: invalid duration "5"`},
		{"      peers: p1\n", 6, "auth.peers: expected a list, got a string"},
		{"      peers: [p1, [x]]\n", 6, "auth.peers[1]: expected a string, got a list"},
		{"      nested: {realm: x, kdc: y}\n", 6, `unknown key "kdc" in auth.nested (expected one of: realm)`},
		{"      labels: {x: one}\n", 6, "auth.labels.x: expected an integer, got a string"},
		{"      ignored: x\n", 6, `unknown key "ignored" in auth (expected one of: method, name, count,`},
	}
	for _, b := range bad {
		src := conn("    remote: 192.0.2.1\n    auth:\n      method: x-test\n" + b.body)
		_, err := Parse([]byte(src), "t.yaml", "")
		want := fmt.Sprintf("t.yaml:%d: %s", b.line, b.want)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: error %v, want prefix %q", b.body, err, want)
		}
	}
}

// TestLoadErrorFileName checks that Load reports the path it was given.
func TestLoadErrorFileName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "iked.yaml")
	if err := os.WriteFile(path, []byte("log:\n  level: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2: log.level: ") {
		t.Errorf("Load error = %v", err)
	}
}
