package kernel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// testPSK is the pre-shared key of every test connection.
const testPSK = "kernel data plane lab secret"

// conn is one connection of an iked configuration.
type conn struct {
	Name          string
	Local, Remote string // IP addresses; Remote may be "%any"
	LocalID       string
	RemoteID      string
	ESP           []string // esp_proposals; empty: iked's default
	IKE           []string // ike_proposals
	LocalTS       []string
	RemoteTS      []string
	Mode          string // tunnel (default) or transport
	StartAction   string
	// Extra are more keys of the connection, as YAML lines without
	// indentation (e.g. "rekey_bytes: 2000").
	Extra []string
}

// ikedOptions configure an iked in the guest; the backend is xfrm.
type ikedOptions struct {
	Listen []string // IP:port
	Conns  []conn
	// Extra is YAML appended at the top level (authentication, policy).
	Extra string
}

// iked is a running iked in a namespace.
type iked struct {
	t       testing.TB
	ns      *netns
	name    string // for messages: A, B, ...
	dir     string
	config  string
	socket  string
	keyLog  string
	logPath string
	cmd     *exec.Cmd
	logFile *os.File
	done    chan error
	exited  bool
	stopped bool
	err     error
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func list(xs []string) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = quote(x)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// render writes iked's configuration: xfrm backend, JSON debug log, key
// log, retransmissions sized for an emulated guest.
func (o ikedOptions) render(socket, keyLog string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %s\ncontrol_socket: %s\nbackend: xfrm\nlog: {format: json, level: debug}\nkey_log: %s\n",
		list(o.Listen), quote(socket), quote(keyLog))
	b.WriteString("ike: {retransmit_timeout: 3s, retransmit_tries: 3}\n")
	if len(o.Conns) > 0 {
		b.WriteString("connections:\n")
	}
	for _, c := range o.Conns {
		fmt.Fprintf(&b, "  %s:\n", c.Name)
		kv := func(k, v string) {
			if v != "" {
				fmt.Fprintf(&b, "    %s: %s\n", k, quote(v))
			}
		}
		lst := func(k string, v []string) {
			if len(v) > 0 {
				fmt.Fprintf(&b, "    %s: %s\n", k, list(v))
			}
		}
		kv("local", c.Local)
		kv("remote", c.Remote)
		kv("local_id", c.LocalID)
		kv("remote_id", c.RemoteID)
		fmt.Fprintf(&b, "    auth: {method: psk, secret: %s}\n", quote(testPSK))
		lst("ike_proposals", c.IKE)
		lst("esp_proposals", c.ESP)
		lst("local_ts", c.LocalTS)
		lst("remote_ts", c.RemoteTS)
		kv("mode", c.Mode)
		kv("start_action", c.StartAction)
		for _, e := range c.Extra {
			fmt.Fprintf(&b, "    %s\n", e)
		}
	}
	b.WriteString(o.Extra)
	return b.String()
}

