package interop

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/iked/iked/config"
	"github.com/iked/iked/ike"
)

// This file proves iked's userspace data plane with real traffic: iked ⇄
// iked and iked ⇄ charon (kernel-libipsec) carry pings through the tunnel,
// the veth carries only ESP in UDP, the Child SA counters match the pings,
// replayed and forged ESP packets are refused, and iperf3 measures iked ⇄
// iked against charon ⇄ charon on the same machine.

// dpESP are the ESP proposals the data-plane tests run with, and what
// both sides must report for them.
var dpESP = []struct {
	name, esp, want string
}{
	{"aes256gcm16", "aes256gcm16", "AES_GCM_16-256/NO_EXT_SEQ"},
	{"aes256-sha256", "aes256-sha256", "AES_CBC-256/HMAC_SHA2_256_128/NO_EXT_SEQ"},
}

const (
	dpIKEProposal = "aes256gcm16-prfsha256-x25519"
	ikedAID       = "fqdn:iked-a.example"
	ikedBID       = "fqdn:iked-b.example"
	// pingCount echo requests per direction; each echo request and reply
	// is an 84-octet IPv4 packet (20 IP, 8 ICMP, 56 data).
	pingCount = 5
	pingSize  = 84
)

// requireTUN: the userspace data plane needs /dev/net/tun.
func requireTUN(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing(t, "/dev/net/tun: %v", err)
	}
}

// moveInnerHost removes the inner host address the topology put on a
// veth: iked puts it on its TUN device (userspace.addresses) instead.
func moveInnerHost(t *testing.T, ns *netns, dev, addr string) {
	t.Helper()
	if err := ipCmd("-n", ns.name, "addr", "del", addr+"/32", "dev", dev); err != nil {
		t.Fatal(err)
	}
}

// userspaceIked returns the options of an iked with the userspace data
// plane, its inner address on the TUN device, listening on addr:500 and
// addr:4500 with one connection.
func userspaceIked(addr, inner string, c ikedConn) ikedOptions {
	return ikedOptions{
		Listen:    []string{addr + ":500", addr + ":4500"},
		Conns:     []ikedConn{c},
		Backend:   "userspace",
		Userspace: &ikedUserspace{Addresses: []string{inner + "/32"}},
		Metrics:   true,
	}
}

// dpIkedPair is two iked with the userspace data plane: A in the topology's
// I namespace (inner 10.1.0.1 on its TUN), B in S (inner 10.2.0.1), and a
// capture of veth-i (startIkedPair).
type dpIkedPair struct {
	topo         *topology
	cap          *capture
	a, b         *iked
	optsA, optsB ikedOptions // what they were started with, for restarts
}

// newIkedPair starts the two iked with the given ESP proposal and an
// unfiltered capture; A initiates.
func newIkedPair(t *testing.T, esp string) *dpIkedPair {
	t.Helper()
	return startIkedPair(t, ikedPairSetup{esp: esp})
}

// oneChild waits until d lists one established IKE SA with one Child SA
// with the wanted ESP algorithms and returns it.
func oneChild(t *testing.T, who string, d *iked, wantESP string) (ike.SAInfo, ike.ChildInfo) {
	t.Helper()
	var sa ike.SAInfo
	waitFor(t, 5*time.Second, func() string {
		sas, err := d.SAs()
		if err != nil {
			return err.Error()
		}
		if len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 1 {
			return fmt.Sprintf("%s lists %+v, want one established IKE SA with one Child SA", who, sas)
		}
		sa = sas[0]
		return ""
	})
	c := sa.Children[0]
	if c.Algorithms != wantESP {
		t.Errorf("%s ESP algorithms %q, want %q", who, c.Algorithms, wantESP)
	}
	if sa.RemoteAddr == "" || !strings.HasSuffix(sa.RemoteAddr, ":4500") || !strings.HasSuffix(sa.LocalAddr, ":4500") {
		t.Errorf("%s IKE SA %s === %s, want both on port 4500 (userspace forces ESP in UDP)", who, sa.LocalAddr, sa.RemoteAddr)
	}
	return sa, c
}

// ping runs ping -c count from src to dst inside ns and fails unless every
// echo request was answered. It waits up to 10 s for the last answer: only
// a lost echo makes it wait that long, a slow machine does not fail it.
func ping(t *testing.T, ns *netns, src, dst string, count int) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.name, "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "10",
		"-I", src, dst).CombinedOutput()
	if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d received", count)) {
		t.Fatalf("ping %s -> %s in %s: %v\n%s", src, dst, ns.name, err, out)
	}
}

