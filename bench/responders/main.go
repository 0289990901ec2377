// Command responders is the side-by-side responder comparison of
// docs/performance.md: iked, strongSwan's charon and libreswan's pluto each
// answer ikeload as responder in their own network namespace, pinned to CPU
// 0, while ikeload runs pinned to CPU 1; every peer negotiates
// aes256gcm16-prfsha256-x25519 with a PSK and childless IKE SAs. It prints
// one Markdown table and writes the raw numbers as JSON.
//
// Run it as root through `make bench-responders` (bench/run.sh builds the
// binaries and unpacks libreswan first). It is not a test: nothing runs it
// under `go test`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proposal is what every peer negotiates; the pq subcommand (pq.go)
// changes it between runs.
var proposal = "aes256gcm16-prfsha256-x25519"

const (
	psk        = "correct horse battery staple, benchmark only"
	respAddr   = "10.77.0.1"
	refAddr    = "10.77.1.1" // the reference responder of the held-SA runs
	clockTicks = 100         // USER_HZ
)

// sources are ikeload's addresses; the responder sees several peers.
var sources = []string{"10.77.0.2", "10.77.0.3", "10.77.0.4", "10.77.0.5"}

type config struct {
	bin        string // directory holding iked and ikeload
	libreswan  string // dpkg -x prefix of libreswan and its libraries
	work       string
	responders []string
	duration   time.Duration
	concurr    int
	rate       float64
	sas        []int
	keepFor    time.Duration
	out        string
	nsR, nsL   string
	nsRef      string // the reference responder's namespace (refAddr)

	// The flood phase (0: skipped): spoofed IKE_SA_INIT requests per
	// second, for floodFor, while ikeload runs at floodLegit/s.
	floodRate  float64
	floodFor   time.Duration
	floodLegit float64
	cookies    bool // start responders with cookies on (their default threshold)

	idStart int // the last first identity number of a held-rate run

	charon6 string // strongSwan 6.0.6's prefix, for the charon6 responder (pq.go)
	swanctl string // the swanctl of the charon started last
}

// ikeloadResult is the part of ikeload --json this program reads.
type ikeloadResult struct {
	Completed  uint64            `json:"completed"`
	Failed     uint64            `json:"failed"`
	Failures   map[string]uint64 `json:"failures"`
	Elapsed    float64           `json:"elapsed_s"`
	Rate       float64           `json:"rate"`
	P50        float64           `json:"latency_p50_ms"`
	P99        float64           `json:"latency_p99_ms"`
	CPU        float64           `json:"cpu_us_per_handshake"`
	Cookies    uint64            `json:"cookies"`
	Retrans    uint64            `json:"retransmits"`
	Shortfall  uint64            `json:"rate_shortfall"`
	FirstError string            `json:"first_failure"`
}

