package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/ike"
	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

const fullConfig = `# a complete configuration
listen: ["127.0.0.1:500", "127.0.0.1:4500", "[::1]:9500"]
control_socket: /tmp/iked-test.sock
metrics_listen: 127.0.0.1:9764
log: {format: json, level: debug}
backend: memory
key_log: /nonexistent/iked-test/keys.log
ike:
  cookie_threshold: 0
  half_open_timeout: 45s
  retransmit_timeout: 500ms
  retransmit_base: 2
  retransmit_tries: 3
  fragmentation: false
  fragment_size: 1400
connections:
  a-to-b:
    local: 127.0.0.1
    remote: 127.0.0.2:4500
    local_id: fqdn:a.example
    remote_id: email:b@b.example
    auth: {method: psk, secret: "0123456789abcdef"}
    ike_proposals: [aes256gcm16-prfsha256-x25519, aes128-sha256-modp2048]
    esp_proposals: [aes256gcm16]
    local_ts: [10.1.0.0/24]
    remote_ts: ["10.2.0.0/24", "10.3.0.1-10.3.0.9[tcp/443]"]
    mode: tunnel
    start_action: initiate
  road.warrior_2:
    local: ::1
    remote: "%any"
    auth:
      method: psk
      file: psk.txt
    mode: transport
    local_ts: ["::1"]
`