// wantCounters waits until d's only Child SA shows the given inner packet
// and octet counts in both directions (ikectl sas --json).
func wantCounters(t *testing.T, who string, d *iked, pkts uint64) ike.ChildInfo {
	t.Helper()
	var c ike.ChildInfo
	bytes := pkts * pingSize
	waitFor(t, 3*time.Second, func() string {
		sas, err := d.SAs()
		if err != nil {
			return err.Error()
		}
		if len(sas) != 1 || len(sas[0].Children) != 1 {
			return fmt.Sprintf("%s lists %+v", who, sas)
		}
		c = sas[0].Children[0]
		if c.PacketsIn != pkts || c.PacketsOut != pkts || c.BytesIn != bytes || c.BytesOut != bytes {
			return fmt.Sprintf("%s Child SA counters in %d pkts/%d B, out %d pkts/%d B; want %d pkts/%d B each way",
				who, c.PacketsIn, c.BytesIn, c.PacketsOut, c.BytesOut, pkts, bytes)
		}
		return ""
	})
	return c
}

// frame is one captured Ethernet frame, classified.
type frame struct {
	at       time.Time // when the capture took it
	data     []byte
	src, dst netip.Addr // IPv4 header
	proto    byte
	sport    uint16
	dport    uint16
	udp      []byte // UDP payload
}

// esp reports whether f is ESP in UDP (RFC 3948: port 4500, not the
// non-ESP marker, not a keepalive) and returns its SPI and sequence number.
func (f frame) esp() (spi, seq uint32, ok bool) {
	if f.proto != unix.IPPROTO_UDP || (f.sport != 4500 && f.dport != 4500) || len(f.udp) < 8 {
		return 0, 0, false
	}
	spi = binary.BigEndian.Uint32(f.udp)
	return spi, binary.BigEndian.Uint32(f.udp[4:]), spi != 0
}

// readPcap reads the Ethernet frames of a pcap file (as tcpdump -w writes
// it; a record still being written at the end is ignored).
func readPcap(path string) ([]frame, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, fmt.Errorf("%s: %d octets, no pcap header", path, len(b))
	}
	var bo binary.ByteOrder
	frac := time.Microsecond // of the records' timestamps
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4:
		bo = binary.LittleEndian
	case 0xa1b23c4d:
		bo, frac = binary.LittleEndian, time.Nanosecond
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, frac = binary.BigEndian, time.Nanosecond
	default:
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("%s: link type %d, want Ethernet", path, lt)
	}
	var frames []frame
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		if off+16+n > len(b) {
			break
		}
		f := classifyFrame(b[off+16 : off+16+n])
		f.at = time.Unix(int64(bo.Uint32(b[off:])), int64(bo.Uint32(b[off+4:]))*int64(frac))
		frames = append(frames, f)
		off += 16 + n
	}
	return frames, nil
}

func classifyFrame(d []byte) frame {
	f := frame{data: d}
	if len(d) < 34 || binary.BigEndian.Uint16(d[12:14]) != 0x0800 {
		return f
	}
	ip := d[14:]
	ihl := int(ip[0]&0xf) * 4
	f.proto = ip[9]
	f.src, _ = netip.AddrFromSlice(ip[12:16])
	f.dst, _ = netip.AddrFromSlice(ip[16:20])
	if f.proto == unix.IPPROTO_UDP && len(ip) >= ihl+8 {
		f.sport, f.dport = binary.BigEndian.Uint16(ip[ihl:]), binary.BigEndian.Uint16(ip[ihl+2:])
		f.udp = ip[ihl+8:]
	}
	if f.proto == unix.IPPROTO_TCP && len(ip) >= ihl+4 {
		f.sport, f.dport = binary.BigEndian.Uint16(ip[ihl:]), binary.BigEndian.Uint16(ip[ihl+2:])
	}
	return f
}

// wireCheck asserts what the capture holds: between the outer addresses
// only ESP in UDP on port 4500 (spiAB from A, spiBA from B, wantEach of
// each) besides IKE, no clear packet of the inner subnets, no plain ESP;
// and, decrypted by tshark with iked's key log, exactly wantEach ICMP
// echo requests and as many replies each way inside.
func wireCheck(t *testing.T, c *capture, prefs []string, a, b netip.Addr, spiAB, spiBA uint32, wantEach int) {
	t.Helper()
	c.Stop()
	frames, err := readPcap(c.path)
	if err != nil {
		t.Fatal(err)
	}
	inner := []netip.Prefix{netip.MustParsePrefix(ikedInnerNet), netip.MustParsePrefix(charonInnerNet)}
	var ab, ba, otherESP, clear, plainESP, ike, other int
	for _, f := range frames {
		if !f.src.IsValid() {
			continue // ARP, IPv6 neighbour discovery
		}
		for _, p := range inner {
			if p.Contains(f.src) || p.Contains(f.dst) {
				clear++
			}
		}
		spi, _, isESP := f.esp()
		switch {
		case f.proto == 50:
			plainESP++
		case isESP && f.src == a && f.dst == b && f.sport == 4500 && f.dport == 4500 && spi == spiAB:
			ab++
		case isESP && f.src == b && f.dst == a && f.sport == 4500 && f.dport == 4500 && spi == spiBA:
			ba++
		case isESP:
			otherESP++
		case f.proto == unix.IPPROTO_UDP && (f.sport == 500 || f.dport == 500 || f.sport == 4500 || f.dport == 4500):
			ike++
		default:
			other++
		}
	}
	t.Logf("capture: %d frames: ESP-in-UDP %d A->B (SPI %08x), %d B->A (SPI %08x); IKE %d; clear inner %d; plain ESP %d; other ESP %d; other IPv4 %d",
		len(frames), ab, spiAB, ba, spiBA, ike, clear, plainESP, otherESP, other)
	if clear != 0 || plainESP != 0 || otherESP != 0 || other != 0 || ab != wantEach || ba != wantEach {
		t.Errorf("on the wire: want only ESP in UDP (%d each way) and IKE; got %d clear inner packets, %d plain ESP, %d ESP with other SPIs, %d other IPv4, ESP %d A->B and %d B->A",
			wantEach, clear, plainESP, otherESP, other, ab, ba)
	}
	// Decrypted with the key log, the ESP carries the pings.
	out, _, err := c.tsharkPrefs(append(prefs, "esp.enable_encryption_decode:TRUE"),
		"-Y", "esp && icmp", "-T", "fields", "-E", "aggregator=,", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type")
	if err != nil {
		t.Errorf("tshark: %v", err)
		return
	}
	var req, rep int
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			continue
		}
		switch f[2] {
		case "8":
			req++
		case "0":
			rep++
		}
	}
	if req != wantEach || rep != wantEach {
		t.Errorf("ESP decrypted with iked's key log holds %d echo requests and %d replies, want %d each:\n%s", req, rep, wantEach, out)
	}
}

