//go:build linux

package xfrm

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/iked/iked/sadb"
)

// requireRoot fails under CI=true and skips elsewhere when the test cannot
// create network namespaces.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("ip"); err != nil {
			t.Fatal("live XFRM tests need iproute2's ip")
		}
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("live XFRM tests need root (network namespaces); CI must run them as root")
	}
	t.Skip("live XFRM test: needs root for network namespaces")
}

var nsCount atomic.Int32

// namespace creates a network namespace for one test, with a veth pair
// whose v0 holds 10.77.0.1/24 (loopback traffic bypasses XFRM), and
// returns its name and path.
func namespace(t *testing.T) (name, path string) {
	t.Helper()
	requireRoot(t)
	name = fmt.Sprintf("iked-xfrm-%d-%d", os.Getpid(), nsCount.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	ipns(t, name, "link", "set", "lo", "up")
	ipns(t, name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ipns(t, name, "link", "set", "v0", "up")
	ipns(t, name, "link", "set", "v1", "up")
	ipns(t, name, "addr", "add", "10.77.0.1/24", "dev", "v0")
	for _, dir := range []string{"/run/netns/", "/var/run/netns/"} {
		if _, err := os.Stat(dir + name); err == nil {
			return name, dir + name
		}
	}
	t.Fatalf("namespace %s has no file under /run/netns", name)
	return "", ""
}

// ipns runs ip -n ns args and returns its output.
func ipns(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v: %s", ns, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// open starts a backend in the namespace, skipping the ESP probe where the
// kernel has no ESP (policies need none).
func open(t *testing.T, path string) *Backend {
	t.Helper()
	opts := Options{Namespace: path, Logf: t.Logf}
	if err := Probe(path); errors.Is(err, ErrNoESP) {
		opts.SkipProbe = true
	} else if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

const foreignPolicy = "src 10.88.0.0/24 dst 10.89.0.0/24"

func TestLiveProbe(t *testing.T) {
	ns, path := namespace(t)
	err := Probe(path)
	if err != nil && !errors.Is(err, ErrNoESP) {
		t.Fatalf("Probe: %v", err)
	}
	if got := ipns(t, ns, "xfrm", "state"); got != "" {
		t.Errorf("the probe left a state: %s", got)
	}
	b, nerr := New(Options{Namespace: path})
	if err != nil {
		t.Logf("this kernel has no ESP: %v", err)
		if !errors.Is(nerr, ErrNoESP) || b != nil {
			t.Fatalf("New on a kernel without ESP = %v, %v; want ErrNoESP", b, nerr)
		}
		if !strings.Contains(nerr.Error(), "this kernel cannot hold ESP SAs; use the userspace data plane") {
			t.Errorf("error %q does not say what to do", nerr)
		}
		return
	}
	if nerr != nil {
		t.Fatalf("New: %v", nerr)
	}
	_ = b.Close()
}

func TestLiveAddSAWithoutESP(t *testing.T) {
	_, path := namespace(t)
	if Probe(path) == nil {
		t.Skip("this kernel has ESP; TestLiveSA covers it")
	}
	b, err := New(Options{Namespace: path, SkipProbe: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.AddSA(testSA(t, "cbc-sha256")) // AES-CBC: GCM may be missing too, and fails first
	if !errors.Is(err, ErrNoESP) {
		t.Fatalf("AddSA = %v, want ErrNoESP", err)
	}
	t.Logf("AddSA: %v", err)
}

func TestLivePolicies(t *testing.T) {
	ns, path := namespace(t)
	ipns(t, ns, "xfrm", "policy", "add", "src", "10.88.0.0/24", "dst", "10.89.0.0/24", "dir", "out", "priority", "5",
		"tmpl", "src", "192.0.2.10", "dst", "192.0.2.11", "proto", "esp", "mode", "tunnel", "reqid", "99")

	// A run that dies without Close leaves a policy behind.
	crashed := open(t, path)
	left := &sadb.Policy{Selector: sadb.Selector{Src: pfx("10.60.0.0/16"), Dst: pfx("10.61.0.0/16")}, Direction: sadb.Out, Action: sadb.Drop}
	if err := crashed.AddPolicy(left); err != nil {
		t.Fatal(err)
	}
	close(crashed.done)
	_ = crashed.ev.close()
	crashed.wg.Wait()
	_ = crashed.cl.close()

	b := open(t, path)
	closed := false
	defer func() {
		if !closed {
			_ = b.Close()
		}
	}()
	if got := ipns(t, ns, "xfrm", "policy"); strings.Contains(got, "10.60.0.0/16") || !strings.Contains(got, foreignPolicy) {
		t.Fatalf("after start-up the leftover should be gone and the foreign policy kept:\n%s", got)
	}

	out := &sadb.Policy{
		Selector:  sadb.Selector{Src: pfx("10.1.0.0/24"), Dst: pfx("10.2.0.0/24"), Proto: 6, DstPort: 80},
		Direction: sadb.Out, Action: sadb.Protect, Level: sadb.Required, Priority: 100,
		Protocol: sadb.ESP, Mode: sadb.Tunnel, TunnelSrc: addr("192.0.2.1"), TunnelDst: addr("192.0.2.2"), ReqID: 7,
	}
	in := &sadb.Policy{
		Selector:  sadb.Selector{Src: pfx("10.2.0.0/24"), Dst: pfx("10.1.0.0/24"), Proto: 6, SrcPort: 80},
		Direction: sadb.In, Action: sadb.Protect, Level: sadb.Optional, Priority: 100,
		Protocol: sadb.ESP, Mode: sadb.Tunnel, TunnelSrc: addr("192.0.2.2"), TunnelDst: addr("192.0.2.1"), ReqID: 7,
	}
	fwd := *in
	fwd.Direction = sadb.Fwd
	fwd.Level = sadb.Required
	transport := &sadb.Policy{
		Selector:  sadb.Selector{Src: pfx("2001:db8::1/128"), Dst: pfx("2001:db8::2/128")},
		Direction: sadb.Out, Action: sadb.Protect, Protocol: sadb.AH, Mode: sadb.Transport, ReqID: 8, Priority: 200,
	}
	pass := &sadb.Policy{Selector: sadb.Selector{Src: pfx("10.1.0.0/24"), Dst: pfx("10.1.0.0/24")}, Direction: sadb.Out, Action: sadb.Pass, Priority: 10}
	drop := &sadb.Policy{Selector: sadb.Selector{Src: pfx("10.3.0.0/24"), Dst: pfx("10.4.0.0/24")}, Direction: sadb.In, Action: sadb.Drop, Priority: 300}
	for _, p := range []*sadb.Policy{out, in, &fwd, transport, pass, drop} {
		if err := b.AddPolicy(p); err != nil {
			t.Fatalf("AddPolicy %s %s: %v", p.Direction, p.Selector, err)
		}
	}
	list := ipns(t, ns, "xfrm", "policy")
	t.Logf("ip xfrm policy:\n%s", list)
	for _, want := range []string{
		"src 10.1.0.0/24 dst 10.2.0.0/24 proto tcp dport 80",
		"dir out priority 100",
		"tmpl src 192.0.2.1 dst 192.0.2.2\n\t\tproto esp reqid 7 mode tunnel",
		"src 10.2.0.0/24 dst 10.1.0.0/24 proto tcp sport 80",
		"dir in priority 100",
		"dir fwd priority 100",
		"tmpl src 192.0.2.2 dst 192.0.2.1\n\t\tproto esp reqid 7 mode tunnel\n\t\tlevel use",
		"src 2001:db8::1/128 dst 2001:db8::2/128",
		"dir out priority 200",
		"tmpl src :: dst ::\n\t\tproto ah reqid 8 mode transport",
		"src 10.1.0.0/24 dst 10.1.0.0/24 \n\tdir out priority 10",
		"src 10.3.0.0/24 dst 10.4.0.0/24 \n\tdir in action block priority 300",
		foreignPolicy,
	} {
		if !strings.Contains(list, want) {
			t.Errorf("ip xfrm policy lacks %q", want)
		}
	}
	if got := strings.Count(list, "tmpl src 192.0.2.2 dst 192.0.2.1\n\t\tproto esp reqid 7 mode tunnel\n\t\tlevel use"); got != 1 {
		t.Errorf("%d optional templates, want 1 (the in policy)", got)
	}
	stats := ipns(t, ns, "-s", "xfrm", "policy")
	if n := strings.Count(stats, fmt.Sprintf("hard %d(packets)", Marker(0))); n != 6 {
		t.Errorf("%d policies carry the marker, want 6", n)
	}

	// Replacing one of ours keeps one policy with the new priority.
	out.Priority = 150
	if err := b.AddPolicy(out); err != nil {
		t.Fatalf("replace: %v", err)
	}
	list = ipns(t, ns, "xfrm", "policy")
	if strings.Contains(list, "dir out priority 100") || !strings.Contains(list, "dir out priority 150") {
		t.Errorf("replacement not applied:\n%s", list)
	}

	// The foreign policy's selector is not ours to replace or delete.
	foreign := &sadb.Policy{Selector: sadb.Selector{Src: pfx("10.88.0.0/24"), Dst: pfx("10.89.0.0/24")}, Direction: sadb.Out, Action: sadb.Drop}
	if err := b.AddPolicy(foreign); !errors.Is(err, ErrForeign) {
		t.Errorf("AddPolicy over a foreign policy = %v, want ErrForeign", err)
	}
	if err := b.DeletePolicy(foreign.ID()); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("DeletePolicy of a foreign policy = %v, want ErrNotFound", err)
	}

	if err := b.DeletePolicy(in.ID()); err != nil {
		t.Fatalf("DeletePolicy: %v", err)
	}
	if err := b.DeletePolicy(in.ID()); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("second DeletePolicy = %v, want ErrNotFound", err)
	}
	list = ipns(t, ns, "xfrm", "policy")
	if strings.Contains(list, "dir in priority 100") || !strings.Contains(list, "dir fwd priority 100") {
		t.Errorf("DeletePolicy removed the wrong policy:\n%s", list)
	}

	closed = true
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, ok := <-b.Events(); ok {
		t.Error("Events not closed by Close")
	}
	list = ipns(t, ns, "xfrm", "policy")
	if strings.Count(list, "dir ") != 1 || !strings.Contains(list, foreignPolicy) {
		t.Errorf("after Close only the foreign policy should remain:\n%s", list)
	}
}

// sendUDP sends a datagram from inside the namespace and returns its
// source port.
func sendUDP(t *testing.T, path string, dst netip.AddrPort) uint16 {
	t.Helper()
	var port uint16
	err := inNamespace(path, func() error {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer c.Close()
		port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
		_, _ = c.Write([]byte("acquire")) // dropped (larval SA): EAGAIN is fine
		return nil
	})
	if err != nil {
		t.Fatalf("send in namespace: %v", err)
	}
	return port
}

func TestLiveAcquire(t *testing.T) {
	ns, path := namespace(t)
	// A foreign policy's acquires are not ours to see.
	ipns(t, ns, "xfrm", "policy", "add", "src", "10.77.0.1/32", "dst", "10.77.0.3/32", "dir", "out",
		"tmpl", "proto", "esp", "mode", "transport", "reqid", "99")
	b := open(t, path)
	defer b.Close()
	p := &sadb.Policy{
		Selector:  sadb.Selector{Src: pfx("10.77.0.1/32"), Dst: pfx("10.77.0.2/32"), Proto: 17},
		Direction: sadb.Out, Action: sadb.Protect, Level: sadb.Required,
		Protocol: sadb.ESP, Mode: sadb.Transport, ReqID: 42,
	}
	if err := b.AddPolicy(p); err != nil {
		t.Fatal(err)
	}

	// A foreign acquire, however late a busy machine delivers it, would
	// come before ours and differ from it.
	sendUDP(t, path, netip.MustParseAddrPort("10.77.0.3:5555"))
	select {
	case ev := <-b.Events():
		t.Fatalf("event for a foreign policy: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}

	sport := sendUDP(t, path, netip.MustParseAddrPort("10.77.0.2:5555"))
	select {
	case ev := <-b.Events():
		want := sadb.Event{
			Kind:   sadb.Acquire,
			Policy: p.ID(),
			Packet: sadb.Selector{Src: pfx("10.77.0.1/32"), Dst: pfx("10.77.0.2/32"), Proto: 17, SrcPort: sport, DstPort: 5555},
			ReqID:  42,
		}
		if ev != want {
			t.Errorf("event\n got %+v\nwant %+v", ev, want)
		}
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatal("no acquire event")
	}
}

// TestLiveSA runs where the kernel holds ESP SAs (not on a kernel without
// esp4/esp6, where TestLiveAddSAWithoutESP runs instead).
func TestLiveSA(t *testing.T) {
	ns, path := namespace(t)
	if err := Probe(path); errors.Is(err, ErrNoESP) {
		t.Skip("this kernel has no ESP; TestLiveAddSAWithoutESP covers it")
	}
	ipns(t, ns, "xfrm", "state", "add", "src", "192.0.2.10", "dst", "192.0.2.11", "proto", "esp", "spi", "0x99",
		"mode", "tunnel", "reqid", "99", "enc", "cbc(aes)", "0x00112233445566778899aabbccddeeff",
		"auth-trunc", "hmac(sha256)", "0x00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "128")
	b := open(t, path)
	closed := false
	defer func() {
		if !closed {
			_ = b.Close()
		}
	}()
	var added []*sadb.SA
	for i, kind := range []string{"cbc-sha256", "cbc-sha384-esn", "transport-encap", "ah", "gcm128"} {
		sa := testSA(t, kind)
		sa.SPI = 0x1000 + uint32(i)
		if err := b.AddSA(sa); err != nil {
			if errors.Is(err, syscall.ENOSYS) { // the kernel lacks the algorithm
				t.Logf("%s: the kernel lacks the algorithm: %v", kind, err)
				continue
			}
			t.Fatalf("AddSA %s: %v", kind, err)
		}
		added = append(added, sa)
	}
	if err := b.AddSA(added[0]); err == nil {
		t.Error("adding an existing SA succeeded")
	}
	list := ipns(t, ns, "xfrm", "state")
	t.Logf("ip xfrm state:\n%s", list)
	for _, sa := range added {
		if !strings.Contains(list, fmt.Sprintf("spi 0x%08x", sa.SPI)) {
			t.Errorf("SA %08x not listed", sa.SPI)
		}
		c, err := b.Counters(sa.ID())
		if err != nil || c != (sadb.Counters{}) {
			t.Errorf("Counters %08x = %+v, %v", sa.SPI, c, err)
		}
	}
	foreign := sadb.ID{Dst: addr("192.0.2.11"), Protocol: sadb.ESP, SPI: 0x99}
	if err := b.DeleteSA(foreign); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("DeleteSA of a foreign SA = %v, want ErrNotFound", err)
	}
	if err := b.DeleteSA(added[0].ID()); err != nil {
		t.Fatalf("DeleteSA: %v", err)
	}
	if err := b.DeleteSA(added[0].ID()); !errors.Is(err, sadb.ErrNotFound) {
		t.Errorf("second DeleteSA = %v, want ErrNotFound", err)
	}
	// Soft then hard expiry by time, reported as events.
	short := testSA(t, "cbc-sha256")
	short.SPI, short.Lifetime = 0x2000, sadb.Lifetime{SoftTime: time.Second, HardTime: 2 * time.Second}
	if err := b.AddSA(short); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []sadb.EventKind{sadb.SoftExpire, sadb.HardExpire} {
		select {
		case ev := <-b.Events():
			if want := (sadb.Event{Kind: kind, SA: short.ID(), ReqID: short.ReqID}); ev != want {
				t.Errorf("event %+v, want %+v", ev, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no %s event", kind)
		}
	}
	closed = true
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	list = ipns(t, ns, "xfrm", "state")
	if strings.Count(list, "spi ") != 1 || !strings.Contains(list, "spi 0x00000099") {
		t.Errorf("after Close only the foreign SA should remain:\n%s", list)
	}
}

func TestLiveSocketHelpers(t *testing.T) {
	_, path := namespace(t)
	b := open(t, path)
	defer b.Close()
	p := &sadb.Policy{
		Selector:  sadb.Selector{Src: pfx("10.77.0.1/32"), Dst: pfx("10.77.0.2/32"), Proto: 17},
		Direction: sadb.Out, Action: sadb.Protect, Protocol: sadb.ESP, Mode: sadb.Transport, ReqID: 5,
	}
	if err := b.AddPolicy(p); err != nil {
		t.Fatal(err)
	}
	send := func(bypass bool) (port uint16) {
		t.Helper()
		err := inNamespace(path, func() error {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1)})
			if err != nil {
				return err
			}
			defer c.Close()
			port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
			if err := EnableESPInUDP(c); err != nil {
				return err
			}
			if bypass {
				if err := BypassSocket(c); err != nil {
					return err
				}
			}
			_, _ = c.WriteToUDP([]byte("ike"), &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2), Port: 4500})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return port
	}
	// An acquire of the bypass socket's datagram, however late a busy
	// machine delivers it, comes before the other's and names its port.
	bypassed := send(true)
	select {
	case ev := <-b.Events():
		t.Fatalf("a bypass socket's datagram raised %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	port := send(false)
	select {
	case ev := <-b.Events():
		if ev.Kind != sadb.Acquire || ev.ReqID != 5 || ev.Packet.SrcPort != port {
			t.Errorf("event %+v, want the acquire of the datagram from port %d (the bypass socket's was %d)", ev, port, bypassed)
		}
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatal("no acquire without the bypass")
	}
}
