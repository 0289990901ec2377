package interop

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// pqPair is iked (userspace data plane, inner 10.1.0.1 on its TUN) in I
// and charon (kernel-libipsec with routes, inner 10.2.0.1) in S, strongSwan
// 6.0.6 unless build says otherwise, with an unfiltered capture of veth-s.
func pqPair(t *testing.T, build *charonBuild, ikeProp, espProp string, edit func(*ikedConn, *charonConn), opts func(*ikedOptions, *charonOptions)) *pair {
	t.Helper()
	requireTUN(t)
	requireTools(t, "ping", "tcpdump", "tshark")
	p := &pair{topo: newTopology(t)}
	moveInnerHost(t, p.topo.I, "veth-i", ikedInnerHost)
	iAddr, cAddr := p.topo.IkedAddr.String(), p.topo.CharonAddr.String()
	p.ic = ikedConn{Name: connName, Local: iAddr, Remote: cAddr, LocalID: ikedID, RemoteID: charonID, PSK: interopPSK,
		IKEProposals: []string{ikeProp}, ESPProposals: []string{espProp},
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}
	p.cc = charonConn{Name: connName, Child: childName, LocalAddr: cAddr, RemoteAddr: iAddr, LocalID: charonID, RemoteID: ikedID,
		PSK: interopPSK, IKEProposals: []string{ikeProp}, ESPProposals: []string{espProp},
		LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}
	if edit != nil {
		edit(&p.ic, &p.cc)
	}
	p.cap = startCaptureFilter(t, p.topo.S, "veth-s", "")
	t.Cleanup(func() {
		if t.Failed() || verbose() {
			var prefs []string
			if p.iked != nil {
				prefs = p.iked.KeyLogPrefs()
				t.Logf("iked key log:\n%s", p.iked.KeyLog())
			}
			t.Logf("capture on veth-s:\n%s", tail(p.cap.Summary(prefs), 30000))
		}
	})
	io := userspaceIked(iAddr, ikedInnerHost, p.ic)
	co := charonOptions{Conns: []charonConn{p.cc}, InstallRoutes: true, Build: build}
	if opts != nil {
		opts(&io, &co)
	}
	p.iked = startIked(t, p.topo.I, io)
	p.charon = startCharon(t, p.topo.S, co)
	return p
}

// TestPQSmoke is a first run: iked initiates x25519-ke1_mlkem768.
func TestPQSmoke(t *testing.T) {
	b := requireCharon6(t)
	const prop = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := pqPair(t, b, prop, "aes256gcm16", nil, nil)
			establish(t, p, dir.charonInitiates)
			is, cs := checkEstablished(t, p, dir.charonInitiates, "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768", "AES_GCM_16-256/NO_EXT_SEQ")
			t.Logf("iked %+v\ncharon %+v", is, cs.Raw)
			ping(t, p.topo.I, ikedInnerHost, charonInnerHost, pingCount)
			ping(t, p.topo.S, charonInnerHost, ikedInnerHost, pingCount)
			_ = fmt.Sprint
			_ = exec.Command
			_ = strings.Contains
			_ = time.Second
		})
	}
}