func spiValue(t *testing.T, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		t.Fatalf("SPI %q: %v", s, err)
	}
	return uint32(v)
}

// TestDataplaneIkedIked: two iked with backend userspace in two namespaces
// carry pings both ways through an ESP tunnel (10.1.0.0/24 === 10.2.0.0/24,
// inner addresses on the TUN devices), for AES-GCM-256 and AES-CBC-256 with
// HMAC-SHA2-256. The link carries only ESP in UDP; ikectl's counters are
// the pings'.
func TestDataplaneIkedIked(t *testing.T) {
	for _, e := range dpESP {
		t.Run(e.name, func(t *testing.T) {
			p := newIkedPair(t, e.esp)
			_, ac := oneChild(t, "iked A", p.a, e.want)
			_, bc := oneChild(t, "iked B", p.b, e.want)
			if ac.SPIOut != bc.SPIIn || ac.SPIIn != bc.SPIOut {
				t.Fatalf("Child SA SPIs do not pair: A in %s out %s, B in %s out %s", ac.SPIIn, ac.SPIOut, bc.SPIIn, bc.SPIOut)
			}
			if out, err := exec.Command("ip", "-n", p.topo.I.name, "-o", "addr", "show", "dev", "iked0").CombinedOutput(); err != nil ||
				!strings.Contains(string(out), ikedInnerHost+"/32") {
				t.Errorf("iked0 in A lacks %s: %v\n%s", ikedInnerHost, err, out)
			}
			ping(t, p.topo.I, ikedInnerHost, charonInnerHost, pingCount)
			ping(t, p.topo.S, charonInnerHost, ikedInnerHost, pingCount)
			// Each side sent pingCount requests and pingCount replies.
			wantCounters(t, "iked A", p.a, 2*pingCount)
			wantCounters(t, "iked B", p.b, 2*pingCount)
			wantESPMetrics(t, "iked A", p.a, 2*pingCount, 2*pingCount, nil)
			wantESPMetrics(t, "iked B", p.b, 2*pingCount, 2*pingCount, nil)
			wireCheck(t, p.cap, p.a.KeyLogPrefs(), p.topo.IkedAddr, p.topo.CharonAddr, spiValue(t, ac.SPIOut), spiValue(t, ac.SPIIn), 2*pingCount)
		})
	}
}

// newCharonDataplanePair is iked (userspace, inner 10.1.0.1 on its TUN) in
// I and charon (kernel-libipsec, install_routes, inner 10.2.0.1 on its
// veth) in S, with an unfiltered capture of veth-s.
func newCharonDataplanePair(t *testing.T, esp string) *pair {
	t.Helper()
	return startCharonPair(t, charonPairSetup{userspace: true, esp: esp})
}

// charonCounter returns a counter of charon's Child SA as a number.
func charonCounter(c charonChildSA, key string) uint64 {
	v, _ := strconv.ParseUint(c.Raw[key], 10, 64)
	return v
}

