package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/iked/iked/ike"
	"github.com/prometheus/client_golang/prometheus"
)

// Tunnels: per connection and per SA, read from the engine's state on each
// scrape (docs/metrics.md, "Tunnels"). Nothing is counted on the packet
// path: the byte and packet counters are the data plane's, read through
// the engine's SA snapshot.

// TunnelSource is the engine state the tunnel collector reads; *ike.Engine
// implements it.
type TunnelSource interface {
	ConnStates() map[string]ike.ConnState
	SAs() []ike.SAInfo
	SAExtras() map[string]ike.SAExtra
	Connections() []*ike.Connection
}

// Label names of the tunnel series.
var (
	connLabels     = []string{"connection"}
	connDirLabels  = []string{"connection", "direction"}
	ikeSALabels    = []string{"connection", "ike_sa"}
	ikeInfoLabels  = []string{"connection", "ike_sa", "state", "role", "local", "remote", "local_id", "remote_id", "auth", "algorithms"}
	childLabels    = []string{"connection", "child", "spi_in", "local_ts", "remote_ts"}
	childDirLabels = []string{"connection", "child", "spi_in", "local_ts", "remote_ts", "direction"}
	childInfoLabel = []string{"connection", "child", "spi_in", "local_ts", "remote_ts", "ike_sa", "spi_out", "state", "protocol", "mode", "algorithms"}
)

var (
	descConnUp = prometheus.NewDesc("iked_connection_up",
		"1 while the configured connection has an established IKE SA, else 0.", connLabels, nil)
	descConnInfo = prometheus.NewDesc("iked_connection_info",
		"One series per configured connection, always 1: how it is configured (start_action initiate: the daemon keeps it up).",
		[]string{"connection", "start_action", "auth"}, nil)
	descConnIKESAs = prometheus.NewDesc("iked_connection_ike_sas",
		"Established IKE SAs of the connection.", connLabels, nil)
	descConnChildSAs = prometheus.NewDesc("iked_connection_child_sas",
		"Installed Child SAs of the connection.", connLabels, nil)
	descConnBytes = prometheus.NewDesc("iked_connection_bytes_total",
		"Octets the connection's Child SAs carried, by direction (in, out); survives rekeys: Child SAs gone are summed in.", connDirLabels, nil)
	descConnPackets = prometheus.NewDesc("iked_connection_packets_total",
		"Packets the connection's Child SAs carried, by direction (in, out); survives rekeys: Child SAs gone are summed in.", connDirLabels, nil)

	descIKEInfo = prometheus.NewDesc("iked_ike_sa_info",
		"One series per IKE SA, always 1: its state and what was negotiated in the labels.", ikeInfoLabels, nil)
	descIKEEstablished = prometheus.NewDesc("iked_ike_sa_established_seconds",
		"Seconds since the IKE SA was established.", ikeSALabels, nil)
	descIKERekey = prometheus.NewDesc("iked_ike_sa_rekey_seconds",
		"Seconds until the IKE SA is rekeyed (negative: overdue).", ikeSALabels, nil)
	descIKEReauth = prometheus.NewDesc("iked_ike_sa_reauth_seconds",
		"Seconds until the IKE SA is reauthenticated (negative: overdue).", ikeSALabels, nil)
	descChildInfo = prometheus.NewDesc("iked_child_sa_info",
		"One series per Child SA, always 1: its state, IKE SA and what was negotiated in the labels.", childInfoLabel, nil)
	descChildInstalled = prometheus.NewDesc("iked_child_sa_installed_seconds",
		"Seconds since the Child SA was installed in the data plane.", childLabels, nil)
	descChildRekey = prometheus.NewDesc("iked_child_sa_rekey_seconds",
		"Seconds until the Child SA is rekeyed (negative: overdue).", childLabels, nil)
	descChildBytes = prometheus.NewDesc("iked_child_sa_bytes_total",
		"Octets the Child SA carried, by direction (in, out); a rekey makes a new Child SA and a new series.", childDirLabels, nil)
	descChildPackets = prometheus.NewDesc("iked_child_sa_packets_total",
		"Packets the Child SA carried, by direction (in, out); a rekey makes a new Child SA and a new series.", childDirLabels, nil)

	descPerSAExported = prometheus.NewDesc("iked_metrics_per_sa_exported",
		"1 when this scrape carries the per-SA series (iked_ike_sa_*, iked_child_sa_*), 0 when metrics_per_sa_limit is 0 or exceeded.", nil, nil)
)

// traffic is a Child SA's or a connection's counters.
type traffic struct {
	bytesIn, bytesOut, packetsIn, packetsOut uint64
}

func (t *traffic) add(o traffic) {
	t.bytesIn += o.bytesIn
	t.bytesOut += o.bytesOut
	t.packetsIn += o.packetsIn
	t.packetsOut += o.packetsOut
}

// atLeast raises each counter of t to o's where o's is larger.
func (t *traffic) atLeast(o traffic) {
	t.bytesIn = max(t.bytesIn, o.bytesIn)
	t.bytesOut = max(t.bytesOut, o.bytesOut)
	t.packetsIn = max(t.packetsIn, o.packetsIn)
	t.packetsOut = max(t.packetsOut, o.packetsOut)
}

