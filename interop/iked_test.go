package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// ikedConn is one connection of iked's configuration.
type ikedConn struct {
	Name         string
	Local        string // IP address
	Remote       string // IP or IP:port
	LocalID      string // e.g. "fqdn:iked.example"
	RemoteID     string
	PSK          string
	IKEProposals []string // empty: iked's default
	ESPProposals []string
	LocalTS      []string
	RemoteTS     []string
	Mode         string // empty: tunnel
	StartAction  string // empty: none
	// Cert, when set, replaces the PSK with certificate authentication.
	Cert *ikedCertAuth
	// Auth, when set, is the auth: value as written (a YAML flow mapping,
	// e.g. "{method: kerberos, ...}"), replacing PSK and Cert.
	Auth string
	// RekeyTime, IKERekeyTime, DPDDelay (Go durations, e.g. "500ms") and
	// DPDAction render as rekey_time, ike_rekey_time, dpd_delay and
	// dpd_action when not empty; ForceEncap as force_encap: true.
	RekeyTime, IKERekeyTime, DPDDelay, DPDAction string
	ForceEncap                                   bool
	// RequirePQ renders require_pq: true.
	RequirePQ bool
	// Version renders as version: (ikev2, ikev1, auto) when not empty;
	// AllowLegacy as allow_legacy: true.
	Version     string
	AllowLegacy bool
	// Childless renders as childless: when not empty (allow, never,
	// prefer, force).
	Childless string
}

// ikedCertAuth is iked's auth: {method: cert, ...}; paths are relative to
// iked's directory (see ikedOptions.Files).
type ikedCertAuth struct {
	Cert, Key     string
	CA            []string
	Intermediates []string
	CRLs          []string
	Signature     string // empty: auto
}

// ikedOptions configure an iked instance.
type ikedOptions struct {
	// Listen addresses (IP:port); each test passes the iked side's
	// address on ports 500 and 4500.
	Listen []string
	Conns  []ikedConn
	// RetransmitTimeout and RetransmitTries; zero values mean 1s and 2.
	RetransmitTimeout time.Duration
	RetransmitTries   int
	// RetransmitBase sets ike.retransmit_base when not zero (iked's
	// default is 1.8).
	RetransmitBase float64
	// NATKeepalive sets ike.nat_keepalive when not zero.
	NATKeepalive time.Duration
	// CookieThreshold sets ike.cookie_threshold when not nil (0: demand a
	// COOKIE from every initiator); nil keeps iked's default.
	CookieThreshold *int
	// Metrics makes iked serve its metrics on 127.0.0.1:9764 inside its
	// namespace (read with (*iked).Metrics).
	Metrics bool
	// Fragmentation sets ike.fragmentation when not nil; FragmentSize
	// sets ike.fragment_size when not zero.
	Fragmentation *bool
	FragmentSize  int
	// Files are written into iked's directory (mode 0600) before it
	// starts: certificates, keys, CRLs.
	Files map[string][]byte
	// Backend is iked's data plane (backend:); empty means memory.
	Backend string
	// Userspace, when not nil, is rendered as the userspace: section.
	Userspace *ikedUserspace
	// Extra is YAML appended as written (top-level sections such as
	// authentication and policy).
	Extra string
}

// ikedUserspace is the userspace: section of iked's configuration; zero
// values are left out (iked's defaults).
type ikedUserspace struct {
	TUN          string
	MTU          int
	Addresses    []string // e.g. "10.1.0.1/32"
	ReplayWindow int
}

// ikedMetricsAddr is where iked serves metrics when ikedOptions.Metrics is
// set: the loopback of iked's own namespace.
const ikedMetricsAddr = "127.0.0.1:9764"

// iked is a running iked inside a namespace.
type iked struct {
	t       *testing.T
	ns      *netns
	dir     string
	config  string
	socket  string
	keyLog  string
	logPath string // iked's stderr: its JSON log
	cmd     *exec.Cmd
	logFile *os.File
	done    chan error
	exited  bool  // Wait returned (its result is in err)
	err     error // exit status, once exited
}

