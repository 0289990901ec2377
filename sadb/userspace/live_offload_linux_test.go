//go:build linux

package userspace

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/sadb"
)

// TestLiveTCPOffload: TCP through the tunnel carries bulk data intact in
// both directions with offloads on at both ends (over IPv4 and IPv6
// inside the tunnel), and with one end without them (as a peer without offloads, such as kernel-libipsec, is
// on the wire): the sender's TUN device hands over super-segments (cut
// into MTU-sized ESP packets), and the receiver with offloads joins
// segments before writing them to its TUN device.
func TestLiveTCPOffload(t *testing.T) {
	needRoot(t, "ip")
	for _, c := range []struct {
		name       string
		offA, offB bool
		v6         bool
	}{{"both", true, true, false}, {"sender-only", true, false, false}, {"receiver-only", false, true, false}, {"both-ipv6", true, true, true}} {
		t.Run(c.name, func(t *testing.T) {
			a, b, nsA, nsB := liveTopology(t, c.offA, c.offB)
			if a.tun.tso != c.offA || b.tun.tso != c.offB || a.udp.gso != c.offA || b.udp.gro != c.offB {
				t.Fatalf("offloads: A tso %v gso %v, B tso %v gro %v", a.tun.tso, a.udp.gso, b.tun.tso, b.udp.gro)
			}
			netA, netB, hostA, hostB := "10.1.0.0/24", "10.2.0.0/24", "10.1.0.1", "10.2.0.1"
			if c.v6 {
				netA, netB, hostA, hostB = "fd00:1::/64", "fd00:2::/64", "fd00:1::1", "fd00:2::1"
			}
			abOut, abIn := saPair(0x1001, "192.0.2.1", "192.0.2.2", netA, netB, true)
			baOut, baIn := saPair(0x2002, "192.0.2.2", "192.0.2.1", netB, netA, false)
			for _, s := range []struct {
				be *Backend
				sa *sadb.SA
			}{{a, abOut}, {b, abIn}, {b, baOut}, {a, baIn}} {
				if err := s.be.AddSA(s.sa); err != nil {
					t.Fatal(err)
				}
			}

			// A sends 32 MB to B, B 4 MB back, at once; each side checks
			// what it got against what the other sent.
			const up, down = 32 << 20, 4 << 20
			r := rand.New(rand.NewPCG(11, 12))
			upData, downData := make([]byte, up), make([]byte, down)
			for i := range upData {
				upData[i] = byte(r.Uint32())
			}
			copy(downData, upData[len(upData)-down:])
			var ln net.Listener
			if err := inNS(nsB, func() (err error) {
				ln, err = net.Listen("tcp", net.JoinHostPort(hostB, "0"))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			type result struct {
				sum [32]byte
				err error
			}
			srv := make(chan result, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					srv <- result{err: err}
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				werr := make(chan error, 1)
				go func() { _, err := c.Write(downData); werr <- err }()
				h := sha256.New()
				_, err = io.Copy(h, c)
				if err == nil {
					err = <-werr
				}
				srv <- result{sum: [32]byte(h.Sum(nil)), err: err}
			}()
			var conn net.Conn
			if err := inNS(nsA, func() (err error) {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(hostA)}, Timeout: 60 * time.Second} // a hang guard
				conn, err = d.Dial("tcp", ln.Addr().String())
				return err
			}); err != nil {
				t.Fatalf("dial through the tunnel: %v\nA: %+v\nB: %+v", err, a.Stats(), b.Stats())
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
			back := make(chan result, 1)
			go func() {
				h := sha256.New()
				_, err := io.CopyN(h, conn, down)
				back <- result{sum: [32]byte(h.Sum(nil)), err: err}
			}()
			if _, err := conn.Write(upData); err != nil {
				t.Fatalf("write: %v\nA: %+v\nB: %+v", err, a.Stats(), b.Stats())
			}
			_ = conn.(*net.TCPConn).CloseWrite()
			got := <-srv
			if got.err != nil || got.sum != sha256.Sum256(upData) {
				t.Fatalf("A -> B: %v, intact %v\nA: %+v\nB: %+v", got.err, got.sum == sha256.Sum256(upData), a.Stats(), b.Stats())
			}
			if gotBack := <-back; gotBack.err != nil || gotBack.sum != sha256.Sum256(downData) {
				t.Fatalf("B -> A: %v, intact %v", gotBack.err, gotBack.sum == sha256.Sum256(downData))
			}

			sa, sb := a.Stats(), b.Stats()
			t.Logf("A: %+v", sa)
			t.Logf("B: %+v", sb)
			for _, s := range []struct {
				name string
				st   Stats
			}{{"A", sa}, {"B", sb}} {
				if s.st.Malformed != 0 || s.st.SendErrors != 0 || s.st.TUNWriteErrors != 0 || s.st.Auth != 0 || s.st.Replay != 0 {
					t.Errorf("%s: drops or errors: %+v", s.name, s.st)
				}
			}
			if c.offA && sa.Offload == 0 {
				t.Errorf("A cut no TCP super-segments")
			}
			if !c.offA && sa.Offload != 0 {
				t.Errorf("A without offloads cut %d super-segments", sa.Offload)
			}
			if c.offB && c.offA && sb.Coalesced == 0 {
				t.Errorf("B joined no TCP segments")
			}
			if !c.offB && sb.Coalesced != 0 {
				t.Errorf("B without offloads joined %d segments", sb.Coalesced)
			}
			// Every ESP packet carried one inner packet: every one that
			// went out of one side was taken in by the other or dropped
			// by its socket, full on a busy machine (TCP sent the data
			// again), and A sent no fewer than the data needs at the MTU.
			dropsA, dropsB := udpSocketDrops(t, nsA), udpSocketDrops(t, nsB)
			t.Logf("A sent %d ESP packets, B took in %d, its socket dropped %d; B sent %d, A took in %d, its socket dropped %d",
				sa.Sent, sb.Received, dropsB, sb.Sent, sa.Received, dropsA)
			if sa.Sent != sb.Received+dropsB || sb.Sent != sa.Received+dropsA || sa.Sent < up/1400 {
				t.Errorf("ESP not accounted for: A sent %d, B took in %d, its socket dropped %d; B sent %d, A took in %d, its socket dropped %d",
					sa.Sent, sb.Received, dropsB, sb.Sent, sa.Received, dropsA)
			}
		})
	}
}

// udpSocketDrops returns the datagrams the UDP sockets in namespace ns
// dropped (the drops column of /proc/net/udp and udp6: a datagram, or each
// segment of a GRO datagram, that found the receive buffer full).
func udpSocketDrops(t *testing.T, ns string) uint64 {
	t.Helper()
	var n uint64
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		lines := strings.Split(strings.TrimSpace(run(t, "ip", "netns", "exec", ns, "cat", f)), "\n")
		for _, l := range lines[1:] {
			fs := strings.Fields(l)
			if len(fs) < 13 {
				continue
			}
			d, err := strconv.ParseUint(fs[len(fs)-1], 10, 64)
			if err != nil {
				t.Fatalf("%s in %s: %q: %v", f, ns, l, err)
			}
			n += d
		}
	}
	return n
}