// Totals keeps, per connection, the traffic of the Child SAs that are gone
// (rekeyed, deleted), so that the per-connection counters survive rekeys.
// It is fed by an ike.ChildObserver's ChildSADown, which the engine calls
// with an SA's lock held: it only takes its own lock.
type Totals struct {
	mu      sync.Mutex
	retired map[string]traffic // by connection name
}

// NewTotals returns an empty Totals.
func NewTotals() *Totals { return &Totals{retired: map[string]traffic{}} }

// ChildSADown adds a Child SA's final counters to its connection's total.
func (t *Totals) ChildSADown(ev ike.ChildSAEvent) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.retired[ev.Connection]
	r.add(traffic{bytesIn: ev.BytesIn, bytesOut: ev.BytesOut, packetsIn: ev.PacketsIn, packetsOut: ev.PacketsOut})
	t.retired[ev.Connection] = r
}

// snapshot copies the retired totals.
func (t *Totals) snapshot() map[string]traffic {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.retired)
}

// prune forgets the totals of connections not in keep: a connection
// removed by a reload, whose SAs are gone too.
func (t *Totals) prune(keep map[string]*connState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	maps.DeleteFunc(t.retired, func(name string, _ traffic) bool { return keep[name] == nil })
}

// TunnelOptions tune the tunnel collector.
type TunnelOptions struct {
	// PerSALimit returns the current metrics_per_sa_limit: the per-SA
	// series are exported while there are at most that many IKE SAs; 0
	// turns them off. nil means no per-SA series.
	PerSALimit func() int
	// Now is the clock of the ages and times left; nil means time.Now.
	Now func() time.Time
}

type tunnelCollector struct {
	src    TunnelSource
	totals *Totals
	opts   TunnelOptions

	// mu serialises collections: last is what each connection's counters
	// were last exported as.
	mu   sync.Mutex
	last map[string]traffic
}

// NewTunnelCollector exports the per-connection series of src's
// connections and, within opts.PerSALimit, the per-SA series. totals
// (nil: none) holds the traffic of Child SAs gone; its ChildSADown must
// hear of every Child SA removed.
func NewTunnelCollector(src TunnelSource, totals *Totals, opts TunnelOptions) prometheus.Collector {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if totals == nil {
		totals = NewTotals()
	}
	return &tunnelCollector{src: src, totals: totals, opts: opts, last: map[string]traffic{}}
}

// Describe implements prometheus.Collector.
func (c *tunnelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descConnUp, descConnInfo, descConnIKESAs, descConnChildSAs, descConnBytes, descConnPackets,
		descIKEInfo, descIKEEstablished, descIKERekey, descIKEReauth,
		descChildInfo, descChildInstalled, descChildRekey, descChildBytes, descChildPackets, descPerSAExported,
	} {
		ch <- d
	}
}

// connState is one connection's part of a scrape.
type connState struct {
	up               bool
	ikeSAs, childSAs int
	live, exported   traffic
}

// Collect implements prometheus.Collector.
//
// The per-connection counters are the retired total plus the live Child
// SAs' counters. The retired totals are read before the SAs: a Child SA
// removed in between is then in neither (never in both, which would count
// it twice), so the sum can only fall short of the truth, and only for one
// scrape; exporting the larger of it and the last value keeps the counter
// monotonic. The per-connection series come from ConnStates, which reads
// each SA without formatting it; the per-SA series, within the limit,
// from SAs and SAExtras.
func (c *tunnelCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	conns := map[string]*connState{}
	for _, conn := range c.src.Connections() {
		conns[conn.Name] = &connState{}
		start, auth := "none", ""
		if conn.Initiate {
			start = "initiate"
		}
		if conn.Auth != nil {
			auth = conn.Auth.Name()
		}
		ch <- prometheus.MustNewConstMetric(descConnInfo, prometheus.GaugeValue, 1, conn.Name, start, auth)
	}
	retired := c.totals.snapshot()
	states := c.src.ConnStates()
	total := 0
	for name, st := range states {
		total += st.IKESAs
		if name == "" {
			continue // responders' half-open SAs, no connection chosen yet
		}
		cs := conns[name]
		if cs == nil {
			cs = &connState{}
			conns[name] = cs
		}
		cs.up = st.Established > 0
		cs.ikeSAs, cs.childSAs = st.Established, st.ChildSAs
		cs.live = traffic{bytesIn: st.BytesIn, bytesOut: st.BytesOut, packetsIn: st.PacketsIn, packetsOut: st.PacketsOut}
	}
	names := slices.Sorted(maps.Keys(conns))
	for _, name := range names {
		cs := conns[name]
		sum := retired[name]
		sum.add(cs.live)
		sum.atLeast(c.last[name])
		cs.exported = sum
		up := 0.0
		if cs.up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descConnUp, prometheus.GaugeValue, up, name)
		ch <- prometheus.MustNewConstMetric(descConnIKESAs, prometheus.GaugeValue, float64(cs.ikeSAs), name)
		ch <- prometheus.MustNewConstMetric(descConnChildSAs, prometheus.GaugeValue, float64(cs.childSAs), name)
		sendTraffic(ch, descConnBytes, descConnPackets, sum, name)
	}
	// Remember only the connections still there (configured, or with
	// SAs: one removed by a reload keeps its total while its SAs finish).
	c.totals.prune(conns)
	clear(c.last)
	for _, name := range names {
		c.last[name] = conns[name].exported
	}

	limit := 0
	if c.opts.PerSALimit != nil {
		limit = c.opts.PerSALimit()
	}
	if limit <= 0 || total > limit {
		ch <- prometheus.MustNewConstMetric(descPerSAExported, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descPerSAExported, prometheus.GaugeValue, 1)
	c.collectSAs(ch, c.src.SAs())
}

