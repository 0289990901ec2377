package interop

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestIKEv1CharonTransport: Quick Mode in transport mode (host to host,
// UDP-encapsulated as kernel-libipsec wants, with NAT-OA) both ways. The
// exchange completes on the wire, but kernel-libipsec installs only
// tunnel-mode SAs: charon reports "unable to install" and tells iked with
// NO-PROPOSAL-CHOSEN naming iked's SPI, and iked removes its half.
// (Transport mode end to end is proven with racoon.)
func TestIKEv1CharonTransport(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := newPair(t, v1Edit(func(ic *ikedConn, cc *charonConn) {
				ic.Mode, cc.Mode = "transport", "transport"
				ic.LocalTS, ic.RemoteTS, cc.LocalTS, cc.RemoteTS = nil, nil, nil, nil
			}))
			if dir.charonInitiates {
				_, _ = p.charon.Initiate(childName, connName) // fails at charon's install
			} else if out, err := p.iked.Initiate(connName); err != nil {
				t.Fatalf("iked initiate: %v\n%s", err, out)
			}
			waitFor(t, 10*time.Second, func() string {
				if !strings.Contains(p.charon.Log(), "unable to install inbound and outbound IPsec SA") {
					return "charon did not try to install the transport-mode SAs"
				}
				sas, err := p.iked.SAs()
				if err != nil || len(sas) != 1 || len(sas[0].Children) != 0 {
					return fmt.Sprintf("iked SAs %+v %v, want its ISAKMP SA without IPsec SAs", sas, err)
				}
				return ""
			})
			if log := p.charon.Log(); !strings.Contains(log, "NAT-OA NAT-OA ]") {
				t.Errorf("no NAT-OA in the transport-mode Quick Mode:\n%s", log)
			}
			checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
		})
	}
}

// TestIKEv1RacoonTransport: Quick Mode in transport mode with racoon,
// both ways; the SAs and keys equal on both sides.
func TestIKEv1RacoonTransport(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := newRacoonPair(t, func(ic *ikedConn, ro *racoonOptions) {
				ic.Mode, ic.LocalTS, ic.RemoteTS = "transport", nil, nil
				ro.LocalTS, ro.RemoteTS = "", ""
				if dir.charonInitiates {
					ro.Policies = []string{
						fmt.Sprintf("spdadd %s %s any -P out ipsec esp/transport//require;", ro.LocalAddr, ro.RemoteAddr),
						fmt.Sprintf("spdadd %s %s any -P in ipsec esp/transport//require;", ro.RemoteAddr, ro.LocalAddr),
					}
				}
			})
			role := "initiator"
			if dir.charonInitiates {
				role = "responder"
				racoonEstablish(t, p, p.ro.LocalAddr+"/32", p.ro.RemoteAddr+"/32")
			} else if out, err := p.iked.Initiate(connName); err != nil {
				t.Fatalf("iked initiate: %v\n%s", err, out)
			}
			_, ic := checkRacoonEstablished(t, p, role, v1WantIKE, v1WantESP)
			if ic.Mode != "transport" {
				t.Errorf("iked IPsec SA mode %s", ic.Mode)
			}
			if !strings.Contains(p.racoon.Log(), "mode=transport") && !strings.Contains(p.racoon.Log(), "Transport") {
				t.Logf("racoon's log does not name the mode")
			}
			checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
		})
	}
}

// racoonEstablish has racoon start Main Mode and a Quick Mode for the
// given selectors.
func racoonEstablish(t *testing.T, p *racoonPair, local, remote string) {
	t.Helper()
	if out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "isakmp", "inet", p.ro.LocalAddr, p.ro.RemoteAddr); err != nil {
		t.Fatalf("racoonctl establish-sa isakmp: %v\n%s", err, out)
	}
	if out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "esp", "inet", local, remote, "any"); err != nil {
		t.Fatalf("racoonctl establish-sa esp: %v\n%s", err, out)
	}
}