// liveTopology makes two namespaces joined by a veth pair (192.0.2.1 and
// .2) with a backend in each (10.1.0.1 and fd00:1::1 on ikedA, 10.2.0.1
// and fd00:2::1 on ikedB), with or without offloads; everything is
// removed when the test ends.
func liveTopology(t *testing.T, offA, offB bool) (a, b *Backend, nsA, nsB string) {
	t.Helper()
	suffix := fmt.Sprintf("%d%d", os.Getpid()%100000, rand.IntN(1000))
	nsA, nsB = "iked-uo-a-"+suffix, "iked-uo-b-"+suffix
	vA, vB := "uoa"+suffix, "uob"+suffix
	if len(vA) > 15 {
		vA, vB = vA[:15], vB[:15]
	}
	run(t, "ip", "netns", "add", nsA)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsA).Run() })
	run(t, "ip", "netns", "add", nsB)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", nsB).Run() })
	run(t, "ip", "link", "add", vA, "netns", nsA, "type", "veth", "peer", "name", vB, "netns", nsB)
	run(t, "ip", "-n", nsA, "addr", "add", "192.0.2.1/24", "dev", vA)
	run(t, "ip", "-n", nsB, "addr", "add", "192.0.2.2/24", "dev", vB)
	for _, c := range [][]string{{nsA, vA}, {nsB, vB}} {
		run(t, "ip", "-n", c[0], "link", "set", c[1], "up")
		run(t, "ip", "-n", c[0], "link", "set", "lo", "up")
	}
	if err := inNS(nsA, func() (err error) {
		a, err = New(Config{TUN: "ikedA", Listen: netip.MustParseAddrPort("192.0.2.1:4500"), Addresses: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/32"), netip.MustParsePrefix("fd00:1::1/128")}, NoOffload: !offA})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if err := inNS(nsB, func() (err error) {
		b, err = New(Config{TUN: "ikedB", Listen: netip.MustParseAddrPort("192.0.2.2:4500"), Addresses: []netip.Prefix{netip.MustParsePrefix("10.2.0.1/32"), netip.MustParsePrefix("fd00:2::1/128")}, NoOffload: !offB})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b, nsA, nsB
}