// collectSAs sends the per-SA series.
func (c *tunnelCollector) collectSAs(ch chan<- prometheus.Metric, sas []ike.SAInfo) {
	extras := c.src.SAExtras()
	// Ages by the wall clock, as Prometheus stamps its samples and as
	// ikectl shows the times: a monotonic difference drifts from it on a
	// machine whose clock is being slewed. Times left stay monotonic, as
	// the timers that fire them.
	now := c.opts.Now()
	wall := now.Round(0)
	age := func(since time.Time) float64 { return max(wall.Sub(since.Round(0)).Seconds(), 0) }
	for i := range sas {
		sa := &sas[i]
		x := extras[sa.ID]
		ch <- prometheus.MustNewConstMetric(descIKEInfo, prometheus.GaugeValue, 1,
			sa.Connection, sa.ID, sa.State, sa.Role, hostOf(sa.LocalAddr), hostOf(sa.RemoteAddr), sa.LocalID, sa.RemoteID, sa.Auth, sa.Algorithms)
		if !sa.Established.IsZero() {
			ch <- prometheus.MustNewConstMetric(descIKEEstablished, prometheus.GaugeValue, age(sa.Established), sa.Connection, sa.ID)
		}
		if !x.IKERekey.IsZero() {
			ch <- prometheus.MustNewConstMetric(descIKERekey, prometheus.GaugeValue, x.IKERekey.Sub(now).Seconds(), sa.Connection, sa.ID)
		}
		if !x.Reauth.IsZero() {
			ch <- prometheus.MustNewConstMetric(descIKEReauth, prometheus.GaugeValue, x.Reauth.Sub(now).Seconds(), sa.Connection, sa.ID)
		}
		for _, cs := range sa.Children {
			local, remote := strings.Join(cs.LocalTS, ","), strings.Join(cs.RemoteTS, ",")
			// iked has one Child SA configuration per connection, named
			// as the connection (swanctl's child name).
			child := sa.Connection
			ch <- prometheus.MustNewConstMetric(descChildInfo, prometheus.GaugeValue, 1,
				sa.Connection, child, cs.SPIIn, local, remote, sa.ID, cs.SPIOut, "installed", cs.Protocol, cs.Mode, cs.Algorithms)
			if !cs.Installed.IsZero() {
				ch <- prometheus.MustNewConstMetric(descChildInstalled, prometheus.GaugeValue, age(cs.Installed),
					sa.Connection, child, cs.SPIIn, local, remote)
			}
			if at := x.Children[cs.SPIIn].Rekey; !at.IsZero() {
				ch <- prometheus.MustNewConstMetric(descChildRekey, prometheus.GaugeValue, at.Sub(now).Seconds(),
					sa.Connection, child, cs.SPIIn, local, remote)
			}
			sendTraffic(ch, descChildBytes, descChildPackets, childTraffic(cs), sa.Connection, child, cs.SPIIn, local, remote)
		}
	}
}

func childTraffic(c ike.ChildInfo) traffic {
	return traffic{bytesIn: c.BytesIn, bytesOut: c.BytesOut, packetsIn: c.PacketsIn, packetsOut: c.PacketsOut}
}

// sendTraffic sends the in and out series of bytes and packets, with the
// direction label after labels.
func sendTraffic(ch chan<- prometheus.Metric, bytes, packets *prometheus.Desc, t traffic, labels ...string) {
	in, out := append(slices.Clone(labels), "in"), append(slices.Clone(labels), "out")
	ch <- prometheus.MustNewConstMetric(bytes, prometheus.CounterValue, float64(t.bytesIn), in...)
	ch <- prometheus.MustNewConstMetric(bytes, prometheus.CounterValue, float64(t.bytesOut), out...)
	ch <- prometheus.MustNewConstMetric(packets, prometheus.CounterValue, float64(t.packetsIn), in...)
	ch <- prometheus.MustNewConstMetric(packets, prometheus.CounterValue, float64(t.packetsOut), out...)
}

// hostOf is an "address:port" without the port, which NAT traversal
// changes (500 to 4500) while the SA stays the same.
func hostOf(addrPort string) string {
	if i := strings.LastIndexByte(addrPort, ':'); i > 0 && !strings.HasSuffix(addrPort, "]") {
		h := addrPort[:i]
		return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	return addrPort
}
