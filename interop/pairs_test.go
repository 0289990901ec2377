package interop

import (
	"cmp"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// How the tests' two daemons start: iked in the topology's I namespace and,
// in S, a second iked (startIkedPair) or charon (startCharonPair), with the
// connections of ikedPeers and charonPeers and a capture of the link that
// is printed when the test fails. The pair constructors the tests call
// (newIkedPair, rekeyPair, newPair, newCharonDataplanePair, …) are presets
// of these two.

// ikeOnly is the tcpdump filter of IKE: port 500, and port 4500 behind
// the non-ESP marker.
const ikeOnly = "udp port 500 or (udp port 4500 and udp[8:4] = 0)"

// ikedPeers returns the connections of two iked: A at aAddr (ikedAID,
// protecting 10.1.0.0/24) and B at bAddr (ikedBID, 10.2.0.0/24), each
// naming the other, with the PSK, dpIKEProposal and the ESP proposal esp.
func ikedPeers(aAddr, bAddr, esp string) (a, b ikedConn) {
	a = ikedConn{Name: connName, Local: aAddr, Remote: bAddr, LocalID: ikedAID, RemoteID: ikedBID, PSK: interopPSK,
		IKEProposals: []string{dpIKEProposal}, ESPProposals: []string{esp},
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}
	b = ikedConn{Name: connName, Local: bAddr, Remote: aAddr, LocalID: ikedBID, RemoteID: ikedAID, PSK: interopPSK,
		IKEProposals: []string{dpIKEProposal}, ESPProposals: []string{esp},
		LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}
	return a, b
}

// charonPeers returns the connections of iked at iAddr (ikedID, protecting
// 10.1.0.0/24) and charon at cAddr (charonID, 10.2.0.0/24), each naming the
// other, with the PSK, dpIKEProposal and the ESP proposal esp.
func charonPeers(iAddr, cAddr, esp string) (ikedConn, charonConn) {
	return ikedConn{Name: connName, Local: iAddr, Remote: cAddr, LocalID: ikedID, RemoteID: charonID, PSK: interopPSK,
			IKEProposals: []string{dpIKEProposal}, ESPProposals: []string{esp},
			LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}},
		charonConn{Name: connName, Child: childName, LocalAddr: cAddr, RemoteAddr: iAddr, LocalID: charonID, RemoteID: ikedID, PSK: interopPSK,
			IKEProposals: []string{dpIKEProposal}, ESPProposals: []string{esp},
			LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}
}

// logCaptureOnFailure registers a cleanup that prints capture c (of the
// interface named by where) when the test failed or INTEROP_VERBOSE is set,
// IKE decrypted with the key log of the iked keys returns (nil: not
// decrypted), and that key log. Registered before the daemons start, it
// runs after they stopped, so the capture holds the whole conversation.
func logCaptureOnFailure(t *testing.T, c *capture, where string, keys func() *iked) {
	t.Cleanup(func() {
		if !t.Failed() && !verbose() {
			return
		}
		var prefs []string
		if d := keys(); d != nil {
			prefs = d.KeyLogPrefs()
			t.Logf("iked key log:\n%s", tail(d.KeyLog(), 20000))
		}
		t.Logf("capture on %s (IKE decrypted with iked's key log):\n%s", where, tail(c.Summary(prefs), 20000))
	})
}

// ikedPairSetup says how startIkedPair starts two iked.
type ikedPairSetup struct {
	esp    string                  // ESP proposal; aes256gcm16 when empty
	filter string                  // tcpdump filter of the capture on veth-i; empty: every packet
	edit   func(a, b *ikedConn)    // adjusts ikedPeers' connections
	opts   func(a, b *ikedOptions) // adjusts the daemons' options
}