// TestDataplaneCharon: iked (backend userspace) and charon (kernel-
// libipsec, which routes 10.1.0.0/24 through ipsec0 in table 220 with
// source 10.2.0.1) carry pings both ways, whichever side initiated, for
// AES-GCM-256 and AES-CBC-256/HMAC-SHA2-256. Only ESP in UDP crosses the
// link; iked's counters are the pings', and charon's agree.
func TestDataplaneCharon(t *testing.T) {
	for _, dir := range directions {
		for _, e := range dpESP {
			t.Run(dir.name+"/"+e.name, func(t *testing.T) {
				p := newCharonDataplanePair(t, e.esp)
				establish(t, p, dir.charonInitiates)
				is, cs := checkEstablished(t, p, dir.charonInitiates, "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", e.want)
				if !strings.HasSuffix(is.LocalAddr, ":4500") || cs.RemotePort != "4500" {
					t.Errorf("IKE SA not on port 4500: iked %s === %s, charon remote port %s", is.LocalAddr, is.RemoteAddr, cs.RemotePort)
				}
				routes, err := exec.Command("ip", "-n", p.topo.S.name, "route", "show", "table", "220").CombinedOutput()
				if err != nil || !strings.Contains(string(routes), ikedInnerNet) || !strings.Contains(string(routes), "dev ipsec0") ||
					!strings.Contains(string(routes), "src "+charonInnerHost) {
					t.Errorf("charon's table 220 lacks %s dev ipsec0 src %s: %v\n%s", ikedInnerNet, charonInnerHost, err, routes)
				}
				ping(t, p.topo.I, ikedInnerHost, charonInnerHost, pingCount)
				ping(t, p.topo.S, charonInnerHost, ikedInnerHost, pingCount)
				ic := wantCounters(t, "iked", p.iked, 2*pingCount)
				wantESPMetrics(t, "iked", p.iked, 2*pingCount, 2*pingCount, nil)
				cc := p.charon.mustListSAs()[0].Children[0]
				t.Logf("iked counters: in %d pkts/%d B, out %d pkts/%d B; charon: in %s pkts/%s B, out %s pkts/%s B",
					ic.PacketsIn, ic.BytesIn, ic.PacketsOut, ic.BytesOut,
					cc.Raw["packets-in"], cc.Raw["bytes-in"], cc.Raw["packets-out"], cc.Raw["bytes-out"])
				if charonCounter(cc, "packets-in") != ic.PacketsOut || charonCounter(cc, "packets-out") != ic.PacketsIn ||
					charonCounter(cc, "bytes-in") != ic.BytesOut || charonCounter(cc, "bytes-out") != ic.BytesIn {
					t.Errorf("charon's counters (%+v) do not mirror iked's (%+v)", cc.Raw, ic)
				}
				wireCheck(t, p.cap, p.iked.KeyLogPrefs(), p.topo.IkedAddr, p.topo.CharonAddr,
					spiValue(t, ic.SPIOut), spiValue(t, ic.SPIIn), 2*pingCount)
			})
		}
	}
}

// TestDataplaneCharonTCP: bulk TCP (iperf3, 2 s each way) between iked
// (userspace, with its TUN and UDP offloads) and charon (kernel-libipsec,
// none). iked cuts the kernel's TCP super-segments into ESP packets of at
// most the MTU and sends them with UDP GSO; charon must take every one as
// an ordinary ESP packet. Asserted is the invariant, whatever the load:
// every ESP packet one side sent was taken in by the other's Child SA or
// dropped by the receiving socket because it overflowed (a receiver
// descheduled on a busy machine falls behind; TCP recovers), and nothing
// else; each packet charon took in was one ESP packet of at most the MTU;
// iked drops nothing. How many overflow depends on the machine: it is
// logged, never asserted.
func TestDataplaneCharonTCP(t *testing.T) {
	requireTools(t, "iperf3")
	p := newCharonDataplanePair(t, "aes256gcm16")
	establish(t, p, false)
	oneChild(t, "iked", p.iked, "AES_GCM_16-256/NO_EXT_SEQ")
	ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 1)
	up, lineUp := iperf3(t, p.topo.I, p.topo.S, ikedInnerHost, charonInnerHost, 2)
	down, lineDown := iperf3(t, p.topo.S, p.topo.I, charonInnerHost, ikedInnerHost, 2)
	t.Logf("iked -> charon: %s", lineUp)
	t.Logf("charon -> iked: %s", lineDown)
	if up.Bytes <= 0 || down.Bytes <= 0 {
		t.Fatalf("no TCP traffic: %.0f and %.0f octets", up.Bytes, down.Bytes)
	}
	waitFor(t, 3*time.Second, func() string {
		sas, err := p.iked.SAs()
		if err != nil || len(sas) != 1 || len(sas[0].Children) != 1 {
			return fmt.Sprintf("iked SAs: %+v %v", sas, err)
		}
		ic := sas[0].Children[0]
		cc := p.charon.mustListSAs()[0].Children[0]
		cIn, cOut, cBytesIn := charonCounter(cc, "packets-in"), charonCounter(cc, "packets-out"), charonCounter(cc, "bytes-in")
		cDrops, err := udpSocketDrops(p.topo.S)
		if err != nil {
			return err.Error()
		}
		iDrops, err := udpSocketDrops(p.topo.I)
		if err != nil {
			return err.Error()
		}
		links := linkDrops(p.topo.I, "veth-i") + "; " + linkDrops(p.topo.S, "veth-s")
		if ic.PacketsOut != cIn+cDrops || cOut != ic.PacketsIn+iDrops {
			return fmt.Sprintf("ESP not accounted for: iked sent %d, charon took in %d, its sockets dropped %d; charon sent %d, iked took in %d, its sockets dropped %d (%s)",
				ic.PacketsOut, cIn, cDrops, cOut, ic.PacketsIn, iDrops, links)
		}
		if cBytesIn > cIn*1400 {
			return fmt.Sprintf("charon took in %d packets of %d octets: more than the MTU each", cIn, cBytesIn)
		}
		t.Logf("iked sent %d ESP packets: charon took in %d (%d octets), its sockets dropped %d; charon sent %d: iked took in %d, its sockets dropped %d (%s)",
			ic.PacketsOut, cIn, cBytesIn, cDrops, cOut, ic.PacketsIn, iDrops, links)
		return ""
	})
	m, err := p.iked.Metrics()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range espDropReasons {
		if v, _ := metricValue(m, "iked_esp_packets_dropped_total", `reason="`+r+`"`); v != 0 {
			t.Errorf("iked dropped %v packets as %s", v, r)
		}
	}
}