func TestParseFull(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "psk.txt"), []byte("a-secret-from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Parse([]byte(fullConfig), "full.yaml", dir)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	wantListen := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:500"),
		netip.MustParseAddrPort("127.0.0.1:4500"),
		netip.MustParseAddrPort("[::1]:9500"),
	}
	if !reflect.DeepEqual(c.Listen, wantListen) {
		t.Errorf("Listen = %v, want %v", c.Listen, wantListen)
	}
	if c.File != "full.yaml" || c.ControlSocket != "/tmp/iked-test.sock" || c.MetricsListen != "127.0.0.1:9764" ||
		c.Backend != "memory" || c.KeyLog != "/nonexistent/iked-test/keys.log" {
		t.Errorf("top-level values wrong: %+v", c)
	}
	if c.Log != (Log{Format: "json", Level: "debug"}) {
		t.Errorf("Log = %+v", c.Log)
	}
	wantIKE := IKE{CookieThreshold: 0, HalfOpenTimeout: 45 * time.Second, RetransmitTimeout: 500 * time.Millisecond, RetransmitBase: 2, RetransmitTries: 3, Fragmentation: false, FragmentSize: 1400, NATKeepalive: 20 * time.Second, MaxMessageSize: 10000,
		HalfOpenPerPeer: 5, AuthFailureLimit: 5, AuthFailureWindow: time.Minute}
	if c.IKE != wantIKE {
		t.Errorf("IKE = %+v, want %+v", c.IKE, wantIKE)
	}
	if len(c.Connections) != 2 {
		t.Fatalf("%d connections, want 2", len(c.Connections))
	}

	a := c.Connections[0]
	if a.Name != "a-to-b" || a.Line != 17 {
		t.Errorf("connection 0 = %q at line %d, want a-to-b at 17", a.Name, a.Line)
	}
	if a.Local != netip.MustParseAddr("127.0.0.1") || a.Remote != netip.MustParseAddrPort("127.0.0.2:4500") {
		t.Errorf("Local, Remote = %v, %v", a.Local, a.Remote)
	}
	if want := (ike.Identity{Type: wire.IDFQDN, Value: []byte("a.example")}); !reflect.DeepEqual(a.LocalID, want) {
		t.Errorf("LocalID = %v, want %v", a.LocalID, want)
	}
	if want := (ike.Identity{Type: wire.IDRFC822Addr, Value: []byte("b@b.example")}); !reflect.DeepEqual(a.RemoteID, want) {
		t.Errorf("RemoteID = %v, want %v", a.RemoteID, want)
	}
	if a.AuthName != "psk" || a.Auth == nil || a.Auth.Name() != "psk" || !a.Auth.Accepts(wire.AuthSharedKeyMIC) {
		t.Errorf("Auth = %q %v", a.AuthName, a.Auth)
	}
	if want := []string{"aes256gcm16-prfsha256-x25519", "aes128-sha256-modp2048"}; !reflect.DeepEqual(a.IKEProposalStrings, want) {
		t.Errorf("IKEProposalStrings = %q", a.IKEProposalStrings)
	}
	if len(a.IKEProposals) != 2 {
		t.Fatalf("IKEProposals = %v", a.IKEProposals)
	}
	p0 := a.IKEProposals[0]
	if !reflect.DeepEqual(p0.Encr, []transform.EncrChoice{{ID: transform.EncrAESGCM16, KeyBits: 256}}) ||
		!reflect.DeepEqual(p0.PRF, []uint16{transform.PRFHMACSHA2_256}) ||
		!reflect.DeepEqual(p0.DH, []uint16{transform.DHCurve25519}) || len(p0.Integ) != 0 {
		t.Errorf("IKEProposals[0] = %+v", p0)
	}
	p1 := a.IKEProposals[1]
	if !reflect.DeepEqual(p1.Encr, []transform.EncrChoice{{ID: transform.EncrAESCBC, KeyBits: 128}}) ||
		!reflect.DeepEqual(p1.Integ, []uint16{transform.IntegHMACSHA2_256_128}) ||
		!reflect.DeepEqual(p1.DH, []uint16{transform.DHModp2048}) {
		t.Errorf("IKEProposals[1] = %+v", p1)
	}
	if !reflect.DeepEqual(a.ESPProposalStrings, []string{"aes256gcm16"}) || len(a.ESPProposals) != 1 ||
		!reflect.DeepEqual(a.ESPProposals[0].Encr, []transform.EncrChoice{{ID: transform.EncrAESGCM16, KeyBits: 256}}) {
		t.Errorf("ESP proposals = %q %+v", a.ESPProposalStrings, a.ESPProposals)
	}
	wantLocalTS := []wire.TrafficSelector{{
		Type: wire.TSIPv4AddrRange, StartPort: 0, EndPort: 65535,
		StartAddr: netip.MustParseAddr("10.1.0.0"), EndAddr: netip.MustParseAddr("10.1.0.255"),
	}}
	if !reflect.DeepEqual(a.LocalTS, wantLocalTS) {
		t.Errorf("LocalTS = %+v", a.LocalTS)
	}
	wantRemoteTS := []wire.TrafficSelector{
		{Type: wire.TSIPv4AddrRange, EndPort: 65535, StartAddr: netip.MustParseAddr("10.2.0.0"), EndAddr: netip.MustParseAddr("10.2.0.255")},
		{Type: wire.TSIPv4AddrRange, IPProtocol: 6, StartPort: 443, EndPort: 443, StartAddr: netip.MustParseAddr("10.3.0.1"), EndAddr: netip.MustParseAddr("10.3.0.9")},
	}
	if !reflect.DeepEqual(a.RemoteTS, wantRemoteTS) {
		t.Errorf("RemoteTS = %+v", a.RemoteTS)
	}
	if a.Mode != ModeTunnel || a.StartAction != StartInitiate {
		t.Errorf("Mode, StartAction = %q, %q", a.Mode, a.StartAction)
	}

	b := c.Connections[1]
	if b.Name != "road.warrior_2" || b.Line != 29 {
		t.Errorf("connection 1 = %q at line %d", b.Name, b.Line)
	}
	if b.Local != netip.MustParseAddr("::1") || !b.RemoteIsAny() || b.Remote != (netip.AddrPort{}) {
		t.Errorf("Local, Remote = %v, %v", b.Local, b.Remote)
	}
	if !reflect.DeepEqual(b.LocalID, ike.IdentityFromAddr(netip.MustParseAddr("::1"))) {
		t.Errorf("default LocalID = %v, want the local address", b.LocalID)
	}
	if !b.RemoteID.IsZero() {
		t.Errorf("RemoteID = %v, want any", b.RemoteID)
	}
	if b.Auth == nil || b.AuthName != "psk" {
		t.Errorf("Auth from file = %q %v", b.AuthName, b.Auth)
	}
	if b.Mode != ModeTransport || b.StartAction != StartNone {
		t.Errorf("Mode, StartAction = %q, %q", b.Mode, b.StartAction)
	}
	if len(b.LocalTS) != 1 || b.LocalTS[0] != ike.HostSelector(netip.MustParseAddr("::1")) || b.RemoteTS != nil {
		t.Errorf("LocalTS, RemoteTS = %+v, %+v", b.LocalTS, b.RemoteTS)
	}
	if c.Connection("road.warrior_2") != &c.Connections[1] || c.Connection("nope") != nil {
		t.Error("Config.Connection lookup wrong")
	}
}