// startIkedPair starts two iked with the userspace data plane: A in the
// topology's I namespace (inner 10.1.0.1 on its TUN), B in S (inner
// 10.2.0.1), with ikedPeers' connections; it captures veth-i and has A
// initiate.
func startIkedPair(t *testing.T, s ikedPairSetup) *dpIkedPair {
	t.Helper()
	requireRoot(t)
	requireTUN(t)
	requireTools(t, "ping", "tcpdump", "tshark")
	p := &dpIkedPair{topo: newTopology(t)}
	moveInnerHost(t, p.topo.I, "veth-i", ikedInnerHost)
	moveInnerHost(t, p.topo.S, "veth-s", charonInnerHost)
	// No IPv6 in the namespaces: the data plane's drop and acquire
	// counters then count only the test's traffic.
	noIPv6(t, p.topo.I)
	noIPv6(t, p.topo.S)
	p.cap = startCaptureFilter(t, p.topo.I, "veth-i", s.filter)
	aAddr, bAddr := p.topo.IkedAddr.String(), p.topo.CharonAddr.String()
	ca, cb := ikedPeers(aAddr, bAddr, cmp.Or(s.esp, "aes256gcm16"))
	if s.edit != nil {
		s.edit(&ca, &cb)
	}
	p.optsA, p.optsB = userspaceIked(aAddr, ikedInnerHost, ca), userspaceIked(bAddr, charonInnerHost, cb)
	if s.opts != nil {
		s.opts(&p.optsA, &p.optsB)
	}
	logCaptureOnFailure(t, p.cap, "veth-i", func() *iked { return p.a })
	p.b = startIked(t, p.topo.S, p.optsB)
	p.a = startIked(t, p.topo.I, p.optsA)
	if out, err := p.a.Initiate(connName); err != nil {
		t.Fatalf("iked A initiate: %v\n%s", err, out)
	}
	return p
}

// charonPairSetup says how startCharonPair starts iked and charon.
type charonPairSetup struct {
	// userspace puts iked on the userspace data plane (inner 10.1.0.1 on
	// its TUN) and has charon install its kernel-libipsec routes; without
	// it iked runs the memory data plane.
	userspace bool
	esp       string                             // ESP proposal; aes256gcm16 when empty
	filter    string                             // tcpdump filter of the capture on veth-s; empty: every packet
	edit      func(*ikedConn, *charonConn)       // adjusts charonPeers' connections
	opts      func(*ikedOptions, *charonOptions) // adjusts the daemons' options
}

// startCharonPair starts iked in the topology's I namespace and charon in
// S with charonPeers' connections, and captures veth-s. Nobody initiates.
func startCharonPair(t *testing.T, s charonPairSetup) *pair {
	t.Helper()
	requireCharon(t)
	if s.userspace {
		requireTUN(t)
		requireTools(t, "ping", "tcpdump", "tshark")
	}
	p := &pair{topo: newTopology(t)}
	if s.userspace {
		moveInnerHost(t, p.topo.I, "veth-i", ikedInnerHost)
		noIPv6(t, p.topo.I)
	}
	iAddr, cAddr := p.topo.IkedAddr.String(), p.topo.CharonAddr.String()
	p.ic, p.cc = charonPeers(iAddr, cAddr, cmp.Or(s.esp, "aes256gcm16"))
	if s.edit != nil {
		s.edit(&p.ic, &p.cc)
	}
	p.cap = startCaptureFilter(t, p.topo.S, "veth-s", s.filter)
	logCaptureOnFailure(t, p.cap, "veth-s", func() *iked { return p.iked })
	io := ikedOptions{Listen: []string{iAddr + ":500", iAddr + ":4500"}, Conns: []ikedConn{p.ic}}
	co := charonOptions{Conns: []charonConn{p.cc}}
	if s.userspace {
		io, co.InstallRoutes = userspaceIked(iAddr, ikedInnerHost, p.ic), true
		t.Cleanup(func() {
			if t.Failed() || verbose() {
				out, _ := exec.Command("ip", "-n", p.topo.S.name, "route", "show", "table", "all").CombinedOutput()
				t.Logf("charon's routes:\n%s", out)
			}
		})
	}
	if s.opts != nil {
		s.opts(&io, &co)
	}
	p.iked = startIked(t, p.topo.I, io)
	p.charon = startCharon(t, p.topo.S, co)
	return p
}

// policyIked returns the options of an iked that runs an assigned policy
// (extra: its policy, authentication and files sections) instead of
// connections: the userspace data plane on iked0, metrics, listening on
// addr:500 and addr:4500.
func policyIked(addr netip.Addr, extra string, files map[string][]byte) ikedOptions {
	return ikedOptions{
		Listen:  []string{addr.String() + ":500", addr.String() + ":4500"},
		Backend: "userspace", Metrics: true, Files: files,
		Userspace:         &ikedUserspace{TUN: "iked0"},
		RetransmitTimeout: time.Second, RetransmitTries: 2,
		Extra: extra,
	}
}
