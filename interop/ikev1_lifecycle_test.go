package interop

import (
	"fmt"
	"slices"
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

// v1Children returns iked's IPsec SAs of its only ISAKMP SA, or an
// explanation.
func v1Children(d *iked) ([]string, string) {
	sas, err := d.SAs()
	if err != nil {
		return nil, err.Error()
	}
	var spis []string
	for _, sa := range sas {
		if sa.State != "established" {
			continue
		}
		for _, c := range sa.Children {
			spis = append(spis, c.SPIIn+"/"+c.SPIOut)
		}
	}
	slices.Sort(spis)
	return spis, ""
}

// charonChildren returns charon's Child SAs (installed, or rekeyed and
// not yet expired: charon's IKEv1 keeps a rekeyed pair until its life
// ends, then deletes it) as iked's in/out pairs (charon's out is iked's
// in), sorted.
func charonChildren(c *charon) ([]string, error) {
	sas, err := c.ListSAs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range sas {
		for _, ch := range s.Children {
			if ch.State == "INSTALLED" || ch.State == "REKEYED" {
				out = append(out, spiHex(ch.SPIOut, 8)+"/"+spiHex(ch.SPIIn, 8))
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// TestIKEv1CharonRekeyIPsec: IPsec SAs are rekeyed by lifetime (a new
// Quick Mode, make before break), whichever side's lifetime runs out: iked
// deletes the pair it replaced at once, charon when the replaced pair's
// life ends. Both always come to hold the same pairs, and the first one
// goes.
func TestIKEv1CharonRekeyIPsec(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := newPair(t, v1Edit(func(ic *ikedConn, cc *charonConn) {
				if dir.charonInitiates {
					cc.ChildRekeyTime, cc.ChildLifeTime, cc.ChildRandTime = "3s", "6s", "0s"
				} else {
					ic.RekeyTime = "3s"
				}
			}))
			establish(t, p, dir.charonInitiates)
			first, _ := v1Children(p.iked)
			if len(first) != 1 {
				t.Fatalf("iked IPsec SAs %v", first)
			}
			waitFor(t, 30*time.Second, func() string {
				got, msg := v1Children(p.iked)
				if msg != "" {
					return msg
				}
				cc, err := charonChildren(p.charon)
				if err != nil {
					return err.Error()
				}
				if len(got) == 0 || !slices.Equal(got, cc) || slices.Contains(got, first[0]) {
					return fmt.Sprintf("iked IPsec SAs %v, charon %v; want the same pairs on both, without the first (%s)", got, cc, first[0])
				}
				return ""
			})
			checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
		})
	}
}

// TestIKEv1CharonRekeyISAKMP: the ISAKMP SA is replaced by lifetime with
// a new Main Mode, whose SA takes over the IPsec SA; the old ISAKMP SA is
// deleted on both sides.
func TestIKEv1CharonRekeyISAKMP(t *testing.T) {
	p := newPair(t, v1Edit(func(ic *ikedConn, cc *charonConn) { ic.IKERekeyTime = "5s" }))
	establish(t, p, false)
	sas, err := p.iked.SAs()
	if err != nil || len(sas) != 1 {
		t.Fatalf("iked SAs %+v %v", sas, err)
	}
	old, child := sas[0], sas[0].Children[0]
	waitFor(t, 30*time.Second, func() string {
		sas, err := p.iked.SAs()
		if err != nil {
			return err.Error()
		}
		cs, err := p.charon.ListSAs()
		if err != nil {
			return err.Error()
		}
		if len(sas) != 1 || sas[0].SPIi == old.SPIi || len(cs) != 1 || spiHex(cs[0].SPIi, 16) != sas[0].SPIi {
			return fmt.Sprintf("iked SAs %+v, charon %+v; want one new ISAKMP SA on both (old %s)", sas, cs, old.SPIi)
		}
		if len(sas[0].Children) != 1 || sas[0].Children[0].SPIIn != child.SPIIn {
			return fmt.Sprintf("new ISAKMP SA holds %+v, want the adopted %s", sas[0].Children, child.SPIIn)
		}
		return ""
	})
	checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
}

// TestIKEv1CharonDeleteIPsec: charon deletes the IPsec SA alone
// (swanctl --terminate --child); iked removes it and keeps the ISAKMP SA.
func TestIKEv1CharonDeleteIPsec(t *testing.T) {
	p := newPair(t, v1Edit(nil))
	establish(t, p, false)
	if out, err := p.charon.swanctl(20*time.Second, "--terminate", "--child", childName, "--timeout", "10"); err != nil {
		t.Fatalf("swanctl --terminate --child: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, func() string {
		sas, err := p.iked.SAs()
		if err != nil || len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 0 {
			return fmt.Sprintf("iked SAs %+v %v, want the ISAKMP SA without IPsec SAs", sas, err)
		}
		return ""
	})
}

// TestIKEv1CharonDPD: both sides' R-U-THERE are answered (charon logs
// the acknowledgement of its own), and when charon is gone iked declares
// it dead and clears the SAs.
func TestIKEv1CharonDPD(t *testing.T) {
	p := newPair(t, v1Edit(func(ic *ikedConn, cc *charonConn) {
		ic.DPDDelay, ic.DPDAction = "1s", "clear"
		cc.DPDDelay = time.Second
	}))
	establish(t, p, false)
	// charon logs what it parses and generates: iked's acknowledgements
	// of charon's R-U-THEREs, iked's R-U-THEREs and its own answers.
	waitFor(t, 20*time.Second, func() string {
		log := p.charon.Log()
		for _, want := range []string{"parsed INFORMATIONAL_V1 request", "[ HASH N(DPD_ACK) ]", "[ HASH N(DPD) ]"} {
			if !strings.Contains(log, want) {
				return "charon's log lacks " + want
			}
		}
		if strings.Count(log, "generating INFORMATIONAL_V1 request") < 2 || !strings.Contains(log, "generating INFORMATIONAL_V1") {
			return "charon answered no R-U-THERE"
		}
		return ""
	})
	// SIGKILL: charon vanishes without a Delete.
	_ = p.charon.cmd.Process.Kill()
	p.charon.err = <-p.charon.done
	p.charon.exited = true
	waitFor(t, 30*time.Second, func() string {
		sas, err := p.iked.SAs()
		if err != nil || len(sas) != 0 {
			return fmt.Sprintf("iked still lists %+v %v after charon stopped", sas, err)
		}
		return ""
	})
	if !strings.Contains(p.iked.Log(), "peer is dead") {
		t.Errorf("iked did not log the dead peer")
	}
}

// TestIKEv1CharonRekeyISAKMPByCharon: charon replaces the ISAKMP SA by
// lifetime (IKEv1 has no rekey: charon reauthenticates with a new Main
// Mode, moves its CHILD_SAs over at once and deletes the old SA after
// over_time); iked follows: the first ISAKMP SA goes from both sides, the
// IPsec SA survives it, and both hold the same IPsec SAs.
func TestIKEv1CharonRekeyISAKMPByCharon(t *testing.T) {
	p := newPair(t, v1Edit(func(_ *ikedConn, cc *charonConn) { cc.IKERekeyTime, cc.IKEOverTime, cc.IKERandTime = "4s", "2s", "0s" }))
	establish(t, p, true)
	sas, err := p.iked.SAs()
	if err != nil || len(sas) != 1 || len(sas[0].Children) != 1 {
		t.Fatalf("iked SAs %+v %v", sas, err)
	}
	old, child := sas[0], sas[0].Children[0]
	waitFor(t, 30*time.Second, func() string {
		sas, err := p.iked.SAs()
		if err != nil {
			return err.Error()
		}
		cs, err := p.charon.ListSAs()
		if err != nil {
			return err.Error()
		}
		for _, s := range sas {
			if s.SPIi == old.SPIi {
				return "iked still holds the first ISAKMP SA"
			}
		}
		for _, c := range cs {
			if spiHex(c.SPIi, 16) == old.SPIi {
				return "charon still holds the first ISAKMP SA"
			}
		}
		got, _ := v1Children(p.iked)
		cc, err := charonChildren(p.charon)
		if err != nil || !slices.Contains(got, child.SPIIn+"/"+child.SPIOut) || !slices.Equal(got, cc) {
			return fmt.Sprintf("IPsec SAs: iked %v, charon %v; want the same, with the first %s/%s", got, cc, child.SPIIn, child.SPIOut)
		}
		return ""
	})
	if !strings.Contains(p.iked.Log(), "took over the IPsec SAs of a retired ISAKMP SA") {
		t.Error("iked did not log the hand-over")
	}
}
