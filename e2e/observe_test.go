package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/internal/testpki"
)

// stream is a running `ikectl log` or `ikectl monitor --json`: its events
// as they come.
type stream struct {
	t      *testing.T
	cmd    *exec.Cmd
	events chan control.Event
	stderr *syncBuffer
	done   chan error
}

// startStream runs ikectl with args (a streaming command and --json)
// against d and waits for the daemon to accept the stream.
func (d *daemon) startStream(args ...string) *stream {
	d.t.Helper()
	t := d.t
	s := &stream{t: t, events: make(chan control.Event, 1000), stderr: &syncBuffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(filepath.Join(binDir, "ikectl"), append([]string{"--socket", d.socket}, args...)...)
	s.cmd.Stderr = s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev control.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("ikectl %v printed %q: %v", args, sc.Text(), err)
				continue
			}
			s.events <- ev
		}
		close(s.events)
		s.done <- s.cmd.Wait()
	}()
	t.Cleanup(func() { _ = s.cmd.Process.Kill() })
	return s
}

// until returns the events up to and including the first that match
// accepts, failing after a hang guard.
func (s *stream) until(what string, match func(control.Event) bool) []control.Event {
	s.t.Helper()
	var seen []control.Event
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatalf("stream ended before %s: %s", what, s.stderr.String())
			}
			seen = append(seen, ev)
			if match(ev) {
				return seen
			}
		case <-deadline:
			s.t.Fatalf("no %s in %d events", what, len(seen))
		}
	}
}

// stop interrupts ikectl as Ctrl-C would; it must exit 0.
func (s *stream) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	for range s.events {
	}
	if err := <-s.done; err != nil {
		s.t.Fatalf("ikectl after SIGINT: %v\n%s", err, s.stderr.String())
	}
}

func saEvent(kind string) func(control.Event) bool {
	return func(ev control.Event) bool { return ev.SA != nil && ev.SA.Event == kind }
}