// startIked starts iked in ns and waits for its control socket; t.Cleanup
// stops it with SIGTERM (it deletes its SAs and must exit 0) and logs its
// log when the test failed.
func startIked(t testing.TB, ns *netns, name string, o ikedOptions) *iked {
	t.Helper()
	dir := t.TempDir()
	d := &iked{t: t, ns: ns, name: name, dir: dir,
		config: filepath.Join(dir, "iked.yaml"), socket: filepath.Join(dir, "iked.sock"),
		keyLog: filepath.Join(dir, "keys.log"), logPath: filepath.Join(dir, "iked.log"), done: make(chan error, 1)}
	cfg := o.render(d.socket, d.keyLog)
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
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
		t.Fatalf("starting iked %s: %v", name, err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(d.stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(d.socket); err == nil {
			return d
		}
		select {
		case err := <-d.done:
			d.exited, d.err = true, err
			t.Fatalf("iked %s exited: %v\nconfig:\n%s\nlog:\n%s", name, err, cfg, d.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("iked %s: no control socket after 30s\n%s", name, d.Log())
		}
	}
}

// stop ends iked (SIGTERM: it deletes its SAs with the peer and removes
// what it installed in the kernel) and fails the test unless it exited 0;
// t.Cleanup calls it, tests may call it earlier.
func (d *iked) stop() {
	if d.stopped {
		return
	}
	d.stopped = true
	if !d.exited {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case d.err = <-d.done:
		case <-time.After(20 * time.Second):
			_ = d.cmd.Process.Kill()
			d.err = <-d.done
		}
		d.exited = true
	}
	d.logFile.Close()
	if d.err != nil {
		d.t.Errorf("iked %s exited with %v", d.name, d.err)
	}
	if d.t.Failed() {
		d.t.Logf("iked %s config:\n%s\nlog:\n%s", d.name, d.readFile(d.config), d.Log())
		return
	}
	// Warnings and errors are worth seeing even when the test passed.
	var notable []string
	for _, l := range strings.Split(d.Log(), "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			if !strings.Contains(l, "key log enabled") {
				notable = append(notable, l)
			}
		}
	}
	if len(notable) > 0 {
		d.t.Logf("iked %s logged:\n%s", d.name, strings.Join(notable, "\n"))
	}
}

func (d *iked) readFile(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// Log returns iked's log (JSON lines).
func (d *iked) Log() string { return d.readFile(d.logPath) }

// ikectl runs ikectl against this iked.
func (d *iked) ikectl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "ikectl"), append([]string{"--socket", d.socket}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("ikectl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// SAs returns ikectl sas --json.
func (d *iked) SAs() []ike.SAInfo {
	d.t.Helper()
	out, err := d.ikectl(30*time.Second, "sas", "--json")
	if err != nil {
		d.t.Fatal(err)
	}
	var sas []ike.SAInfo
	if err := json.Unmarshal([]byte(out), &sas); err != nil {
		d.t.Fatalf("ikectl sas --json: %v\n%s", err, out)
	}
	return sas
}

// Initiate runs ikectl initiate (which waits for the handshake).
func (d *iked) Initiate(name string) {
	d.t.Helper()
	if out, err := d.ikectl(60*time.Second, "initiate", name); err != nil {
		d.t.Fatalf("iked %s: initiate %s: %v\n%s", d.name, name, err, out)
	}
}

// KeyLogPrefs returns the key log's lines, each a tshark -o argument.
func (d *iked) KeyLogPrefs() []string {
	var prefs []string
	for _, l := range strings.Split(d.readFile(d.keyLog), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			prefs = append(prefs, l)
		}
	}
	return prefs
}

// waitFor polls cond (which returns "" when satisfied, else what it saw)
// until it holds or the hang guard expires.
func waitFor(t testing.TB, within time.Duration, what string, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		seen := cond()
		if seen == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last seen: %s", what, within, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// established waits until d has one established IKE SA with n Child SAs
// and returns it.
func (d *iked) established(n int) ike.SAInfo {
	d.t.Helper()
	var sa ike.SAInfo
	waitFor(d.t, 60*time.Second, "iked "+d.name+": established IKE SA", func() string {
		sas := d.SAs()
		if len(sas) == 1 && sas[0].State == "established" && len(sas[0].Children) == n {
			sa = sas[0]
			return ""
		}
		return describe(sas)
	})
	return sa
}

// describe prints SAs for messages.
func describe(sas []ike.SAInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d IKE SAs", len(sas))
	for _, s := range sas {
		fmt.Fprintf(&b, "; %s %s %s %s %s===%s", s.ID, s.Role, s.State, s.Algorithms, s.LocalAddr, s.RemoteAddr)
		for _, c := range s.Children {
			fmt.Fprintf(&b, " [child %s_i %s_o %s %s %v=%v in %d/%d out %d/%d]", c.SPIIn, c.SPIOut, c.Mode, c.Algorithms,
				c.LocalTS, c.RemoteTS, c.PacketsIn, c.BytesIn, c.PacketsOut, c.BytesOut)
		}
	}
	return b.String()
}
