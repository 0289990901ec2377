package interop

import (
	"os/exec"
	"testing"
)

// newCharonDataplanePairV1 is newCharonDataplanePair for IKEv1: iked with
// the userspace data plane, charon with kernel-libipsec and its routes.
func newCharonDataplanePairV1(t *testing.T) *pair {
	t.Helper()
	requireCharon(t)
	requireTUN(t)
	requireTools(t, "ping", "tcpdump", "tshark")
	p := &pair{topo: newTopology(t)}
	moveInnerHost(t, p.topo.I, "veth-i", ikedInnerHost)
	iAddr, cAddr := p.topo.IkedAddr.String(), p.topo.CharonAddr.String()
	p.ic = ikedConn{Name: connName, Local: iAddr, Remote: cAddr, LocalID: ikedID, RemoteID: charonID, PSK: interopPSK,
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}
	p.cc = charonConn{Name: connName, Child: childName, LocalAddr: cAddr, RemoteAddr: iAddr, LocalID: charonID, RemoteID: ikedID,
		PSK: interopPSK, LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}
	v1Edit(nil)(&p.ic, &p.cc)
	p.cap = startCaptureFilter(t, p.topo.S, "veth-s", "")
	t.Cleanup(func() {
		if t.Failed() || verbose() {
			var prefs []string
			if p.iked != nil {
				prefs = p.iked.KeyLogPrefs()
			}
			t.Logf("capture on veth-s:\n%s", p.cap.Summary(prefs))
			out, _ := exec.Command("ip", "-n", p.topo.S.name, "route", "show", "table", "all").CombinedOutput()
			t.Logf("charon's routes:\n%s", out)
		}
	})
	p.iked = startIked(t, p.topo.I, userspaceIked(iAddr, ikedInnerHost, p.ic))
	p.charon = startCharon(t, p.topo.S, charonOptions{Conns: []charonConn{p.cc}, InstallRoutes: true})
	return p
}

// TestIKEv1DataplaneCharon: real traffic through iked's userspace data
// plane and charon's kernel-libipsec over IKEv1-negotiated SAs, whichever
// side initiated: pings both ways arrive, iked's counters are the pings'
// and charon's mirror them, only ESP in UDP crosses the link, and tshark
// decrypts the pings inside with iked's key log.
func TestIKEv1DataplaneCharon(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := newCharonDataplanePairV1(t)
			establish(t, p, dir.charonInitiates)
			checkEstablished(t, p, dir.charonInitiates, v1WantIKE, v1WantESP)
			ping(t, p.topo.I, ikedInnerHost, charonInnerHost, pingCount)
			ping(t, p.topo.S, charonInnerHost, ikedInnerHost, pingCount)
			ic := wantCounters(t, "iked", p.iked, 2*pingCount)
			cc := p.charon.mustListSAs()[0].Children[0]
			if charonCounter(cc, "packets-in") != ic.PacketsOut || charonCounter(cc, "packets-out") != ic.PacketsIn ||
				charonCounter(cc, "bytes-in") != ic.BytesOut || charonCounter(cc, "bytes-out") != ic.BytesIn {
				t.Errorf("charon's counters (%+v) do not mirror iked's (%+v)", cc.Raw, ic)
			}
			wireCheck(t, p.cap, p.iked.KeyLogPrefs(), p.topo.IkedAddr, p.topo.CharonAddr,
				spiValue(t, ic.SPIOut), spiValue(t, ic.SPIIn), 2*pingCount)
			checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
		})
	}
}