func TestDefaults(t *testing.T) {
	const src = `
connections:
  c:
    remote: 192.0.2.7
    auth: {method: psk, secret: "0123456789abcdef"}
`
	c, err := Parse([]byte(src), "d.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Listen, DefaultListen()) || len(c.Listen) != 4 {
		t.Errorf("Listen = %v", c.Listen)
	}
	if c.ControlSocket != "/run/iked/iked.sock" || c.MetricsListen != "" || c.KeyLog != "" || c.Backend != "auto" {
		t.Errorf("defaults wrong: %+v", c)
	}
	if c.MetricsPerSALimit != DefaultMetricsPerSALimit {
		t.Errorf("MetricsPerSALimit = %d, want %d", c.MetricsPerSALimit, DefaultMetricsPerSALimit)
	}
	if c.Log != (Log{Format: "text", Level: "info"}) {
		t.Errorf("Log = %+v", c.Log)
	}
	want := IKE{CookieThreshold: 10, HalfOpenTimeout: 30 * time.Second, RetransmitTimeout: 2 * time.Second, RetransmitBase: 1.8, RetransmitTries: 5, Fragmentation: true, FragmentSize: 1232, NATKeepalive: 20 * time.Second, MaxMessageSize: 10000,
		HalfOpenPerPeer: 5, AuthFailureLimit: 5, AuthFailureWindow: time.Minute}
	if c.IKE != want {
		t.Errorf("IKE = %+v, want %+v", c.IKE, want)
	}
	conn := c.Connections[0]
	if conn.Remote != netip.MustParseAddrPort("192.0.2.7:500") {
		t.Errorf("Remote = %v, want port 500 by default", conn.Remote)
	}
	if conn.Local.IsValid() || !conn.LocalID.IsZero() || !conn.RemoteID.IsZero() {
		t.Errorf("Local, LocalID, RemoteID = %v, %v, %v; want any", conn.Local, conn.LocalID, conn.RemoteID)
	}
	if !reflect.DeepEqual(conn.IKEProposalStrings, DefaultIKEProposals()) || len(conn.IKEProposals) != len(DefaultIKEProposals()) {
		t.Errorf("IKE proposals = %q (%d parsed)", conn.IKEProposalStrings, len(conn.IKEProposals))
	}
	if !reflect.DeepEqual(conn.ESPProposalStrings, DefaultESPProposals()) || len(conn.ESPProposals) != len(DefaultESPProposals()) {
		t.Errorf("ESP proposals = %q (%d parsed)", conn.ESPProposalStrings, len(conn.ESPProposals))
	}
	if conn.LocalTS != nil || conn.RemoteTS != nil {
		t.Error("traffic selectors should be left empty for the engine's default")
	}
	if conn.Mode != "tunnel" || conn.StartAction != "none" {
		t.Errorf("Mode, StartAction = %q, %q", conn.Mode, conn.StartAction)
	}

	// No connections on purpose: all defaults.
	c, err = Parse([]byte("connections: {}\n"), "e.yaml", "")
	if err != nil {
		t.Fatalf("connections: {}: %v", err)
	}
	if len(c.Connections) != 0 || c.Backend != "auto" || len(c.Listen) != 4 || c.ControlSocketMode != 0o600 || c.ControlSocketGID != -1 {
		t.Errorf("connections: {} = %+v", c)
	}
}

func TestAliases(t *testing.T) {
	const src = `
connections:
  a:
    remote: 192.0.2.1
    auth: &psk {method: psk, secret: "0123456789abcdef"}
    esp_proposals: &esp [aes128gcm16, aes256-sha256]
  b:
    remote: 192.0.2.2
    auth: *psk
    esp_proposals: *esp
`
	c, err := Parse([]byte(src), "a.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Connections[1].ESPProposalStrings; !reflect.DeepEqual(got, []string{"aes128gcm16", "aes256-sha256"}) {
		t.Errorf("aliased proposals = %q", got)
	}
	if c.Connections[1].Auth == nil {
		t.Error("aliased auth not built")
	}
}

func TestLoadRelativePSKFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "iked.yaml")
	src := "connections:\n  a:\n    remote: 192.0.2.1\n    auth: {method: psk, file: secret.txt}\n"
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("Load: %v", err)
	}
	_, err := Load(filepath.Join(dir, "missing.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "missing.yaml")+": ") {
		t.Errorf("Load(missing) = %v", err)
	}
}

// TestExample keeps docs/example.yaml, which docs/configuration.md shows,
// valid.
func TestExample(t *testing.T) {
	c, err := Load("../docs/example.yaml")
	if err != nil {
		t.Fatalf("docs/example.yaml: %v", err)
	}
	if len(c.Connections) == 0 {
		t.Error("docs/example.yaml has no connections")
	}
	for _, conn := range c.Connections {
		if conn.Auth == nil {
			t.Errorf("connection %q has no auth method", conn.Name)
		}
	}
}

// TestErrorType checks that errors are *Error values usable with errors.As.
func TestErrorType(t *testing.T) {
	_, err := Parse([]byte("bogus: 1\nlisten: 5\n"), "x.yaml", "")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not an *Error", err)
	}
	if e.File != "x.yaml" || e.Line != 1 || !strings.Contains(e.Msg, `unknown key "bogus"`) {
		t.Errorf("first error = %+v", e)
	}
	if !strings.Contains(err.Error(), "x.yaml:2: listen: expected a list") {
		t.Errorf("second error missing from %q", err)
	}
}

// TestDocs keeps docs/configuration.md in step with the code: it shows
// docs/example.yaml verbatim and documents every key.
func TestDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../docs/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "## Complete example")
	if !ok {
		t.Fatal(`configuration.md has no "## Complete example" section`)
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("configuration.md: no yaml block in the complete example")
	}
	if block != string(example) {
		t.Error("the complete example in docs/configuration.md differs from docs/example.yaml")
	}
	keys := slices.Concat(topKeys, logKeys, ikeKeys, connKeys, []string{"method", "secret", "file"})
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("configuration.md does not document key %q", k)
		}
	}
	for _, p := range append(DefaultIKEProposals(), DefaultESPProposals()...) {
		if !strings.Contains(string(doc), p) {
			t.Errorf("configuration.md does not mention default proposal %q", p)
		}
	}
}

// TestZeroMeansNever: "0s" turns rekeying, reauthentication and DPD off,
// as documented; a negative duration is still refused.
func TestZeroMeansNever(t *testing.T) {
	c, err := Parse([]byte("connections:\n  c:\n    remote: 192.0.2.7\n    auth: {method: psk, secret: \"a long enough key\"}\n"+
		"    rekey_time: 0s\n    ike_rekey_time: 0s\n    reauth_time: 0s\n    dpd_delay: 0s\n"), "z.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	conn := c.Connections[0]
	if conn.RekeyTime != 0 || conn.IKERekeyTime != 0 || conn.ReauthTime != 0 || conn.DPDDelay != 0 {
		t.Fatalf("zero durations not kept: %+v", conn)
	}
	if _, err := Parse([]byte("connections:\n  c:\n    remote: 192.0.2.7\n    auth: {method: psk, secret: \"a long enough key\"}\n    dpd_delay: -1s\n"), "z.yaml", ""); err == nil || !strings.Contains(err.Error(), "z.yaml:5:") {
		t.Fatalf("negative duration: %v", err)
	}
}

// TestRequirePQ: require_pq with a hybrid proposal loads, and reaches the
// connection; the proposals keep their additional key exchanges.
func TestRequirePQ(t *testing.T) {
	src := conn("    remote: 192.0.2.1\n" + okAuth +
		"    ike_proposals: [aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none, aes256gcm16-prfsha256-x25519]\n" +
		"    esp_proposals: [aes256gcm16-x25519-ke1_mlkem768]\n    require_pq: true\n")
	cfg, err := Parse([]byte(src), "t.yaml", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connections[0]
	if !c.RequirePQ || len(c.IKEProposals) != 2 || !c.IKEProposals[0].OffersPostQuantum() || c.IKEProposals[1].OffersPostQuantum() {
		t.Fatalf("%+v", c)
	}
	if got := c.ESPProposals[0].AddKE[0]; !slices.Equal(got, []uint16{transform.DHMLKEM768}) {
		t.Fatalf("ESP additional key exchange %v", got)
	}
}