// measurement is one responder's row.
type measurement struct {
	Responder        string             `json:"responder"`
	Version          string             `json:"version"`
	SaturatedRate    float64            `json:"saturated_rate"`
	ResponderCPUUS   float64            `json:"responder_cpu_us_per_handshake"`
	ResponderCPUUtil float64            `json:"responder_cpu_utilisation"`
	IkeloadCPUUS     float64            `json:"ikeload_cpu_us_per_handshake"`
	SaturatedP99     float64            `json:"saturated_p99_ms"`
	FixedRate        float64            `json:"fixed_rate"`
	FixedP50         float64            `json:"fixed_rate_p50_ms"`
	FixedP99         float64            `json:"fixed_rate_p99_ms"`
	FixedShortfall   uint64             `json:"fixed_rate_shortfall"`
	BaseRSSKiB       int                `json:"base_rss_kib"`
	RSSPerSA         map[string]float64 `json:"rss_bytes_per_sa"`
	RateHeldPerID    float64            `json:"rate_with_sas_held_one_id_each"`
	RateHeldShared   float64            `json:"rate_with_sas_held_shared_id"`
	// The same runs with no SA held, the reference of each held rate.
	RateNonePerID  float64 `json:"rate_with_none_held_one_id_each"`
	RateNoneShared float64 `json:"rate_with_none_held_shared_id"`
	// The responder's CPU per handshake in those four runs.
	CPUHeldPerID  float64           `json:"responder_cpu_us_held_one_id_each"`
	CPUHeldShared float64           `json:"responder_cpu_us_held_shared_id"`
	CPUNonePerID  float64           `json:"responder_cpu_us_none_held_one_id_each"`
	CPUNoneShared float64           `json:"responder_cpu_us_none_held_shared_id"`
	HeldSAs       int               `json:"held_sas"`
	HeldShared    int               `json:"held_sas_shared_id"`
	Failures      map[string]uint64 `json:"failures"`
	Flood         *floodMeasurement `json:"flood,omitempty"`
	Notes         []string          `json:"notes,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "flood" {
		floodMain(os.Args[2:])
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "pq" {
		pqMain(os.Args[2:])
		return
	}
	var c config
	var resp, sas string
	flag.StringVar(&c.bin, "bin", "", "directory with the iked and ikeload binaries")
	flag.StringVar(&c.libreswan, "libreswan", "", "libreswan unpacked with dpkg -x (empty: skip pluto)")
	flag.StringVar(&resp, "responders", "iked,charon,pluto", "responders to measure, in order")
	flag.DurationVar(&c.duration, "duration", 15*time.Second, "length of each saturated run")
	flag.IntVar(&c.concurr, "concurrency", 64, "ikeload concurrency of the saturated runs")
	flag.Float64Var(&c.rate, "rate", 0, "fixed rate for the latency comparison; 0: half the slowest saturated rate")
	flag.StringVar(&sas, "sas", "10000,100000", "kept-SA counts at which RSS is read; the last is also the count held for the held-SA rates")
	flag.DurationVar(&c.keepFor, "keep-timeout", 150*time.Second, "longest time spent building the kept SAs of one count (a responder that slows down as SAs pile up holds fewer)")
	flag.StringVar(&c.out, "out", "", "write the measurements as JSON here")
	flag.Float64Var(&c.floodRate, "flood", 0, "spoofed IKE_SA_INIT requests per second of the flood phase (0: no flood phase); only iked is configured for it")
	flag.DurationVar(&c.floodFor, "flood-duration", 20*time.Second, "length of the flood")
	flag.Float64Var(&c.floodLegit, "flood-legit-rate", 500, "ikeload's handshakes per second during the flood")
	floodOnly := flag.Bool("flood-only", false, "run the flood phase only")
	flag.Parse()
	c.responders = strings.Split(resp, ",")
	for _, s := range strings.Split(sas, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatalf("--sas: bad count %q", s)
		}
		c.sas = append(c.sas, n)
	}
	if c.bin == "" {
		fatalf("--bin is required")
	}
	if os.Geteuid() != 0 {
		fatalf("must run as root (network namespaces)")
	}
	var err error
	if c.work, err = os.MkdirTemp("", "ikebench-"); err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(c.work)
	pid := os.Getpid()
	c.nsR, c.nsL, c.nsRef = fmt.Sprintf("ikb-r-%d", pid), fmt.Sprintf("ikb-l-%d", pid), fmt.Sprintf("ikb-ref-%d", pid)
	if err := c.topology(); err != nil {
		c.teardown()
		fatalf("topology: %v", err)
	}
	defer c.teardown()

	var rows []*measurement
	if *floodOnly {
		for _, r := range c.responders {
			rows = append(rows, &measurement{Responder: r, RSSPerSA: map[string]float64{}, Failures: map[string]uint64{}})
		}
	}
	// Pass 1: saturated rate and CPU, so that the fixed rate can be one
	// all sustain.
	for _, r := range c.responders {
		if *floodOnly {
			break
		}
		m := &measurement{Responder: r, RSSPerSA: map[string]float64{}, Failures: map[string]uint64{}}
		rows = append(rows, m)
		if err := c.saturate(m); err != nil {
			m.Notes = append(m.Notes, "saturated run: "+err.Error())
			logf("%s: %v", r, err)
		}
	}
	if c.rate == 0 {
		lowest := 0.0
		for _, m := range rows {
			if m.SaturatedRate > 0 && (lowest == 0 || m.SaturatedRate < lowest) {
				lowest = m.SaturatedRate
			}
		}
		c.rate = float64(int(lowest/2/100) * 100)
		if c.rate < 100 {
			c.rate = 100
		}
	}
	for _, m := range rows {
		if m.SaturatedRate == 0 {
			continue
		}
		if err := c.fixedAndHeld(m); err != nil {
			m.Notes = append(m.Notes, err.Error())
			logf("%s: %v", m.Responder, err)
		}
	}
	if c.floodRate > 0 {
		for _, m := range rows {
			if err := c.floodPhase(m); err != nil {
				m.Notes = append(m.Notes, "flood: "+err.Error())
				logf("%s: flood: %v", m.Responder, err)
			}
		}
	}
	if !*floodOnly {
		printTable(os.Stdout, rows, c)
	}
	printFlood(os.Stdout, rows, c)
	if c.out != "" {
		b, _ := json.MarshalIndent(map[string]any{"rate": c.rate, "sas": c.sas, "duration_s": c.duration.Seconds(),
			"concurrency": c.concurr, "proposal": proposal, "measurements": rows}, "", "  ")
		if err := os.WriteFile(c.out, append(b, '\n'), 0o644); err != nil {
			logf("writing %s: %v", c.out, err)
		}
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench-responders: "+format+"\n", a...)
	os.Exit(1)
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench-responders: "+time.Now().Format("15:04:05 ")+format+"\n", a...)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// topology makes the responder's namespace (10.77.0.1) and ikeload's
// (10.77.0.2-5), joined by a veth pair, and the reference responder's
// (10.77.1.1), joined to ikeload's by another, routed to from the same
// source addresses.
func (c *config) topology() error {
	for _, ns := range []string{c.nsR, c.nsL, c.nsRef} {
		if err := run("ip", "netns", "add", ns); err != nil {
			return err
		}
	}
	steps := [][]string{
		{"-n", c.nsR, "link", "add", "veth-r", "type", "veth", "peer", "name", "veth-l", "netns", c.nsL},
		{"-n", c.nsR, "addr", "add", respAddr + "/24", "dev", "veth-r"},
		{"-n", c.nsR, "link", "set", "lo", "up"},
		{"-n", c.nsL, "link", "set", "lo", "up"},
		{"-n", c.nsR, "link", "set", "veth-r", "up"},
		{"-n", c.nsL, "link", "set", "veth-l", "up"},
	}
	for _, s := range sources {
		steps = append(steps, []string{"-n", c.nsL, "addr", "add", s + "/24", "dev", "veth-l"})
	}
	// The flood's spoofed sources (flood.go) are routed through ikeload's
	// namespace, which does not forward: answers to them vanish there.
	steps = append(steps, []string{"-n", c.nsR, "route", "add", spoofedNet, "via", sources[0], "dev", "veth-r"})
	steps = append(steps,
		[]string{"-n", c.nsRef, "link", "add", "veth-ref", "type", "veth", "peer", "name", "veth-lref", "netns", c.nsL},
		[]string{"-n", c.nsRef, "addr", "add", refAddr + "/24", "dev", "veth-ref"},
		[]string{"-n", c.nsRef, "link", "set", "lo", "up"},
		[]string{"-n", c.nsRef, "link", "set", "veth-ref", "up"},
		[]string{"-n", c.nsL, "link", "set", "veth-lref", "up"},
		[]string{"-n", c.nsRef, "route", "add", "10.77.0.0/24", "dev", "veth-ref"},
		[]string{"-n", c.nsL, "route", "add", "10.77.1.0/24", "dev", "veth-lref"})
	for _, s := range steps {
		if err := run("ip", s...); err != nil {
			return err
		}
	}
	// Addresses are usable once DAD is done (IPv4: at once) and the veth
	// is up on both ends.
	deadline := time.Now().Add(5 * time.Second)
	for _, a := range []string{respAddr, refAddr} {
		for run("ip", "netns", "exec", c.nsL, "ping", "-c1", "-W1", "-I", sources[0], a) != nil {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not reachable after 5s", a)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func (c *config) teardown() {
	for _, ns := range []string{c.nsR, c.nsL, c.nsRef} {
		out, _ := exec.Command("ip", "netns", "pids", ns).Output()
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		_ = run("ip", "netns", "del", ns)
	}
}

// daemon is a running responder.
type daemon struct {
	cmd  *exec.Cmd
	done chan error
	out  string
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// start runs responder kind in the responder namespace pinned to CPU 0.
func (c *config) start(kind string) (*daemon, string, error) {
	return c.startAt(kind, false)
}

// startAt runs responder kind pinned to CPU 0, in the responder namespace
// or (ref) the reference responder's. A shell in the namespace's private
// mount namespace prepares the mounts and execs taskset, which execs the
// daemon: the PID stays the daemon's.
func (c *config) startAt(kind string, ref bool) (*daemon, string, error) {
	dir, ns, addr := filepath.Join(c.work, kind), c.nsR, respAddr
	if ref {
		dir, ns, addr = filepath.Join(c.work, kind+"-ref"), c.nsRef, refAddr
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
		return nil, "", err
	}
	var script string
	var env []string
	var version string
	switch kind {
	case "iked":
		threshold := 1000000
		if c.cookies {
			threshold = 10 // the default (config.DefaultCookieThreshold)
		}
		conf := fmt.Sprintf(`listen: ["%s:500"]
control_socket: %s/iked.sock
log: {level: error}
backend: memory
ike:
  cookie_threshold: %d
  half_open_per_peer: 0 # as charon's block_threshold below: ikeload's few sources are not a flood
  fragmentation: false
connections:
  load:
    local: %s
    remote: "%%any"
    local_id: fqdn:responder.example
    auth: {method: psk, secret: %q}
    ike_proposals: [%s]
    esp_proposals: [aes256gcm16]
    dpd_delay: 24h
    rekey_time: 24h
    ike_rekey_time: 24h
`, addr, dir, threshold, addr, psk, proposal)
		if err := os.WriteFile(filepath.Join(dir, "iked.yaml"), []byte(conf), 0o600); err != nil {
			return nil, "", err
		}
		script = fmt.Sprintf(`exec taskset -c 0 %s --config %s/iked.yaml`, filepath.Join(c.bin, "iked"), dir)
		version = "this tree"
	case "charon", "charon6":
		plugins, charonBin, swanctlBin := "random nonce openssl aes sha2 hmac gcm curve25519 kdf kernel-netlink socket-default vici", "/usr/lib/ipsec/charon", "swanctl"
		version = "strongSwan " + dpkgVersion("strongswan-charon")
		if kind == "charon6" {
			if c.charon6 == "" {
				return nil, "", errors.New("strongSwan 6 not built (--charon6)")
			}
			plugins = "random nonce openssl aes sha2 hmac gcm curve25519 ml kdf kernel-netlink socket-default vici"
			charonBin, swanctlBin = filepath.Join(c.charon6, "libexec/ipsec/charon"), filepath.Join(c.charon6, "sbin/swanctl")
			version = "strongSwan 6.0.6 (shared/vendor)"
		}
		c.swanctl = swanctlBin
		conf := fmt.Sprintf(`charon {
	load = %s
	threads = 8
	ikesa_table_size = 65536
	ikesa_table_segments = 64
	init_limit_half_open = 0
	init_limit_job_load = 0
	cookie_threshold = 1000000
	cookie_threshold_ip = 1000000
	block_threshold = 1000000
	dos_protection = no
	install_routes = no
	install_virtual_ip = no
	port = 500
	port_nat_t = 4500
	filelog {
		stderr {
			default = -1
		}
	}
	syslog {
		daemon {
			default = -1
		}
		auth {
			default = -1
		}
	}
	plugins {
		vici {
			socket = unix://%s/charon.vici
		}
	}
}
`, plugins, dir)
		swanctl := fmt.Sprintf(`connections {
	load {
		version = 2
		local_addrs = %s
		remote_addrs = %%any
		proposals = %s
		unique = never
		dpd_delay = 0
		rekey_time = 0
		reauth_time = 0
		local {
			auth = psk
			id = responder.example
		}
		remote {
			auth = psk
			id = %%any
		}
		children {
			c {
				esp_proposals = aes256gcm16
				start_action = none
			}
		}
	}
}
secrets {
	ike-any {
		secret = %q
	}
}
`, addr, proposal, psk)
		if err := os.MkdirAll(filepath.Join(dir, "swanctl"), 0o700); err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "strongswan.conf"), []byte(conf), 0o600); err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "swanctl", "swanctl.conf"), []byte(swanctl), 0o600); err != nil {
			return nil, "", err
		}
		env = []string{"STRONGSWAN_CONF=" + filepath.Join(dir, "strongswan.conf")}
		script = fmt.Sprintf(`mount --bind %s/run /run && exec taskset -c 0 %s`, dir, charonBin)
	case "pluto":
		if c.libreswan == "" {
			return nil, "", errors.New("libreswan not unpacked (--libreswan)")
		}
		p := c.libreswan
		lib := filepath.Join(p, "usr/lib/x86_64-linux-gnu")
		conf := fmt.Sprintf(`config setup
	plutodebug=none
	logfile=/dev/null
	uniqueids=no
	dnssec-enable=no

conn load
	left=%s
	leftid=@responder.example
	right=%%any
	rightid=%%any
	authby=secret
	ikev2=insist
	ike=aes_gcm256-sha2_256-dh31
	esp=aes_gcm256
	auto=add
	dpddelay=0
	rekey=no
	ikelifetime=24h
`, addr)
		for _, d := range []string{"nss", "ipsec.d"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
				return nil, "", err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "ipsec.conf"), []byte(conf), 0o600); err != nil {
			return nil, "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "ipsec.secrets"), []byte(fmt.Sprintf("%%any %%any : PSK %q\n", psk)), 0o600); err != nil {
			return nil, "", err
		}
		certutil := exec.Command(filepath.Join(p, "usr/bin/certutil"), "-N", "-d", "sql:"+filepath.Join(dir, "nss"), "--empty-password")
		certutil.Env = append(os.Environ(), "LD_LIBRARY_PATH="+lib)
		if out, err := certutil.CombinedOutput(); err != nil {
			return nil, "", fmt.Errorf("certutil: %v: %s", err, out)
		}
		// pluto execs the compiled-in /usr/libexec/ipsec/addconn: the
		// unpacked tree is bind-mounted there, in the private mount
		// namespace only (the empty mount point is created once).
		if err := os.MkdirAll("/usr/libexec/ipsec", 0o755); err != nil {
			return nil, "", err
		}
		env = []string{"LD_LIBRARY_PATH=" + lib}
		script = fmt.Sprintf(`mount --bind %[1]s/usr/libexec/ipsec /usr/libexec/ipsec && mount --bind %[2]s/run /run && `+
			`exec taskset -c 0 %[1]s/usr/libexec/ipsec/pluto --nofork --config %[2]s/ipsec.conf --secretsfile %[2]s/ipsec.secrets `+
			`--nssdir %[2]s/nss --ipsecdir %[2]s/ipsec.d --rundir %[2]s/run --force-unlimited --no-dnssec`, p, dir)
		version = "libreswan " + debVersion(p)
	default:
		return nil, "", fmt.Errorf("unknown responder %q", kind)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "sh", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	outPath := filepath.Join(dir, "out.log")
	f, err := os.Create(outPath)
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, "", err
	}
	d := &daemon{cmd: cmd, done: make(chan error, 1), out: outPath}
	go func() { d.done <- cmd.Wait(); _ = f.Close() }()
	if kind == "charon" || kind == "charon6" {
		if err := c.loadSwanctl(d, dir); err != nil {
			d.stop()
			return nil, "", err
		}
	}
	// Ready once a handshake completes.
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := c.ikeloadAt(addr, "--count", "1", "--concurrency", "1", "--retransmit", "200ms", "--tries", "1")
		if err == nil && res.Completed == 1 {
			break
		}
		select {
		case err := <-d.done:
			out, _ := os.ReadFile(outPath)
			return nil, "", fmt.Errorf("%s exited: %v\n%s", kind, err, out)
		default:
		}
		if time.Now().After(deadline) {
			d.stop()
			out, _ := os.ReadFile(outPath)
			return nil, "", fmt.Errorf("%s answers no handshake after 20s (%v)\n%s", kind, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return d, version, nil
}

func (c *config) loadSwanctl(d *daemon, dir string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		swanctl := c.swanctl
		if swanctl == "" {
			swanctl = "swanctl"
		}
		x := exec.Command(swanctl, "--load-all", "--uri", "unix://"+dir+"/charon.vici")
		x.Env = append(os.Environ(), "STRONGSWAN_CONF="+dir+"/strongswan.conf", "SWANCTL_DIR="+dir+"/swanctl")
		out, err := x.CombinedOutput()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("swanctl --load-all: %v: %s", err, out)
		}
		select {
		case err := <-d.done:
			b, _ := os.ReadFile(d.out)
			return fmt.Errorf("charon exited: %v\n%s", err, b)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func dpkgVersion(pkg string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return "?"
	}
	return string(out)
}

// debVersion reads the version the unpacked libreswan records (the
// harness script writes it next to the tree).
func debVersion(prefix string) string {
	b, err := os.ReadFile(filepath.Join(prefix, "VERSION"))
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// ikeload runs ikeload in its namespace pinned to CPU 1 against the
// responder and returns its JSON result.
func (c *config) ikeload(args ...string) (*ikeloadResult, error) {
	return c.ikeloadAt(respAddr, args...)
}

// ikeloadAt runs ikeload against the responder at addr.
func (c *config) ikeloadAt(addr string, args ...string) (*ikeloadResult, error) {
	argv := []string{"netns", "exec", c.nsL, "taskset", "-c", "1", filepath.Join(c.bin, "ikeload"),
		"--target", addr, "--psk", psk, "--proposal", proposal, "--childless", "--json", "--progress", "0"}
	for _, s := range sources {
		argv = append(argv, "--source", s)
	}
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var res ikeloadResult
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		return nil, fmt.Errorf("ikeload %s: %v %v: %s", strings.Join(args, " "), err, jerr, stderr.String())
	}
	return &res, nil
}

// cpuTicks is utime+stime of pid (all its threads), in clock ticks.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+2:])
	// Fields after the command: state is f[0]; utime and stime are the
	// 14th and 15th fields of the whole line, f[11] and f[12] here.
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, nil
}

// rssKiB is VmRSS of pid.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

func merge(dst map[string]uint64, src map[string]uint64, prefix string) {
	for k, v := range src {
		dst[prefix+k] += v
	}
}

// saturate measures the saturated rate and the responder's CPU time per
// handshake (each IKE SA deleted after it is up).
func (c *config) saturate(m *measurement) error {
	d, version, err := c.start(m.Responder)
	if err != nil {
		return err
	}
	defer d.stop()
	m.Version = version
	logf("%s: saturated run, %v at concurrency %d", m.Responder, c.duration, c.concurr)
	// Warm up (caches, allocator, table growth), then measure.
	if _, err := c.ikeload("--duration", "2s", "--concurrency", strconv.Itoa(c.concurr)); err != nil {
		return err
	}
	t0, err := cpuTicks(d.pid())
	if err != nil {
		return err
	}
	res, err := c.ikeload("--duration", c.duration.String(), "--concurrency", strconv.Itoa(c.concurr))
	if err != nil {
		return err
	}
	t1, _ := cpuTicks(d.pid())
	merge(m.Failures, res.Failures, "saturated:")
	m.SaturatedRate, m.SaturatedP99, m.IkeloadCPUUS = res.Rate, res.P99, res.CPU
	if res.Completed > 0 {
		cpu := float64(t1-t0) / clockTicks
		m.ResponderCPUUS = cpu * 1e6 / float64(res.Completed)
		m.ResponderCPUUtil = cpu / res.Elapsed
	}
	logf("%s: %.0f/s, responder %.1f µs/handshake (%.0f%% of its CPU), ikeload %.1f µs/handshake, failed %d %s",
		m.Responder, m.SaturatedRate, m.ResponderCPUUS, 100*m.ResponderCPUUtil, res.CPU, res.Failed, res.FirstError)
	return nil
}

// fixedAndHeld measures latency at the common fixed rate, RSS per kept SA
// at each count, and the saturated rate with the SAs held: first with one
// identity per SA, then (after a restart) one identity shared by all.
func (c *config) fixedAndHeld(m *measurement) error {
	d, _, err := c.start(m.Responder)
	if err != nil {
		return err
	}
	m.FixedRate = c.rate
	logf("%s: fixed rate %.0f/s", m.Responder, c.rate)
	res, err := c.ikeload("--rate", fmt.Sprint(c.rate), "--duration", (c.duration / 2 * 1).String(), "--concurrency", "256")
	if err != nil {
		d.stop()
		return err
	}
	merge(m.Failures, res.Failures, "fixed:")
	m.FixedP50, m.FixedP99, m.FixedShortfall = res.P50, res.P99, res.Shortfall
	time.Sleep(time.Second)
	m.BaseRSSKiB = rssKiB(d.pid())
	held := 0
	for _, n := range c.sas {
		logf("%s: keeping SAs up to %d (one identity each)", m.Responder, n)
		res, err := c.ikeload("--keep", "--count", strconv.Itoa(n-held), "--id", "fqdn:c-%d.example",
			"--id-start", strconv.Itoa(held+1), "--concurrency", strconv.Itoa(c.concurr), "--retransmit", "2s",
			"--duration", c.keepFor.String())
		if err != nil {
			d.stop()
			return err
		}
		merge(m.Failures, res.Failures, "keep:")
		held += int(res.Completed)
		time.Sleep(2 * time.Second)
		rss := rssKiB(d.pid())
		m.RSSPerSA[strconv.Itoa(n)] = float64(rss-m.BaseRSSKiB) * 1024 / float64(max(held, 1))
		if held < n*99/100 {
			m.Notes = append(m.Notes, fmt.Sprintf("only %d of %d SAs held after %v (RSS per SA over those)", held, n, c.keepFor))
		}
		logf("%s: %d SAs held, RSS %d KiB (base %d), %.0f B/SA", m.Responder, held, rss, m.BaseRSSKiB, m.RSSPerSA[strconv.Itoa(n)])
	}
	m.HeldSAs = held
	heldRun, noneRun, err := c.heldVsNone(m, d, perIDPattern)
	d.stop()
	if err != nil {
		return err
	}
	m.RateHeldPerID, m.CPUHeldPerID, m.RateNonePerID, m.CPUNonePerID = heldRun.rate, heldRun.cpu, noneRun.rate, noneRun.cpu

	d, _, err = c.start(m.Responder)
	if err != nil {
		return err
	}
	defer d.stop()
	n := c.sas[len(c.sas)-1]
	logf("%s: keeping %d SAs with one shared identity", m.Responder, n)
	res, err = c.ikeload("--keep", "--count", strconv.Itoa(n), "--id", sharedID,
		"--concurrency", strconv.Itoa(c.concurr), "--retransmit", "2s", "--duration", c.keepFor.String())
	if err != nil {
		return err
	}
	merge(m.Failures, res.Failures, "keep-shared:")
	if res.Completed < uint64(n)*99/100 {
		m.Notes = append(m.Notes, fmt.Sprintf("shared identity: only %d of %d SAs held after %v", res.Completed, n, c.keepFor))
	}
	m.HeldShared = int(res.Completed)
	heldRun, noneRun, err = c.heldVsNone(m, d, sharedID)
	m.RateHeldShared, m.CPUHeldShared, m.RateNoneShared, m.CPUNoneShared = heldRun.rate, heldRun.cpu, noneRun.rate, noneRun.cpu
	return err
}

// The identities of the new handshakes in the held-SA runs: a new one per
// handshake, or the one all the held SAs share.
const (
	perIDPattern = "fqdn:x-%d.example"
	sharedID     = "fqdn:shared.example"
)

// rateRun is one saturated run: handshakes/s and the responder's CPU µs
// per handshake.
type rateRun struct{ rate, cpu float64 }

// heldRuns is how many runs heldVsNone makes on either side: ten runs
// of 5 s put the standard error of a side's mean at ≈ 3 % on this machine.
const heldRuns = 10

// settle waits until pid uses no CPU for 300 ms (at most 5 s) and returns
// its CPU ticks then.
func settle(pid int) int64 {
	last, _ := cpuTicks(pid)
	quiet := 0
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		t, err := cpuTicks(pid)
		if err != nil {
			return last
		}
		if t == last {
			quiet++
			if quiet == 3 {
				break
			}
		} else {
			quiet = 0
		}
		last = t
	}
	return last
}

// heldVsNone measures the saturated rate of new handshakes (each IKE SA
// deleted once up) with identity id at d, which holds the kept SAs, and at
// a reference responder of the same kind started beside it with none held
// (its own namespace, refAddr, pinned to the same CPU, idle while d is
// measured and the other way round). After a 2 s warm-up of each,
// heldRuns runs of a third of the duration on either, interleaved (none,
// held, held, none, …), each followed by a wait for the daemon to go
// idle; each side's rate is its handshakes over its time in its runs, its
// CPU per handshake likewise (the idle wait's CPU included). Interleaved runs on two live daemons,
// because on a shared 2-vCPU VM the same build in the same state differs
// by ±15 % from one 5 s run to the next and by up to 2× minutes apart
// (docs/performance.md): the machine's drift falls on both sides alike, so
// the two rates differ by the held SAs.
func (c *config) heldVsNone(m *measurement, d *daemon, id string) (held, none rateRun, err error) {
	ref, _, err := c.startAt(m.Responder, true)
	if err != nil {
		return held, none, fmt.Errorf("reference responder: %v", err)
	}
	defer ref.stop()
	logf("%s: saturated rate with the SAs held and with none held, interleaved (new handshakes as %s)", m.Responder, id)
	warm := "fqdn:w-%d.example"
	if !strings.Contains(id, "%d") {
		warm = id
	}
	for _, addr := range []string{refAddr, respAddr} {
		if _, err := c.ikeloadAt(addr, "--duration", "2s", "--concurrency", strconv.Itoa(c.concurr), "--id", warm,
			"--id-start", "900000000"); err != nil {
			return held, none, err
		}
	}
	var (
		completed [2]uint64  // [0] none held, [1] held
		elapsed   [2]float64 // seconds
		ticks     [2]int64
		rates     [2][]string
	)
	for i := range 2 * heldRuns {
		side := []int{0, 1, 1, 0}[i%4]
		dd, addr := ref, refAddr
		if side == 1 {
			dd, addr = d, respAddr
		}
		t0, err := cpuTicks(dd.pid())
		if err != nil {
			return held, none, err
		}
		// Identities never used before in the daemons' lives, for the
		// peers that remember deleted ones.
		c.idStart += 10_000_000
		res, err := c.ikeloadAt(addr, "--duration", (c.duration / 3).String(), "--concurrency", strconv.Itoa(c.concurr),
			"--id", id, "--id-start", strconv.Itoa(c.idStart))
		if err != nil {
			return held, none, err
		}
		// The work a run leaves behind (a garbage collection cycle in
		// progress) is done before the other daemon's run, and counted
		// in this one's CPU: otherwise the held SAs' collector would
		// run in the reference's time.
		t1 := settle(dd.pid())
		merge(m.Failures, res.Failures, []string{"none-held:", "held:"}[side])
		completed[side] += res.Completed
		elapsed[side] += res.Elapsed
		ticks[side] += t1 - t0
		rates[side] = append(rates[side], fmt.Sprintf("%.0f", res.Rate))
	}
	var out [2]rateRun
	for side := range out {
		if elapsed[side] > 0 {
			out[side].rate = float64(completed[side]) / elapsed[side]
		}
		if completed[side] > 0 {
			out[side].cpu = float64(ticks[side]) / clockTicks * 1e6 / float64(completed[side])
		}
	}
	none, held = out[0], out[1]
	logf("%s: %.0f/s with the SAs held (runs %s; %.1f µs/handshake), %.0f/s with none (runs %s; %.1f µs/handshake)",
		m.Responder, held.rate, strings.Join(rates[1], ", "), held.cpu, none.rate, strings.Join(rates[0], ", "), none.cpu)
	return held, none, nil
}

func printTable(w io.Writer, rows []*measurement, c config) {
	fmt.Fprintf(w, "\nResponders pinned to CPU 0, ikeload to CPU 1; %s, PSK, childless; saturated runs %v at concurrency %d.\n\n",
		proposal, c.duration, c.concurr)
	hdr := []string{"responder", "saturated handshakes/s", "responder CPU µs/handshake", "ikeload CPU µs/handshake",
		fmt.Sprintf("p99 at %.0f/s (ms)", c.rate)}
	for _, n := range c.sas {
		hdr = append(hdr, fmt.Sprintf("RSS/SA at %d (B)", n))
	}
	last := c.sas[len(c.sas)-1]
	hdr = append(hdr, fmt.Sprintf("rate with %d held, id per SA (of none held)", last),
		fmt.Sprintf("rate with %d held, shared id (of none held)", last))
	fmt.Fprintln(w, "| "+strings.Join(hdr, " | ")+" |")
	fmt.Fprintln(w, "|"+strings.Repeat("---|", len(hdr)))
	for _, m := range rows {
		cells := []string{m.Responder + " (" + m.Version + ")", fmt.Sprintf("%.0f", m.SaturatedRate),
			fmt.Sprintf("%.0f", m.ResponderCPUUS), fmt.Sprintf("%.0f", m.IkeloadCPUUS), fmt.Sprintf("%.2f", m.FixedP99)}
		for _, n := range c.sas {
			if v, ok := m.RSSPerSA[strconv.Itoa(n)]; ok {
				cells = append(cells, fmt.Sprintf("%.0f", v))
			} else {
				cells = append(cells, "—")
			}
		}
		cells = append(cells, heldCell(m.RateHeldPerID, m.RateNonePerID), heldCell(m.RateHeldShared, m.RateNoneShared))
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	fmt.Fprintln(w)
	for _, m := range rows {
		if len(m.Failures) > 0 || len(m.Notes) > 0 || m.FixedShortfall > 0 {
			fmt.Fprintf(w, "- %s: failures %v; fixed-rate shortfall %d; responder CPU use in the saturated run %.0f%%; %s\n",
				m.Responder, m.Failures, m.FixedShortfall, 100*m.ResponderCPUUtil, strings.Join(m.Notes, "; "))
		}
	}
}

// heldCell prints a held rate with its share of the rate with none held.
func heldCell(held, none float64) string {
	if none <= 0 {
		return fmt.Sprintf("%.0f", held)
	}
	return fmt.Sprintf("%.0f (%.0f %% of %.0f)", held, 100*held/none, none)
}