// udpSocketDrops returns the datagrams the UDP sockets in ns dropped (the
// drops column of /proc/net/udp and udp6: a datagram, or each segment of a
// GRO datagram, that found the socket's receive buffer full).
func udpSocketDrops(ns *netns) (uint64, error) {
	var n uint64
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		out, err := ns.command(context.Background(), "cat", f).Output()
		if err != nil {
			return 0, fmt.Errorf("reading %s in %s: %v", f, ns.name, err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n")[1:] {
			fs := strings.Fields(l)
			if len(fs) < 13 {
				continue
			}
			d, err := strconv.ParseUint(fs[len(fs)-1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s in %s: %q: %v", f, ns.name, l, err)
			}
			n += d
		}
	}
	return n, nil
}

// linkDrops describes dev's drop counters in ns, for failure messages.
func linkDrops(ns *netns, dev string) string {
	out, err := exec.Command("ip", "-n", ns.name, "-s", "-j", "link", "show", dev).Output()
	if err != nil {
		return fmt.Sprintf("%s: %v", dev, err)
	}
	var links []struct {
		Stats64 struct {
			RX struct {
				Dropped uint64 `json:"dropped"`
			} `json:"rx"`
			TX struct {
				Dropped uint64 `json:"dropped"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return fmt.Sprintf("%s: %v %s", dev, err, out)
	}
	return fmt.Sprintf("%s dropped rx %d tx %d", dev, links[0].Stats64.RX.Dropped, links[0].Stats64.TX.Dropped)
}

// inNS runs f on an OS thread switched into the namespace; sockets f
// opens stay in it.
func inNS(ns *netns, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + ns.name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ferr := f()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and ends with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("restoring the namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// espDropReasons are the reasons of iked_esp_packets_dropped_total the
// tests check. "no_route" and "policy" are left out: they count what the
// kernel routes into the TUN device outside every SA, e.g. IPv6
// link-local chatter of the device itself (MLD reports, router
// solicitations), which depends on timing.
var espDropReasons = []string{"replay", "integrity", "unknown_spi", "malformed", "send_error"}

// wantESPMetrics waits (up to 3 s: a packet just sent may still be in
// flight) until d's data-plane metrics show the ESP packets sent and
// received (received counts packets accepted: verified and inside the
// window) and the drops by reason (absent reasons must be 0), else fails.
// It returns the metrics.
func wantESPMetrics(t *testing.T, who string, d *iked, sent, received float64, drops map[string]float64) string {
	t.Helper()
	var m string
	waitFor(t, 3*time.Second, func() string {
		var err error
		if m, err = d.Metrics(); err != nil {
			return err.Error()
		}
		var diffs []string
		for _, c := range []struct {
			name, labels string
			want         float64
		}{{"iked_esp_packets_sent_total", "", sent}, {"iked_esp_packets_received_total", "", received}} {
			if v, ok := metricValue(m, c.name, c.labels); !ok || v != c.want {
				diffs = append(diffs, fmt.Sprintf("%s %v (present %v), want %v", c.name, v, ok, c.want))
			}
		}
		for _, r := range espDropReasons {
			if v, ok := metricValue(m, "iked_esp_packets_dropped_total", `reason="`+r+`"`); !ok || v != drops[r] {
				diffs = append(diffs, fmt.Sprintf("iked_esp_packets_dropped_total{reason=%q} %v (present %v), want %v", r, v, ok, drops[r]))
			}
		}
		if len(diffs) > 0 {
			return who + ": " + strings.Join(diffs, "; ")
		}
		return ""
	})
	return m
}

// TestDataplaneReplayICV sends captured ESP packets to a running iked
// (B, backend userspace) again: one that B never received (an nftables
// rule in B's namespace dropped it after the capture saw it) with one
// octet of its ICV flipped, which must be refused as forged without
// moving the replay window; then the intact packet, which must be
// accepted (and answered: it is an echo request); then the same packet
// again, a replay, which must be refused. Refused packets leave B's Child
// SA counters unchanged and elicit no reply; the data-plane drop metrics,
// when iked exposes them, count one integrity failure and one replay.
func TestDataplaneReplayICV(t *testing.T) {
	requireTools(t, "nft")
	for _, e := range dpESP {
		t.Run(e.name, func(t *testing.T) {
			p := newIkedPair(t, e.esp)
			_, ac := oneChild(t, "iked A", p.a, e.want)
			oneChild(t, "iked B", p.b, e.want)
			spiAB := spiValue(t, ac.SPIOut)
			ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 1)
			wantCounters(t, "iked B", p.b, 1)

			// Drop ESP from A on B's side, after the capture on A's veth
			// saw it: B never processes the next echo request.
			nft := func(args ...string) {
				t.Helper()
				out, err := exec.Command("ip", append([]string{"netns", "exec", p.topo.S.name, "nft"}, args...)...).CombinedOutput()
				if err != nil {
					t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
				}
			}
			nft("add table inet dptest")
			nft("add chain inet dptest in { type filter hook input priority -300 ; }")
			nft(fmt.Sprintf("add rule inet dptest in ip saddr %s udp dport 4500 @th,64,32 0x%08x counter drop", p.topo.IkedAddr, spiAB))
			_ = exec.Command("ip", "netns", "exec", p.topo.I.name, "ping", "-n", "-c", "1", "-W", "1", "-I", ikedInnerHost, charonInnerHost).Run()
			rules, _ := exec.Command("ip", "netns", "exec", p.topo.S.name, "nft", "list", "table", "inet", "dptest").CombinedOutput()
			nft("delete table inet dptest")
			if !strings.Contains(string(rules), "packets 1 ") {
				t.Fatalf("the nftables rule did not drop exactly one packet:\n%s", rules)
			}
			wantCounters(t, "iked B (dropped echo request not counted)", p.b, 1)

			var pkt []byte
			var lastSeq uint32
			waitFor(t, 3*time.Second, func() string {
				frames, err := readPcap(p.cap.path)
				if err != nil {
					return err.Error()
				}
				pkt, lastSeq = nil, 0
				for _, f := range frames {
					if spi, seq, ok := f.esp(); ok && spi == spiAB && f.src == p.topo.IkedAddr && seq > lastSeq {
						pkt, lastSeq = append([]byte(nil), f.udp...), seq
					}
				}
				if lastSeq != 2 {
					return fmt.Sprintf("captured ESP from A up to sequence number %d, want 2", lastSeq)
				}
				return ""
			})

			// B received 1 ESP packet and answered it; nothing dropped.
			wantESPMetrics(t, "iked B before", p.b, 1, 1, nil)
			var sock *net.UDPConn
			if err := inNS(p.topo.I, func() (err error) {
				sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: p.topo.IkedAddr.AsSlice()})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer sock.Close()
			// A new UDP datagram from another port of A's address: the
			// kernel computes its checksum (a frame captured on the way
			// out carries a partial one, see the userspace live test).
			send := func(b []byte) {
				t.Helper()
				if _, err := sock.WriteToUDPAddrPort(b, netip.AddrPortFrom(p.topo.CharonAddr, 4500)); err != nil {
					t.Fatal(err)
				}
			}

			bad := append([]byte(nil), pkt...)
			bad[len(bad)-1] ^= 0x01 // last octet of the ICV
			// Once the drop is counted, the packet has been processed.
			send(bad)
			wantESPMetrics(t, "iked B after a forged packet", p.b, 1, 1, map[string]float64{"integrity": 1})
			wantCounters(t, "iked B after a forged packet", p.b, 1)

			send(pkt)
			// Accepted: the echo request reaches B, its reply reaches A.
			wantCounters(t, "iked B after the intact packet", p.b, 2)
			waitFor(t, 3*time.Second, func() string {
				sas, err := p.a.SAs()
				if err != nil || len(sas) != 1 || len(sas[0].Children) != 1 || sas[0].Children[0].PacketsIn != 2 {
					return fmt.Sprintf("iked A did not receive the reply to the re-sent echo request: %+v %v", sas, err)
				}
				return ""
			})

			send(pkt)
			wantESPMetrics(t, "iked B after a replayed packet", p.b, 2, 2, map[string]float64{"integrity": 1, "replay": 1})
			wantCounters(t, "iked B after a replayed packet", p.b, 2)

			// Both stay refused when sent again; the forged one now
			// carries a sequence number the window has seen, so it is
			// refused as a replay before its ICV is checked (RFC 4303
			// §3.4.3).
			send(pkt)
			send(bad)
			m := wantESPMetrics(t, "iked B at the end", p.b, 2, 2, map[string]float64{"integrity": 1, "replay": 3})
			wantCounters(t, "iked B after a second replay and forgery", p.b, 2)
			if verbose() {
				t.Logf("iked B metrics:\n%s", m)
			}
		})
	}
}

// iperf3Result is what TestDataplaneThroughput reads of iperf3 -J.
type iperf3Result struct {
	End struct {
		SumSent struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int     `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperfRun is what one iperf3 run carried: the octets the server received
// (TCP payload) and their rate.
type iperfRun struct {
	Bytes float64
	Mbit  float64
}

// iperf3 runs an iperf3 server on dstAddr in dst (one test) and a TCP
// client from srcAddr in src for the duration; it returns what the server
// received and a line for the log.
func iperf3(t *testing.T, src, dst *netns, srcAddr, dstAddr string, secs int) (iperfRun, string) {
	t.Helper()
	srv := exec.Command("ip", "netns", "exec", dst.name, "iperf3", "-s", "-1", "-B", dstAddr, "-p", "5201")
	var srvOut strings.Builder
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	defer func() {
		select {
		case <-srvDone:
		case <-time.After(5 * time.Second):
			_ = srv.Process.Kill()
			<-srvDone
		}
	}()
	var out []byte
	var err error
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(100 * time.Millisecond) {
		out, err = exec.Command("ip", "netns", "exec", src.name, "iperf3", "-c", dstAddr, "-B", srcAddr, "-p", "5201",
			"-t", strconv.Itoa(secs), "-J").Output()
		// Until the server listens, the client reports (in its JSON,
		// whatever its exit status) that the connection was refused.
		if !strings.Contains(string(out), "Connection refused") || time.Now().After(deadline) {
			break
		}
	}
	var r iperf3Result
	if jerr := json.Unmarshal(out, &r); jerr != nil || err != nil || r.Error != "" {
		t.Fatalf("iperf3 %s -> %s: %v %v %s\n%s\nserver: %s", srcAddr, dstAddr, err, jerr, r.Error, out, srvOut.String())
	}
	run := iperfRun{Bytes: r.End.SumReceived.Bytes, Mbit: r.End.SumReceived.BitsPerSecond / 1e6}
	return run, fmt.Sprintf("%.1f Mbit/s received (%.1f MB, %d retransmits)", run.Mbit, run.Bytes/1e6, r.End.SumSent.Retransmits)
}

// TestDataplaneThroughput runs iperf3 (TCP, one stream, 10.1.0.1 ->
// 10.2.0.1, ESP aes256gcm16 in UDP) through iked ⇄ iked (backend
// userspace) and through charon ⇄ charon (kernel-libipsec) on the same
// machine in the same run, logs both rates and writes them to
// $IKED_THROUGHPUT_FILE (default: iked-throughput.txt in the temporary
// directory). By default each run lasts 3 s and the test only asserts
// that both carry traffic; IKED_THROUGHPUT=1 runs 10 s, three times each,
// alternating.
func TestDataplaneThroughput(t *testing.T) {
	requireCharon(t)
	requireTUN(t)
	requireTools(t, "iperf3", "ping")
	secs, rounds := 3, 1
	if os.Getenv("IKED_THROUGHPUT") != "" {
		secs, rounds = 10, 3
	}
	var ikedRates, swanRates []float64
	var report strings.Builder
	fmt.Fprintf(&report, "# %s, %d CPUs, %s/%s, iperf3 TCP %d s x %d, ESP aes256gcm16 in UDP, MTU 1400\n",
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, secs, rounds)
	for round := 0; round < rounds; round++ {
		t.Run(fmt.Sprintf("iked-iked/%d", round), func(t *testing.T) {
			p := newIkedPair(t, "aes256gcm16")
			oneChild(t, "iked A", p.a, "AES_GCM_16-256/NO_EXT_SEQ")
			ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 1)
			run, line := iperf3(t, p.topo.I, p.topo.S, ikedInnerHost, charonInnerHost, secs)
			mbit := run.Mbit
			t.Logf("iked ⇄ iked (userspace): %s", line)
			// The stream crossed the tunnel: B's Child SA took in at
			// least what iperf3 received (its TCP payload, without the
			// headers the Child SA counts too).
			_, bc := oneChild(t, "iked B", p.b, "AES_GCM_16-256/NO_EXT_SEQ")
			if float64(bc.BytesIn) < run.Bytes {
				t.Errorf("iked B's Child SA took in %d octets, less than the %.0f iperf3 received", bc.BytesIn, run.Bytes)
			}
			for _, side := range []struct {
				name string
				d    *iked
			}{{"A", p.a}, {"B", p.b}} {
				m, err := side.d.Metrics()
				if err != nil {
					t.Fatal(err)
				}
				var drops []string
				for _, r := range append(espDropReasons, "policy", "no_route") {
					v, _ := metricValue(m, "iked_esp_packets_dropped_total", `reason="`+r+`"`)
					drops = append(drops, fmt.Sprintf("%s=%v", r, v))
				}
				sent, _ := metricValue(m, "iked_esp_packets_sent_total", "")
				recv, _ := metricValue(m, "iked_esp_packets_received_total", "")
				link, _ := exec.Command("ip", "-n", side.d.ns.name, "-s", "-o", "link", "show", "iked0").CombinedOutput()
				t.Logf("iked %s: ESP sent %v, received %v, dropped %s; %s", side.name, sent, recv, strings.Join(drops, " "),
					strings.Join(strings.Fields(string(link)), " "))
			}
			fmt.Fprintf(&report, "iked-iked userspace: %s\n", line)
			ikedRates = append(ikedRates, mbit)
			if mbit <= 0 {
				t.Errorf("no traffic through iked ⇄ iked")
			}
		})
		t.Run(fmt.Sprintf("charon-charon/%d", round), func(t *testing.T) {
			run, line := charonCharonIperf(t, secs)
			mbit := run.Mbit
			t.Logf("charon ⇄ charon (kernel-libipsec): %s", line)
			fmt.Fprintf(&report, "charon-charon kernel-libipsec: %s\n", line)
			swanRates = append(swanRates, mbit)
			if mbit <= 0 {
				t.Errorf("no traffic through charon ⇄ charon")
			}
		})
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		if len(xs) == 0 {
			return 0
		}
		return s / float64(len(xs))
	}
	mi, ms := mean(ikedRates), mean(swanRates)
	ratio := 0.0
	if ms > 0 {
		ratio = mi / ms
	}
	summary := fmt.Sprintf("mean: iked-iked %.1f Mbit/s, charon-charon %.1f Mbit/s, ratio %.2f", mi, ms, ratio)
	fmt.Fprintln(&report, summary)
	t.Log(summary)
	path := os.Getenv("IKED_THROUGHPUT_FILE")
	if path == "" {
		path = filepath.Join(os.TempDir(), "iked-throughput.txt")
	}
	if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
		t.Errorf("writing %s: %v", path, err)
	} else {
		t.Logf("written to %s", path)
	}
}

// charonCharonIperf runs two charons with kernel-libipsec (10.1.0.1 on
// veth-i in I, 10.2.0.1 on veth-s in S, routes through ipsec0), brings
// the tunnel up and measures it with iperf3.
func charonCharonIperf(t *testing.T, secs int) (iperfRun, string) {
	t.Helper()
	topo := newTopology(t)
	iAddr, sAddr := topo.IkedAddr.String(), topo.CharonAddr.String()
	const idA, idB = "fqdn:charon-a.example", "fqdn:charon-b.example"
	ca := charonConn{Name: connName, Child: childName, LocalAddr: iAddr, RemoteAddr: sAddr, LocalID: idA, RemoteID: idB, PSK: interopPSK,
		IKEProposals: []string{dpIKEProposal}, ESPProposals: []string{"aes256gcm16"},
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}
	cb := charonConn{Name: connName, Child: childName, LocalAddr: sAddr, RemoteAddr: iAddr, LocalID: idB, RemoteID: idA, PSK: interopPSK,
		IKEProposals: []string{dpIKEProposal}, ESPProposals: []string{"aes256gcm16"},
		LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}
	b := startCharon(t, topo.S, charonOptions{Conns: []charonConn{cb}, InstallRoutes: true})
	a := startCharon(t, topo.I, charonOptions{Conns: []charonConn{ca}, InstallRoutes: true})
	if out, err := a.Initiate(childName, connName); err != nil {
		t.Fatalf("charon A initiate: %v\n%s", err, out)
	}
	sas := b.mustListSAs()
	if len(sas) != 1 || len(sas[0].Children) != 1 || sas[0].Children[0].EncrAlg != "AES_GCM_16" || !sas[0].Children[0].Encap {
		t.Fatalf("charon B: %+v, want one AES_GCM_16 Child SA in UDP", sas)
	}
	ping(t, topo.I, ikedInnerHost, charonInnerHost, 1)
	run, line := iperf3(t, topo.I, topo.S, ikedInnerHost, charonInnerHost, secs)
	// The stream crossed the tunnel: B's Child SA took in at least what
	// iperf3 received.
	cc := b.mustListSAs()[0].Children[0]
	if in := charonCounter(cc, "bytes-in"); float64(in) < run.Bytes {
		t.Errorf("charon B's Child SA took in %d octets, less than the %.0f iperf3 received", in, run.Bytes)
	}
	return run, line
}

// TestDataplaneConfigRendering: the data-plane knobs of the harness render
// as iked's and strongSwan's configuration expect, and iked's loads.
func TestDataplaneConfigRendering(t *testing.T) {
	o := userspaceIked("10.99.1.1", ikedInnerHost, ikedConn{Name: "c", Local: "10.99.1.1", Remote: "10.99.1.2",
		PSK: interopPSK, LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}})
	o.Userspace.MTU, o.Userspace.ReplayWindow, o.Userspace.TUN = 1300, 64, "tun-x"
	y := ikedConfig("/d/s", "/d/k", o)
	for _, want := range []string{"backend: userspace\n", `userspace: {tun: "tun-x", mtu: 1300, addresses: ["10.1.0.1/32"], replay_window: 64}`} {
		if !strings.Contains(y, want) {
			t.Errorf("iked config lacks %q:\n%s", want, y)
		}
	}
	path := filepath.Join(t.TempDir(), "iked.yaml")
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Errorf("iked refuses the rendered configuration: %v\n%s", err, y)
	}
	if y := ikedConfig("/d/s", "/d/k", ikedOptions{}); !strings.Contains(y, "backend: memory\n") || strings.Contains(y, "userspace") {
		t.Errorf("default backend:\n%s", y)
	}
	if ss := strongswanConf("/d", charonOptions{Log: defaultCharonLog, InstallRoutes: true}); !strings.Contains(ss, "install_routes = yes") {
		t.Errorf("strongswan.conf lacks install_routes = yes:\n%s", ss)
	}
}
