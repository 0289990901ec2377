package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// A real Prometheus (Debian's prometheus package) scrapes a hub iked with
// two peers, each tunnel carrying pings through the userspace data plane,
// and the per-SA series it stored, read back through its HTTP API, hold
// what `ikectl sas --json` says.

// prometheusPath is where Debian's prometheus package installs the server.
const prometheusPath = "/usr/bin/prometheus"

// promAddr is where the test's Prometheus listens, inside the hub's
// namespace.
const promAddr = "127.0.0.1:9090"

// thirdPeer adds namespace T joined to the topology's I by a veth pair
// (veth-it in I, 10.97.<n>.1/24; veth-t in T, .2) and returns T and both
// addresses; t.Cleanup deletes T.
func thirdPeer(t *testing.T, topo *topology) (*netns, string, string) {
	t.Helper()
	ns := &netns{name: fmt.Sprintf("iked-t-%d-%d", os.Getpid(), topo.n)}
	if err := ipCmd("netns", "add", ns.name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNetns(t, ns) })
	hub, peer := fmt.Sprintf("10.97.%d.1", topo.n), fmt.Sprintf("10.97.%d.2", topo.n)
	for _, s := range [][]string{
		{"-n", topo.I.name, "link", "add", "veth-it", "type", "veth", "peer", "name", "veth-t", "netns", ns.name},
		{"-n", ns.name, "link", "set", "lo", "up"},
		{"-n", topo.I.name, "addr", "add", hub + "/24", "dev", "veth-it"},
		{"-n", ns.name, "addr", "add", peer + "/24", "dev", "veth-t"},
		{"-n", topo.I.name, "link", "set", "veth-it", "up"},
		{"-n", ns.name, "link", "set", "veth-t", "up"},
	} {
		if err := ipCmd(s...); err != nil {
			t.Fatal(err)
		}
	}
	return ns, hub, peer
}

// prometheus is a running Prometheus server in a namespace.
type prometheus struct {
	ns  *netns
	log *bytes.Buffer
}

// startPrometheus runs Prometheus in ns, scraping iked's metrics there
// every second.
func startPrometheus(t *testing.T, ns *netns) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: iked
    static_configs: [{targets: [%q]}]
`, ikedMetricsAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{ns: ns, log: &bytes.Buffer{}}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.command(ctx, prometheusPath, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting prometheus: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.log.String())
		}
	})
	return p
}

// sample is one series of an instant query's answer.
type sample struct {
	labels map[string]string
	at     float64 // the sample's time, Unix seconds
	value  float64
}

// query runs an instant PromQL query through Prometheus' HTTP API (GET
// /api/v1/query), from inside its namespace.
func (p *prometheus) query(q string) ([]sample, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := p.ns.command(ctx, self)
	cmd.Env = append(os.Environ(), httpGetEnv+"=http://"+promAddr+"/api/v1/query?query="+url.QueryEscape(q))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("query %s: %v: %s", q, err, strings.TrimSpace(errb.String()))
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
		return nil, fmt.Errorf("query %s: %v: %s", q, err, out.String())
	}
	if resp.Status != "success" || resp.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: %s", q, out.String())
	}
	var ss []sample
	for _, r := range resp.Data.Result {
		at, _ := r.Value[0].(float64)
		vs, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v", q, r.Value[1])
		}
		ss = append(ss, sample{labels: r.Metric, at: at, value: v})
	}
	return ss, nil
}

// one returns the value of the only series of q matching labels.
func one(ss []sample, labels map[string]string) (sample, bool) {
	var found []sample
	for _, s := range ss {
		match := true
		for k, v := range labels {
			match = match && s.labels[k] == v
		}
		if match {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		return sample{}, false
	}
	return found[0], true
}

// TestPrometheusScrapesTunnels: a hub iked in I with tunnels to iked B
// (in S) and iked C (in T), pings through both (5 to B, 3 to C), and
// Debian's Prometheus scraping the hub. Every Child SA's bytes and
// packets in and out, stored by Prometheus, equal `ikectl sas --json`;
// the IKE SAs are there with their state; the connections are up with
// totals equal to their Child SAs'; the ages lie between the scrape's
// time and now; the times to rekey within the configured lifetimes. After
// a Child SA rekey and more pings, the new Child SA's series count only
// its own traffic and the connection's counters both.
func TestPrometheusScrapesTunnels(t *testing.T) {
	requireRoot(t)
	requireTUN(t)
	requireTools(t, "ping")
	if _, err := os.Stat(prometheusPath); err != nil {
		missing(t, "prometheus not found at %s (install Debian's prometheus package)", prometheusPath)
	}
	topo := newTopology(t)
	moveInnerHost(t, topo.I, "veth-i", ikedInnerHost)
	moveInnerHost(t, topo.S, "veth-s", charonInnerHost)
	nsC, hubC, addrC := thirdPeer(t, topo)
	const innerC, netC = "10.3.0.1", "10.3.0.0/24"
	hubB, addrB := topo.IkedAddr.String(), topo.CharonAddr.String()
	lifetimes := func(c ikedConn) ikedConn { c.RekeyTime, c.IKERekeyTime = "1h", "4h"; return c }
	toB := lifetimes(ikedConn{Name: "to-b", Local: hubB, Remote: addrB, LocalID: "fqdn:hub.example", RemoteID: "fqdn:b.example", PSK: interopPSK,
		IKEProposals: []string{dpIKEProposal}, ESPProposals: []string{"aes256gcm16"}, LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}})
	toC := lifetimes(ikedConn{Name: "to-c", Local: hubC, Remote: addrC, LocalID: "fqdn:hub.example", RemoteID: "fqdn:c.example", PSK: interopPSK,
		IKEProposals: []string{dpIKEProposal}, ESPProposals: []string{"aes128gcm16"}, LocalTS: []string{ikedInnerNet}, RemoteTS: []string{netC}})
	startIked(t, topo.S, userspaceIked(addrB, charonInnerHost, ikedConn{Name: "to-hub", Local: addrB, Remote: hubB,
		LocalID: "fqdn:b.example", RemoteID: "fqdn:hub.example", PSK: interopPSK, IKEProposals: []string{dpIKEProposal},
		ESPProposals: []string{"aes256gcm16"}, LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}))
	startIked(t, nsC, userspaceIked(addrC, innerC, ikedConn{Name: "to-hub", Local: addrC, Remote: hubC,
		LocalID: "fqdn:c.example", RemoteID: "fqdn:hub.example", PSK: interopPSK, IKEProposals: []string{dpIKEProposal},
		ESPProposals: []string{"aes128gcm16"}, LocalTS: []string{netC}, RemoteTS: []string{ikedInnerNet}}))
	hubOpts := userspaceIked("0.0.0.0", ikedInnerHost, toB)
	hubOpts.Conns = []ikedConn{toB, toC}
	hub := startIked(t, topo.I, hubOpts)
	for _, conn := range []string{"to-b", "to-c"} {
		if out, err := hub.Initiate(conn); err != nil {
			t.Fatalf("initiate %s: %v\n%s", conn, err, out)
		}
	}
	ping(t, topo.I, ikedInnerHost, charonInnerHost, 5)
	ping(t, topo.I, ikedInnerHost, innerC, 3)
	// The counters the pings leave: 5 and 3 echo requests out, as many
	// replies in, on the hub's Child SA of each tunnel.
	want := map[string]uint64{"to-b": 5, "to-c": 3}
	var sas []ike.SAInfo
	waitFor(t, 5*time.Second, func() string {
		var err error
		if sas, err = hub.SAs(); err != nil {
			return err.Error()
		}
		for _, sa := range sas {
			if len(sa.Children) != 1 || sa.State != "established" {
				return fmt.Sprintf("hub SA %+v", sa)
			}
			ch := sa.Children[0]
			if n := want[sa.Connection]; ch.PacketsIn != n || ch.PacketsOut != n || ch.BytesIn != n*pingSize || ch.BytesOut != n*pingSize {
				return fmt.Sprintf("%s counters in %d/%d out %d/%d, want %d packets each way", sa.Connection, ch.PacketsIn, ch.BytesIn, ch.PacketsOut, ch.BytesOut, n)
			}
		}
		if len(sas) != 2 {
			return fmt.Sprintf("hub has %d IKE SAs", len(sas))
		}
		return ""
	})

	prom := startPrometheus(t, topo.I)
	// Wait for a scrape with the SAs (the traffic stopped before
	// Prometheus started: every scrape sees the same counters).
	var bytesSeries []sample
	waitFor(t, 60*time.Second, func() string {
		var err error
		if bytesSeries, err = prom.query(`iked_child_sa_bytes_total{job="iked"}`); err != nil {
			return err.Error()
		}
		if len(bytesSeries) != 4 {
			return fmt.Sprintf("Prometheus has %d iked_child_sa_bytes_total series, want 4", len(bytesSeries))
		}
		return ""
	})
	q := func(expr string) []sample {
		t.Helper()
		ss, err := prom.query(expr)
		if err != nil {
			t.Fatal(err)
		}
		return ss
	}
	packetSeries := q(`iked_child_sa_packets_total{job="iked"}`)
	installed, installedAt := q(`iked_child_sa_installed_seconds`), q(`timestamp(iked_child_sa_installed_seconds)`)
	established, establishedAt := q(`iked_ike_sa_established_seconds`), q(`timestamp(iked_ike_sa_established_seconds)`)
	childRekey, ikeRekey := q(`iked_child_sa_rekey_seconds`), q(`iked_ike_sa_rekey_seconds`)
	info, childInfo := q(`iked_ike_sa_info`), q(`iked_child_sa_info`)
	connUp, connBytes := q(`iked_connection_up`), q(`iked_connection_bytes_total`)
	queried := float64(time.Now().UnixMilli()) / 1000
	for _, sa := range sas {
		ch := sa.Children[0]
		ts := map[string]string{"connection": sa.Connection, "child": sa.Connection, "spi_in": ch.SPIIn,
			"local_ts": strings.Join(ch.LocalTS, ","), "remote_ts": strings.Join(ch.RemoteTS, ",")}
		with := func(k, v string) map[string]string {
			m := map[string]string{k: v}
			for a, b := range ts {
				m[a] = b
			}
			return m
		}
		for _, c := range []struct {
			series    []sample
			direction string
			want      uint64
		}{
			{bytesSeries, "in", ch.BytesIn}, {bytesSeries, "out", ch.BytesOut},
			{packetSeries, "in", ch.PacketsIn}, {packetSeries, "out", ch.PacketsOut},
		} {
			s, ok := one(c.series, with("direction", c.direction))
			if !ok || s.value != float64(c.want) {
				t.Errorf("%s Child SA %s %s: Prometheus has %v (found %v), ikectl %d", sa.Connection, ch.SPIIn, c.direction, s.value, ok, c.want)
			}
		}
		if s, ok := one(childInfo, with("ike_sa", sa.ID)); !ok || s.value != 1 || s.labels["spi_out"] != ch.SPIOut || s.labels["state"] != "installed" ||
			s.labels["algorithms"] != ch.Algorithms || s.labels["mode"] != ch.Mode || s.labels["protocol"] != ch.Protocol {
			t.Errorf("%s iked_child_sa_info: %+v (found %v), ikectl %+v", sa.Connection, s.labels, ok, ch)
		}
		if s, ok := one(info, map[string]string{"ike_sa": sa.ID, "connection": sa.Connection}); !ok || s.labels["state"] != sa.State ||
			s.labels["remote_id"] != sa.RemoteID || s.labels["local_id"] != sa.LocalID || s.labels["algorithms"] != sa.Algorithms || s.labels["role"] != sa.Role {
			t.Errorf("%s iked_ike_sa_info: %+v (found %v), ikectl %+v", sa.Connection, s.labels, ok, sa)
		}
		// An age is computed when iked collects, between the scrape's
		// start (the sample's time, in milliseconds) and the query.
		age := func(name string, values, times []sample, labels map[string]string, since time.Time) {
			v, ok1 := one(values, labels)
			at, ok2 := one(times, labels)
			origin := float64(since.UnixNano()) / 1e9
			if !ok1 || !ok2 || v.value < at.value-origin-0.001 || v.value > queried-origin {
				t.Errorf("%s %s = %v at %v: not between the scrape's %v and the query's %v seconds since %v",
					sa.Connection, name, v.value, at.value, at.value-origin, queried-origin, since)
			}
		}
		age("iked_ike_sa_established_seconds", established, establishedAt, map[string]string{"ike_sa": sa.ID}, sa.Established)
		age("iked_child_sa_installed_seconds", installed, installedAt, ts, ch.Installed)
		if s, ok := one(childRekey, ts); !ok || s.value <= 0 || s.value > 3600 {
			t.Errorf("%s iked_child_sa_rekey_seconds %v (found %v), want in (0, 3600] (rekey_time 1h)", sa.Connection, s.value, ok)
		}
		if s, ok := one(ikeRekey, map[string]string{"ike_sa": sa.ID}); !ok || s.value <= 0 || s.value > 4*3600 {
			t.Errorf("%s iked_ike_sa_rekey_seconds %v (found %v), want in (0, 14400] (ike_rekey_time 4h)", sa.Connection, s.value, ok)
		}
		if s, ok := one(connUp, map[string]string{"connection": sa.Connection}); !ok || s.value != 1 {
			t.Errorf("iked_connection_up{%s} %v (found %v)", sa.Connection, s.value, ok)
		}
		if s, ok := one(connBytes, map[string]string{"connection": sa.Connection, "direction": "in"}); !ok || s.value != float64(ch.BytesIn) {
			t.Errorf("iked_connection_bytes_total{%s, in} %v (found %v), want %d", sa.Connection, s.value, ok, ch.BytesIn)
		}
	}
	if ups := q(`iked_metrics_per_sa_exported`); len(ups) != 1 || ups[0].value != 1 {
		t.Errorf("iked_metrics_per_sa_exported: %+v", ups)
	}
	// The scrape itself: Prometheus saw no errors (up is 1).
	if ups := q(`up{job="iked"}`); len(ups) != 1 || ups[0].value != 1 {
		t.Errorf("up: %+v", ups)
	}

	// A Child SA rekey: the new Child SA has its own series, and the
	// connection's counters keep the old Child SA's traffic, in and out,
	// and add the new one's.
	var old ike.ChildInfo
	for _, sa := range sas {
		if sa.Connection == "to-b" {
			old = sa.Children[0]
		}
	}
	if out, err := hub.ikectl(30*time.Second, "rekey", "--child", "to-b"); err != nil {
		t.Fatalf("rekey --child to-b: %v\n%s", err, out)
	}
	var fresh string
	waitFor(t, 10*time.Second, func() string {
		sas, err := hub.SAs()
		if err != nil {
			return err.Error()
		}
		for _, sa := range sas {
			if sa.Connection == "to-b" && len(sa.Children) == 1 && sa.Children[0].SPIIn != old.SPIIn {
				fresh = sa.Children[0].SPIIn
				return ""
			}
		}
		return fmt.Sprintf("the old Child SA %s of to-b is still there: %+v", old.SPIIn, sas)
	})
	// Traffic on the new Child SA: 2 more pings.
	ping(t, topo.I, ikedInnerHost, charonInnerHost, 2)
	const after = 2 * pingSize
	waitFor(t, 5*time.Second, func() string {
		sas, err := hub.SAs()
		if err != nil {
			return err.Error()
		}
		for _, sa := range sas {
			if sa.Connection == "to-b" && len(sa.Children) == 1 && sa.Children[0].BytesIn == after && sa.Children[0].BytesOut == after {
				return ""
			}
		}
		return fmt.Sprintf("the new Child SA of to-b has not counted 2 pings each way: %+v", sas)
	})
	waitFor(t, 60*time.Second, func() string {
		ss, err := prom.query(`iked_child_sa_bytes_total{connection="to-b"}`)
		if err != nil {
			return err.Error()
		}
		if len(ss) != 2 || ss[0].labels["spi_in"] != fresh || ss[0].value != after || ss[1].value != after {
			return fmt.Sprintf("Prometheus has %+v, want the new Child SA %s with %d octets each way", ss, fresh, after)
		}
		return ""
	})
	for _, c := range []struct {
		direction string
		want      uint64
	}{{"in", old.BytesIn + after}, {"out", old.BytesOut + after}} {
		if s, ok := one(q(`iked_connection_bytes_total`), map[string]string{"connection": "to-b", "direction": c.direction}); !ok || s.value != float64(c.want) {
			t.Errorf("after the rekey iked_connection_bytes_total{to-b, %s} = %v (found %v), want the old Child SA's and the new one's, %d", c.direction, s.value, ok, c.want)
		}
	}
}
