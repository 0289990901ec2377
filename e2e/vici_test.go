package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/internal/testpki"
)

// Debian's real swanctl (package strongswan-swanctl) drives an iked with a
// live peer (a second iked) over VICI; every answer is compared with what
// ikectl reports of the same daemon.

// swanctlPath finds swanctl; under CI=true a missing one fails the test.
func swanctlPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/swanctl", "/sbin/swanctl"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("swanctl"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("swanctl not installed (Debian package strongswan-swanctl)")
	}
	t.Skip("swanctl not installed (Debian package strongswan-swanctl)")
	return ""
}

// swanctl runs one swanctl command against the daemon's VICI socket.
type swanctlRunner struct {
	t    *testing.T
	bin  string
	uri  string
	dir  string // SWANCTL_DIR
	conf string // strongswan.conf without plugins to load
}

func newSwanctl(t *testing.T, socket string) *swanctlRunner {
	bin := swanctlPath(t)
	dir := t.TempDir()
	// A strongswan.conf of its own: swanctl reads no system settings.
	conf := filepath.Join(dir, "strongswan.conf")
	if err := os.WriteFile(conf, []byte("swanctl {\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &swanctlRunner{t: t, bin: bin, uri: "unix://" + socket, dir: dir, conf: conf}
}

func (s *swanctlRunner) cmd(ctx context.Context, args ...string) *exec.Cmd {
	// --uri is an option of each command, after it.
	args = append(args[:1:1], append([]string{"--uri", s.uri}, args[1:]...)...)
	c := exec.CommandContext(ctx, s.bin, args...)
	c.Env = append(os.Environ(), "SWANCTL_DIR="+s.dir, "STRONGSWAN_CONF="+s.conf)
	return c
}

func (s *swanctlRunner) run(args ...string) (string, error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	c := s.cmd(ctx, args...)
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	if err != nil {
		return out.String() + errb.String(), fmt.Errorf("swanctl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String() + errb.String(), nil
}

func (s *swanctlRunner) must(args ...string) string {
	s.t.Helper()
	out, err := s.run(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// background starts a long-running swanctl (--monitor-sa, --log); stop
// interrupts it as a user's ^C would and returns what it printed.
func (s *swanctlRunner) background(args ...string) (stop func() string) {
	s.t.Helper()
	var out syncBuffer
	c := s.cmd(context.Background(), args...)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	s.t.Cleanup(func() { _ = c.Process.Kill(); <-done })
	return func() string {
		_ = c.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.t.Fatalf("swanctl %s did not stop on SIGINT", args[0])
		}
		return out.String()
	}
}

// waitRegistered waits until a background swanctl has registered for its
// events: the daemon logs each registration at debug level.
func waitLog(t *testing.T, d *daemon, what string, n int) {
	t.Helper()
	waitUntil(t, what, func() bool { return strings.Count(d.log.String(), what) >= n })
}

func (d *daemon) status() control.Status {
	d.t.Helper()
	out, err := d.ikectl("status", "--json")
	if err != nil {
		d.t.Fatal(err)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		d.t.Fatalf("ikectl status --json: %v\n%s", err, out)
	}
	return st
}

func only(t *testing.T, sas []ike.SAInfo, conn string) ike.SAInfo {
	t.Helper()
	var found []ike.SAInfo
	for _, sa := range sas {
		if sa.Connection == conn && sa.State == "established" {
			found = append(found, sa)
		}
	}
	if len(found) != 1 {
		t.Fatalf("ikectl sas: %d established IKE SAs of %s, want 1: %+v", len(found), conn, sas)
	}
	return found[0]
}

// TestSwanctl runs the swanctl commands an operator uses day to day.
func TestSwanctl(t *testing.T) {
	swanctlPath(t)
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), uint16(freePort(t, "127.0.0.2")))
	vici := filepath.Join(t.TempDir(), "charon.vici")
	extra := "    local_ts: [10.1.0.0/24]\n    remote_ts: [10.2.0.0/24]\n"
	cfgA := strings.Replace(peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", extra), "control_socket: CONTROL",
		"control_socket: CONTROL\nvici_socket: "+vici, 1)
	cfgA = strings.Replace(cfgA, "  peer:", "  to-bob:", 1)
	db := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", "    local_ts: [10.2.0.0/24]\n    remote_ts: [10.1.0.0/24]\n"))
	da := startDaemon(t, "alice", a, cfgA)
	sw := newSwanctl(t, vici)

	t.Run("version", func(t *testing.T) {
		out := sw.must("--version", "--daemon")
		st := da.status()
		want := fmt.Sprintf("strongSwan %s iked (", st.Version)
		if !strings.Contains(out, want) {
			t.Fatalf("swanctl --version --daemon: %q, want %q (ikectl status: version %s)", out, want, st.Version)
		}
	})

	var stopMon, stopLog func() string
	t.Run("initiate", func(t *testing.T) {
		stopMon = sw.background("--monitor-sa", "--raw")
		stopLog = sw.background("--log")
		waitLog(t, da, `"event":"child-updown"`, 1)
		waitLog(t, da, `"event":"log"`, 1)
		out := sw.must("--initiate", "--child", "to-bob")
		if !strings.Contains(out, "initiate completed successfully") {
			t.Fatalf("swanctl --initiate: %s", out)
		}
		// The control-log events streamed while it ran.
		if !regexp.MustCompile(`(?m)^\[IKE\] IKE SA established .*connection=to-bob`).MatchString(out) ||
			!strings.Contains(out, "[CHD] CHILD SA installed") {
			t.Fatalf("swanctl --initiate printed no control-log lines of the handshake:\n%s", out)
		}
		only(t, da.sas(), "to-bob")
	})

	t.Run("stats", func(t *testing.T) {
		out := sw.must("--stats")
		st := da.status()
		want := fmt.Sprintf("IKE_SAs: %d total, %d half-open", st.IKESAs, st.HalfOpen)
		if !strings.Contains(out, want) {
			t.Fatalf("swanctl --stats:\n%s\nwant %q (ikectl status)", out, want)
		}
	})

	t.Run("list-sas", func(t *testing.T) {
		sa := only(t, da.sas(), "to-bob")
		ch := sa.Children[0]
		out := sw.must("--list-sas")
		for _, want := range []string{
			fmt.Sprintf("to-bob: #%s, ESTABLISHED, IKEv2, %s_i* %s_r", strings.TrimPrefix(sa.ID, "ike-"), sa.SPIi, sa.SPIr),
			fmt.Sprintf("local  'alice.example' @ %s[%d]", a.Addr(), a.Port()),
			fmt.Sprintf("remote 'bob.example' @ %s[%d]", b.Addr(), b.Port()),
			sa.Algorithms, "INSTALLED, TUNNEL, ESP:AES_GCM_16-256",
			"in  " + ch.SPIIn, "out " + ch.SPIOut,
			"local  " + ch.LocalTS[0], "remote " + ch.RemoteTS[0],
		} {
			if !strings.Contains(out, want) {
				t.Errorf("swanctl --list-sas lacks %q (ikectl: %+v):\n%s", want, sa, out)
			}
		}
		if !regexp.MustCompile(`established \d+s ago, rekeying in \d+s`).MatchString(out) {
			t.Errorf("swanctl --list-sas: no established/rekeying times:\n%s", out)
		}
		raw := sw.must("--list-sas", "--raw")
		for _, want := range []string{"list-sa event {to-bob {uniqueid=" + strings.TrimPrefix(sa.ID, "ike-"),
			"initiator-spi=" + sa.SPIi, "responder-spi=" + sa.SPIr, "spi-in=" + ch.SPIIn, "spi-out=" + ch.SPIOut,
			"encr-alg=AES_GCM_16 encr-keysize=256", "prf-alg=PRF_HMAC_SHA2_256", "dh-group=CURVE_25519",
			"state=INSTALLED", "bytes-in=", "packets-out=", "install-time=", "local-ts=[10.1.0.0/24]", "remote-ts=[10.2.0.0/24]"} {
			if !strings.Contains(raw, want) {
				t.Errorf("swanctl --list-sas --raw lacks %q:\n%s", want, raw)
			}
		}
		pretty := sw.must("--list-sas", "--pretty")
		if !strings.Contains(pretty, "initiator-spi = "+sa.SPIi) || !strings.Contains(pretty, "child-sas {") {
			t.Errorf("swanctl --list-sas --pretty:\n%s", pretty)
		}
	})

	t.Run("list-conns", func(t *testing.T) {
		out := sw.must("--list-conns")
		st := da.status()
		c := st.Connections[0]
		for _, want := range []string{"to-bob: IKEv2", "local:  " + c.Local, "remote: " + strings.Split(c.Remote, ":")[0],
			"id: " + strings.TrimPrefix(c.LocalID, "fqdn:"), "id: " + strings.TrimPrefix(c.RemoteID, "fqdn:"),
			"local pre-shared key authentication", "to-bob: TUNNEL", "local:  10.1.0.0/24", "remote: 10.2.0.0/24"} {
			if !strings.Contains(out, want) {
				t.Errorf("swanctl --list-conns lacks %q (ikectl status: %+v):\n%s", want, c, out)
			}
		}
	})

	t.Run("rekey", func(t *testing.T) {
		before := only(t, da.sas(), "to-bob")
		out := sw.must("--rekey", "--ike", "to-bob")
		if !strings.Contains(out, "rekey completed successfully") {
			t.Fatalf("swanctl --rekey --ike: %s", out)
		}
		after := only(t, da.sas(), "to-bob")
		if after.ID == before.ID || after.SPIi == before.SPIi {
			t.Fatalf("after swanctl --rekey --ike, ikectl shows the same IKE SA %s %s", after.ID, after.SPIi)
		}
		if after.Children[0].SPIIn != before.Children[0].SPIIn {
			t.Fatalf("an IKE SA rekey changed the Child SA")
		}
		out = sw.must("--rekey", "--child", "to-bob")
		if !strings.Contains(out, "rekey completed successfully") {
			t.Fatalf("swanctl --rekey --child: %s", out)
		}
		waitUntil(t, "the old Child SA to go", func() bool {
			sa := only(t, da.sas(), "to-bob")
			return len(sa.Children) == 1 && sa.Children[0].SPIIn != before.Children[0].SPIIn
		})
		waitUntil(t, "bob to show the rekeyed IKE SA alone", func() bool {
			sas := db.sas()
			return len(sas) == 1 && sas[0].SPIi == after.SPIi
		})
	})

	t.Run("terminate", func(t *testing.T) {
		sa := only(t, da.sas(), "to-bob")
		out := sw.must("--terminate", "--ike", "to-bob")
		if !strings.Contains(out, "terminate completed successfully") || !strings.Contains(out, "IKE SA deleted") {
			t.Fatalf("swanctl --terminate --ike: %s", out)
		}
		if sas := da.sas(); len(sas) != 0 {
			t.Fatalf("ikectl sas after swanctl --terminate: %+v", sas)
		}
		waitUntil(t, "bob to delete its SA", func() bool { return len(db.sas()) == 0 })
		// The monitor saw it come up and go down; the log saw it all.
		mon := stopMon()
		for _, want := range []string{"ike-updown event {up=yes to-bob {", "child-updown event {up=yes to-bob {",
			"ike-updown event {to-bob {uniqueid=" + strings.TrimPrefix(sa.ID, "ike-"), "child-updown event {to-bob {",
			"initiator-spi=" + sa.SPIi} {
			if !strings.Contains(mon, want) {
				t.Errorf("swanctl --monitor-sa --raw lacks %q:\n%s", want, mon)
			}
		}
		lg := stopLog()
		for _, want := range []string{"[IKE] initiating IKE SA", "[IKE] IKE SA established", "[IKE] IKE SA rekeyed", "[IKE] IKE SA deleted"} {
			if !strings.Contains(lg, want) {
				t.Errorf("swanctl --log lacks %q:\n%s", want, lg)
			}
		}
	})
}

// TestSwanctlLoadAll: swanctl --load-all configures iked from a
// swanctl.conf with a PSK and a certificate connection; both then come up
// (initiated by ikectl, which sees the loaded connections), swanctl lists
// the certificates, and a key iked does not support is refused by name.
func TestSwanctlLoadAll(t *testing.T) {
	swanctlPath(t)
	pki := testpki.New(t, "VICI", "p256", 0)
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), uint16(freePort(t, "127.0.0.3")))
	// Bob: configured from iked.yaml, a PSK and a certificate connection.
	bdir := t.TempDir()
	bkey := testpki.Key(t, "p256", "vici-bob")
	bcert := pki.Issue(t, bkey, testpki.Leaf{CN: "bob.example", DNS: []string{"bob.example"}})
	for f, data := range map[string][]byte{"cert.pem": testpki.CertPEM(bcert), "key.pem": testpki.KeyPEM(t, bkey),
		"root.pem": testpki.CertPEM(pki.Root), "inter.pem": testpki.CertPEM(pki.Inter)} {
		if err := os.WriteFile(filepath.Join(bdir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	db := startDaemon(t, "bob", b, fmt.Sprintf(`listen: ["%s"]
control_socket: CONTROL
backend: memory
metrics_listen: METRICS
log: {format: json, level: debug}
connections:
  psk-peer:
    local: %s
    remote: %s
    local_id: fqdn:dave.example
    remote_id: fqdn:carol.example
    auth: {method: psk, secret: %q}
    local_ts: [10.20.0.0/16]
    remote_ts: [10.10.0.0/16]
  cert-peer:
    local: %s
    remote: %s
    local_id: fqdn:bob.example
    remote_id: fqdn:alice.example
    auth: {method: cert, cert: %s, key: %s, ca: [%s], intermediates: [%s]}
`, b, b.Addr(), a, pskSecret, b.Addr(), a, filepath.Join(bdir, "cert.pem"), filepath.Join(bdir, "key.pem"),
		filepath.Join(bdir, "root.pem"), filepath.Join(bdir, "inter.pem")))
	// Alice: nothing configured but listen and the sockets.
	vici := filepath.Join(t.TempDir(), "charon.vici")
	da := startDaemon(t, "alice", a, fmt.Sprintf(`listen: ["%s"]
control_socket: CONTROL
vici_socket: %s
backend: memory
metrics_listen: METRICS
log: {format: json, level: debug}
`, a, vici))
	sw := newSwanctl(t, vici)
	akey := testpki.Key(t, "p256", "vici-alice")
	acert := pki.Issue(t, akey, testpki.Leaf{CN: "alice.example", DNS: []string{"alice.example"}})
	for f, data := range map[string][]byte{"x509/alice.pem": testpki.CertPEM(acert), "private/alice.pem": testpki.KeyPEM(t, akey),
		"x509ca/root.pem": testpki.CertPEM(pki.Root), "x509ca/inter.pem": testpki.CertPEM(pki.Inter)} {
		p := filepath.Join(sw.dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf(`connections {
	psk {
		local_addrs = %[1]s
		remote_addrs = %[2]s
		remote_port = %[3]d
		proposals = aes256gcm16-prfsha256-x25519
		local {
			auth = psk
			id = carol.example
		}
		remote {
			auth = psk
			id = dave.example
		}
		children {
			psk-net {
				local_ts = 10.10.0.0/16
				remote_ts = 10.20.0.0/16
				esp_proposals = aes256gcm16
				rekey_time = 30m
			}
		}
	}
	cert {
		local_addrs = %[1]s
		remote_addrs = %[2]s
		remote_port = %[3]d
		local {
			auth = pubkey
			certs = alice.pem
			id = alice.example
		}
		remote {
			auth = pubkey
			id = bob.example
		}
		children {
			cert-host {
			}
		}
	}
}
secrets {
	ike-dave {
		id = dave.example
		secret = %[4]q
	}
}
`, a.Addr(), b.Addr(), b.Port(), pskSecret)
	if err := os.WriteFile(filepath.Join(sw.dir, "swanctl.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := sw.must("--load-all")
	for _, want := range []string{"loaded ike secret 'ike-dave'", "loaded connection 'psk'", "loaded connection 'cert'",
		"successfully loaded 2 connections, 0 unloaded"} {
		if !strings.Contains(out, want) {
			t.Fatalf("swanctl --load-all lacks %q:\n%s", want, out)
		}
	}
	// ikectl initiates what swanctl loaded.
	for _, conn := range []string{"psk", "cert"} {
		if _, err := da.ikectl("initiate", conn); err != nil {
			t.Fatal(err)
		}
	}
	sas := da.sas()
	psk, cert := only(t, sas, "psk"), only(t, sas, "cert")
	if psk.Auth != "psk" || psk.RemoteID != "fqdn:dave.example" || psk.Children[0].LocalTS[0] != "10.10.0.0/16" {
		t.Errorf("PSK connection loaded over VICI: %+v", psk)
	}
	if cert.Auth != "cert" || cert.RemoteID != "fqdn:bob.example" || cert.LocalID != "fqdn:alice.example" {
		t.Errorf("certificate connection loaded over VICI: %+v", cert)
	}
	only(t, db.sas(), "psk-peer")
	only(t, db.sas(), "cert-peer")
	// swanctl lists them as loaded, with their child names.
	conns := sw.must("--list-conns")
	for _, want := range []string{"psk: IKEv2", "psk-net: TUNNEL, rekeying every 1800s", "cert: IKEv2",
		"local public key authentication", "certs: " + testpki.DN(acert)} {
		if !strings.Contains(conns, want) {
			t.Errorf("swanctl --list-conns lacks %q:\n%s", want, conns)
		}
	}
	list := sw.must("--list-sas", "--child", "psk-net")
	if !strings.Contains(list, "psk-net: #") || strings.Contains(list, "cert-host") {
		t.Errorf("swanctl --list-sas --child psk-net:\n%s", list)
	}
	certs := sw.must("--list-certs")
	for _, want := range []string{"subject:  \"" + testpki.DN(acert) + "\"", "has private key",
		"subject:  \"" + testpki.DN(pki.Root) + "\""} {
		if !strings.Contains(certs, want) {
			t.Errorf("swanctl --list-certs lacks %q:\n%s", want, certs)
		}
	}
	// A child terminated by name; ikectl sees its IKE SA stay.
	out = sw.must("--terminate", "--child", "psk-net")
	if !strings.Contains(out, "terminate completed successfully") {
		t.Fatalf("swanctl --terminate --child: %s", out)
	}
	if sa := only(t, da.sas(), "psk"); len(sa.Children) != 0 {
		t.Fatalf("after terminating the child, ikectl shows %+v", sa.Children)
	}
	// An option iked does not have is refused by name, and nothing else
	// of the file changes.
	bad := strings.Replace(conf, "rekey_time = 30m", "rekey_time = 30m\n\t\t\t\tupdown = /usr/local/bin/updown", 1)
	bad = strings.Replace(bad, "proposals = aes256gcm16-prfsha256-x25519", "proposals = aes256gcm16-prfsha256-x25519\n\t\tvips = 0.0.0.0", 1)
	if err := os.WriteFile(filepath.Join(sw.dir, "swanctl.conf"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := sw.run("--load-conns")
	if err == nil || !strings.Contains(out, "loading connection 'psk' failed: unsupported option: vips") {
		t.Fatalf("swanctl --load-conns with vips: %v\n%s", err, out)
	}
	if _, err := da.ikectl("initiate", "psk"); err != nil {
		t.Fatalf("the refused reload removed connection psk: %v", err)
	}
	// unload-conn (the connection removed from the file) drops it.
	noPSK := conf[:strings.Index(conf, "\tpsk {")] + conf[strings.Index(conf, "\tcert {"):]
	if err := os.WriteFile(filepath.Join(sw.dir, "swanctl.conf"), []byte(noPSK), 0o600); err != nil {
		t.Fatal(err)
	}
	out = sw.must("--load-conns")
	if !strings.Contains(out, "successfully loaded 1 connections, 1 unloaded") {
		t.Fatalf("swanctl --load-conns without psk:\n%s", out)
	}
	if _, err := da.ikectl("initiate", "psk"); err == nil || !strings.Contains(err.Error(), "no connection named") {
		t.Fatalf("ikectl initiate psk after unload-conn: %v", err)
	}
}