// TestObserve: what an operator watches a tunnel with, on real daemons.
// `ikectl monitor` sees the SA come up, rekey and go; `ikectl log --level
// debug` carries the protocol trace live; list-conns shows a configured
// connection that is down; list-certs the certificates with their expiry
// (as /metrics); stats the counters; rekey by connection name; terminate
// of one Child SA.
func TestObserve(t *testing.T) {
	pki := testpki.New(t, "E2E observe", "p256", 0)
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.7"), uint16(freePort(t, "127.0.0.7")))
	spare := fmt.Sprintf("  spare:\n    local: %s\n    remote: 127.0.0.9\n    auth: {method: psk, secret: %q}\n", a.Addr(), pskSecret)
	da := startDaemon(t, "alice", a, certConfig(t, t.TempDir(), pki, "alice.example", a, b, "bob.example", pki)+
		"    local_id: fqdn:alice.example\n"+spare)
	db := startDaemon(t, "bob", b, certConfig(t, t.TempDir(), pki, "bob.example", b, a, "alice.example", pki)+
		"    local_id: fqdn:bob.example\n")

	mon := da.startStream("monitor", "--json")
	logB := db.startStream("log", "--level", "debug", "--json")
	// The streams are accepted once the daemon watches: a log line of
	// bob's own, and a first SA event, prove it below; to be sure the
	// watches are in place before the handshake, wait for the control
	// requests the daemons log at debug level.
	waitUntil(t, "bob to accept the log stream", func() bool { return strings.Contains(db.log.String(), `"control stream started"`) })
	waitUntil(t, "alice to accept the monitor stream", func() bool {
		return strings.Contains(da.log.String(), `"control stream started"`)
	})

	if _, err := da.ikectl("initiate", "peer"); err != nil {
		t.Fatal(err)
	}
	sas := da.sas()
	if len(sas) != 1 || len(sas[0].Children) != 1 {
		t.Fatalf("SAs %+v", sas)
	}
	first, child := sas[0], sas[0].Children[0]
	evs := mon.until("child-up", saEvent(control.EventChildUp))
	if up := evs[len(evs)-2]; up.SA == nil || up.SA.Event != control.EventIKEUp || up.SA.SA.ID != first.ID || up.SA.SA.RemoteID != "fqdn:bob.example" {
		t.Errorf("monitor: %+v before child-up", up.SA)
	}
	if c := evs[len(evs)-1].SA.Child; c == nil || c.SPIIn != child.SPIIn {
		t.Errorf("child-up of %+v, want %s", c, child.SPIIn)
	}
	line := logB.until("the IKE_AUTH request's trace", func(ev control.Event) bool {
		return ev.Log != nil && strings.HasPrefix(ev.Log.Message, "parsed IKE_AUTH request 1 [ IDi ")
	})
	tr := line[len(line)-1].Log
	if tr.Level != "DEBUG" || !strings.Contains(tr.Text(), "idi=fqdn:alice.example") || !strings.Contains(tr.Text(), "tsi=") {
		t.Errorf("trace line %q", tr.Text())
	}
	logB.stop()

	// list-conns: peer up, spare configured but down.
	out, err := da.ikectl("list-conns", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var conns []control.ConnectionInfo
	if err := json.Unmarshal([]byte(out), &conns); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	state := map[string]string{}
	for _, c := range conns {
		state[c.Name] = fmt.Sprintf("%s %d %d %s %s", c.State, c.IKESAs, c.ChildSAs, c.Auth, c.Source)
	}
	if state["peer"] != "up 1 1 cert file" || state["spare"] != "down 0 0 psk file" {
		t.Errorf("list-conns: %v", state)
	}
	if out, err := da.ikectl("list-conns"); err != nil || !strings.Contains(out, "spare: down, 0 IKE SAs, 0 Child SAs (file)") {
		t.Errorf("list-conns text: %v\n%s", err, out)
	}
	if got := da.metric(`iked_connection_up{connection="spare"}`); got != 0 || !strings.Contains(scrapeAll(t, da), "\niked_connection_up{connection=\"spare\"} 0\n") {
		t.Errorf("spare not exported as down")
	}
	if got := da.metric(`iked_connection_up{connection="peer"}`); got != 1 {
		t.Errorf("iked_connection_up{peer} = %v", got)
	}

	// list-certs: the own certificate, the intermediate and the CA, as
	// /metrics exports their expiry.
	out, err = da.ikectl("list-certs", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var certs []control.CertificateInfo
	if err := json.Unmarshal([]byte(out), &certs); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	kinds := map[string]control.CertificateInfo{}
	for _, c := range certs {
		kinds[c.Kind] = c
	}
	if len(certs) != 3 || !strings.HasPrefix(kinds["end_entity"].Subject, "CN=alice.example,") || kinds["ca"].Subject != pki.Root.Subject.String() ||
		kinds["intermediate"].Subject != pki.Inter.Subject.String() || strings.Join(kinds["ca"].Connections, ",") != "peer" {
		t.Fatalf("list-certs: %+v", certs)
	}
	body := scrapeAll(t, da)
	for _, c := range certs {
		series := fmt.Sprintf(`iked_certificate_expiry_timestamp_seconds{issuer=%q,kind=%q,serial=%q,subject=%q}`, c.Issuer, c.Kind, c.Serial, c.Subject)
		// The values hold commas: looked up as a whole line.
		if want := fmt.Sprintf("\n%s %g\n", series, float64(c.NotAfter.Unix())); !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(body, "iked_kerberos_") {
		t.Error("Kerberos families served with no Kerberos configured")
	}

	// stats.
	out, err = da.ikectl("stats", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var st control.Stats
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.HandshakesCompleted["initiator"] != 1 || st.IKESAs["established"] != 1 || st.ChildSAs != 1 || st.PacketsSent == 0 {
		t.Errorf("stats %+v", st)
	}

	// rekey by connection name, then every Child SA of it.
	out, err = da.ikectl("rekey", "peer")
	if err != nil || !strings.Contains(out, "rekeyed peer: now ike-") {
		t.Fatalf("rekey peer: %v\n%s", err, out)
	}
	rk := mon.until("ike-rekey", saEvent(control.EventIKERekey))
	ev := rk[len(rk)-1].SA
	if ev.Old == nil || ev.Old.ID != first.ID || ev.SA.ID == first.ID || !strings.Contains(out, ev.SA.ID) {
		t.Errorf("ike-rekey %s -> %s, ikectl said %q", ev.Old.ID, ev.SA.ID, out)
	}
	if out, err := da.ikectl("rekey", "--child", "peer"); err != nil || !strings.Contains(out, "rekeyed 1 Child SA of peer: now ") {
		t.Fatalf("rekey --child peer: %v\n%s", err, out)
	}
	cr := mon.until("child-rekey", saEvent(control.EventChildRekey))
	newChild := cr[len(cr)-1].SA.Child
	if old := cr[len(cr)-1].SA.OldChild; old == nil || old.SPIIn != child.SPIIn || newChild == nil {
		t.Fatalf("child-rekey %+v", cr[len(cr)-1].SA)
	}

	// terminate one Child SA by connection name and SPI: the IKE SA stays.
	if out, err := da.ikectl("terminate", "peer", newChild.SPIIn); err != nil || !strings.Contains(out, "terminated Child SA "+newChild.SPIIn+" of "+ev.SA.ID) {
		t.Fatalf("terminate child: %v\n%s", err, out)
	}
	down := mon.until("child-down", saEvent(control.EventChildDown))
	if c := down[len(down)-1].SA.Child; c == nil || c.SPIIn != newChild.SPIIn {
		t.Errorf("child-down %+v", c)
	}
	if sas := da.sas(); len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 0 {
		t.Errorf("after terminating the Child SA: %+v", sas)
	}
	if _, err := da.ikectl("terminate", "peer", "01020304"); err == nil {
		t.Error("terminating an unknown Child SA succeeded")
	}
	mon.stop()

	// metrics_per_sa_limit: 0 by reload turns the per-SA series off at
	// once; the per-connection ones stay.
	if got := da.metric(`iked_metrics_per_sa_exported`); got != 1 || !strings.Contains(scrapeAll(t, da), "\niked_ike_sa_info{") {
		t.Fatalf("per-SA series not exported before the reload (%v)", got)
	}
	cfgPath := filepath.Join(filepath.Dir(da.socket), "iked.yaml")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, append([]byte("metrics_per_sa_limit: 0\n"), cfg...), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := da.ikectl("reload"); err != nil || !strings.Contains(out, "metrics_per_sa_limit: 1000 -> 0") {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	body = scrapeAll(t, da)
	if got := da.metric(`iked_metrics_per_sa_exported`); got != 0 || strings.Contains(body, "\niked_ike_sa_info{") || strings.Contains(body, "\niked_child_sa_") {
		t.Errorf("per-SA series after metrics_per_sa_limit: 0 (exported %v)", got)
	}
	if got := da.metric(`iked_connection_up{connection="peer"}`); got != 1 {
		t.Errorf("iked_connection_up{peer} = %v after the reload", got)
	}
}

// scrapeAll returns d's /metrics body.
func scrapeAll(t *testing.T, d *daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