// yamlList renders a YAML flow list of double-quoted strings.
func yamlList(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = yamlQuote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// yamlQuote double-quotes s for YAML (JSON strings are valid YAML).
func yamlQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// ikedConfig renders iked's YAML configuration.
func ikedConfig(socket, keyLog string, o ikedOptions) string {
	rt, tries := o.RetransmitTimeout, o.RetransmitTries
	if rt == 0 {
		rt = time.Second
	}
	if tries == 0 {
		tries = 2
	}
	backend := o.Backend
	if backend == "" {
		backend = "memory"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\ncontrol_socket: %s\nbackend: %s\nlog: {format: json, level: debug}\nkey_log: %s\n",
		yamlList(o.Listen), yamlQuote(socket), backend, yamlQuote(keyLog))
	if u := o.Userspace; u != nil {
		var kv []string
		if u.TUN != "" {
			kv = append(kv, "tun: "+yamlQuote(u.TUN))
		}
		if u.MTU != 0 {
			kv = append(kv, fmt.Sprintf("mtu: %d", u.MTU))
		}
		if len(u.Addresses) > 0 {
			kv = append(kv, "addresses: "+yamlList(u.Addresses))
		}
		if u.ReplayWindow != 0 {
			kv = append(kv, fmt.Sprintf("replay_window: %d", u.ReplayWindow))
		}
		fmt.Fprintf(&b, "userspace: {%s}\n", strings.Join(kv, ", "))
	}
	if o.Metrics {
		fmt.Fprintf(&b, "metrics_listen: %s\n", yamlQuote(ikedMetricsAddr))
	}
	cookie := ""
	if o.CookieThreshold != nil {
		cookie = fmt.Sprintf(", cookie_threshold: %d", *o.CookieThreshold)
	}
	if o.Fragmentation != nil {
		cookie += fmt.Sprintf(", fragmentation: %v", *o.Fragmentation)
	}
	if o.FragmentSize != 0 {
		cookie += fmt.Sprintf(", fragment_size: %d", o.FragmentSize)
	}
	if o.RetransmitBase != 0 {
		cookie += fmt.Sprintf(", retransmit_base: %g", o.RetransmitBase)
	}
	if o.NATKeepalive != 0 {
		cookie += fmt.Sprintf(", nat_keepalive: %s", o.NATKeepalive)
	}
	fmt.Fprintf(&b, "ike: {retransmit_timeout: %s, retransmit_tries: %d%s}\nconnections:\n", rt, tries, cookie)
	for _, c := range o.Conns {
		fmt.Fprintf(&b, "  %s:\n", c.Name)
		field := func(k, v string) {
			if v != "" {
				fmt.Fprintf(&b, "    %s: %s\n", k, yamlQuote(v))
			}
		}
		lst := func(k string, v []string) {
			if len(v) > 0 {
				fmt.Fprintf(&b, "    %s: %s\n", k, yamlList(v))
			}
		}
		field("local", c.Local)
		field("remote", c.Remote)
		field("local_id", c.LocalID)
		field("remote_id", c.RemoteID)
		if c.Auth != "" {
			fmt.Fprintf(&b, "    auth: %s\n", c.Auth)
		} else if a := c.Cert; a != nil {
			fmt.Fprintf(&b, "    auth: {method: cert, cert: %s, key: %s, ca: %s", yamlQuote(a.Cert), yamlQuote(a.Key), yamlList(a.CA))
			if len(a.Intermediates) > 0 {
				fmt.Fprintf(&b, ", intermediates: %s", yamlList(a.Intermediates))
			}
			if len(a.CRLs) > 0 {
				fmt.Fprintf(&b, ", crls: %s", yamlList(a.CRLs))
			}
			if a.Signature != "" {
				fmt.Fprintf(&b, ", signature: %s", a.Signature)
			}
			b.WriteString("}\n")
		} else {
			fmt.Fprintf(&b, "    auth: {method: psk, secret: %s}\n", yamlQuote(c.PSK))
		}
		lst("ike_proposals", c.IKEProposals)
		lst("esp_proposals", c.ESPProposals)
		lst("local_ts", c.LocalTS)
		lst("remote_ts", c.RemoteTS)
		field("mode", c.Mode)
		field("start_action", c.StartAction)
		field("rekey_time", c.RekeyTime)
		field("ike_rekey_time", c.IKERekeyTime)
		field("dpd_delay", c.DPDDelay)
		field("dpd_action", c.DPDAction)
		if c.RequirePQ {
			b.WriteString("    require_pq: true\n")
		}
		if c.ForceEncap {
			b.WriteString("    force_encap: true\n")
		}
		field("version", c.Version)
		if c.AllowLegacy {
			b.WriteString("    allow_legacy: true\n")
		}
		field("childless", c.Childless)
	}
	b.WriteString(o.Extra)
	return b.String()
}

// startIked writes the configuration, starts iked in ns and waits for its
// control socket. t.Cleanup stops it (SIGTERM, then SIGKILL) and logs its
// log on failure.
func startIked(t *testing.T, ns *netns, o ikedOptions) *iked {
	t.Helper()
	dir := t.TempDir()
	d := &iked{
		t: t, ns: ns, dir: dir,
		config:  filepath.Join(dir, "iked.yaml"),
		socket:  filepath.Join(dir, "iked.sock"),
		keyLog:  filepath.Join(dir, "keys.log"),
		logPath: filepath.Join(dir, "iked.log"),
		done:    make(chan error, 1),
	}
	for name, data := range o.Files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(d.config, []byte(ikedConfig(d.socket, d.keyLog, o)), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(d.logPath)
	if err != nil {
		t.Fatal(err)
	}
	d.logFile = f
	d.cmd = ns.command(context.Background(), filepath.Join(binDir, "iked"), "--config", d.config)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	if err := d.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("starting iked: %v", err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(d.stop)
	deadline := time.Now().Add(hangGuard)
	for {
		if _, err := os.Stat(d.socket); err == nil {
			return d
		}
		select {
		case err := <-d.done:
			d.exited, d.err = true, err
			t.Fatalf("iked exited: %v\nconfig:\n%s\nlog:\n%s", err, ikedConfig(d.socket, d.keyLog, o), d.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("iked: no control socket after %v\n%s", hangGuard, d.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop terminates iked (SIGTERM makes it delete its SAs, telling the peer),
// fails the test unless it exited 0, and, if the test failed, logs its log.
func (d *iked) stop() {
	if !d.exited {
		d.err, d.exited = signalAndWait(d.cmd, d.done, syscall.SIGTERM, hangGuard), true // deletes to a dead peer take their retransmissions
	}
	d.logFile.Close()
	if d.err != nil {
		// SIGTERM makes iked delete its SAs and exit 0; anything else
		// (a panic, a hang ended by SIGKILL) is a bug.
		d.t.Errorf("iked exited with %v", d.err)
	}
	if d.t.Failed() || verbose() {
		d.t.Logf("iked log (%s):\n%s", d.logPath, d.Log())
	}
}

// ikectl runs ikectl against this iked and returns its stdout.
func (d *iked) ikectl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "ikectl"), append([]string{"--socket", d.socket}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out after %v", timeout)
		}
		return out.String(), fmt.Errorf("ikectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// SAs returns iked's IKE SAs from ikectl sas --json.
func (d *iked) SAs() ([]ike.SAInfo, error) {
	out, err := d.ikectl(10*time.Second, "sas", "--json")
	if err != nil {
		return nil, err
	}
	var sas []ike.SAInfo
	if err := json.Unmarshal([]byte(out), &sas); err != nil {
		return nil, fmt.Errorf("ikectl sas --json: %v\n%s", err, out)
	}
	return sas, nil
}

// Initiate runs ikectl initiate CONN (which waits for the handshake) and
// returns its output.
func (d *iked) Initiate(conn string) (string, error) {
	return d.ikectl(30*time.Second, "initiate", "--new", conn)
}

// Terminate runs ikectl terminate TARGET (a connection or an SA ID).
func (d *iked) Terminate(target string) (string, error) {
	return d.ikectl(30*time.Second, "terminate", target)
}

// Log returns iked's log so far (JSON lines).
func (d *iked) Log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", d.logPath, err)
	}
	return string(b)
}

// Metrics returns iked's metrics (Prometheus text format), fetched by
// this test binary re-run inside iked's namespace as an HTTP client (see
// httpGetEnv); iked must run with ikedOptions.Metrics.
func (d *iked) Metrics() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := d.ns.command(ctx, self)
	cmd.Env = append(os.Environ(), httpGetEnv+"=http://"+ikedMetricsAddr+"/metrics")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("fetching iked's metrics: %v: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// metricValue returns the value of the samples name{labels} (labels as
// written by Prometheus, e.g. `reason="timeout"`; empty for none): the sum
// of every sample of that name whose labels include the given ones (so
// that a metric is found whatever further labels, such as version, it
// carries), and whether there is one.
func metricValue(metrics, name, labels string) (float64, bool) {
	var want []string
	if labels != "" {
		want = strings.Split(labels, ",")
	}
	sum, found := 0.0, false
	for _, l := range strings.Split(metrics, "\n") {
		k, v, ok := strings.Cut(l, " ")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		n, ls, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		have := strings.Split(strings.TrimSuffix(ls, "}"), ",")
		all := true
		for _, w := range want {
			all = all && slices.Contains(have, w)
		}
		if !all {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			continue
		}
		sum, found = sum+f, true
	}
	return sum, found
}

// KeyLog returns the key log: tshark preferences, one per line.
func (d *iked) KeyLog() string {
	b, err := os.ReadFile(d.keyLog)
	if err != nil {
		return ""
	}
	return string(b)
}

// KeyLogPrefs returns the key log's lines, each an argument for tshark -o.
func (d *iked) KeyLogPrefs() []string {
	var prefs []string
	for _, l := range strings.Split(d.KeyLog(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			prefs = append(prefs, l)
		}
	}
	return prefs
}
