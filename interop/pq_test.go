package interop

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// This file proves the post-quantum key exchanges of issue 21 against
// strongSwan 6.0.6 (charon6_test.go): hybrid IKE SAs with one and two
// additional ML-KEM exchanges in IKE_INTERMEDIATE, whoever initiates;
// Child SA and IKE SA rekeys with PFS and ML-KEM in IKE_FOLLOWUP_KE, from
// either side, under continuous ping through iked's userspace data plane;
// the optional form against Debian's strongSwan 5.9.8, which has no
// RFC 9370; and require_pq against a classical peer. Each case compares
// swanctl --list-sas with iked's view, and proves the keys on the wire with
// tshark: IKE per key generation (pq_wire_test.go), ESP with the Child
// SAs' keys.

// pqPair is iked (userspace data plane, inner 10.1.0.1 on its TUN) in I
// and charon (kernel-libipsec with routes, inner 10.2.0.1) in S, the
// strongSwan of build (nil: Debian's 5.9.8), with an unfiltered capture of
// veth-s.
func pqPair(t *testing.T, build *charonBuild, ikeProp, espProp string, edit func(*ikedConn, *charonConn)) *pair {
	t.Helper()
	if build == nil {
		requireCharon(t)
	}
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
	p.iked = startIked(t, p.topo.I, userspaceIked(iAddr, ikedInnerHost, p.ic))
	p.charon = startCharon(t, p.topo.S, charonOptions{Conns: []charonConn{p.cc}, InstallRoutes: true, Build: build})
	return p
}

// pqCases are the hybrid IKE proposals proven against strongSwan 6.0.6,
// with what both sides must report and how many IKE_INTERMEDIATE
// exchanges they take.
var pqCases = []struct {
	name, ike, want string
	intermediates   int
}{
	{"x25519-ke1_mlkem768", "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768", 1},
	{"ecp384-ke1_mlkem1024", "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024", "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384/KE1_ML_KEM_1024", 1},
	{"x25519-ke1_mlkem768-ke2_mlkem1024", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768/KE2_ML_KEM_1024", 2},
}

// intermediateExchanges counts the IKE_INTERMEDIATE requests of the
// capture (a fragmented one once).
func intermediateExchanges(t *testing.T, c *capture) int {
	t.Helper()
	frames, _, err := ikeFrames(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, f := range frames {
		if f.ExchNum == exchIKEIntermediate && !f.Response {
			ids[f.SPIi+f.MsgID] = true
		}
	}
	return len(ids)
}

// TestPQCharon6: iked and strongSwan 6.0.6 negotiate each hybrid proposal,
// whoever initiates: both report the same SAs (SPIs, the additional key
// exchanges); the IKE_INTERMEDIATE exchanges are on the wire, one per
// additional exchange, every SK message decrypts with iked's key log
// under the key generation it belongs to; pings cross the tunnel both
// ways through the userspace data plane, and the ESP decrypts with the
// logged keys.
func TestPQCharon6(t *testing.T) {
	b := requireCharon6(t)
	for _, pc := range pqCases {
		for _, dir := range directions {
			t.Run(pc.name+"/"+dir.name, func(t *testing.T) {
				p := pqPair(t, b, pc.ike, "aes256gcm16", nil)
				establish(t, p, dir.charonInitiates)
				is, cs := checkEstablished(t, p, dir.charonInitiates, pc.want, "AES_GCM_16-256/NO_EXT_SEQ")
				if !is.PostQuantum || is.Proposal != pc.ike {
					t.Errorf("iked shows post_quantum %v, proposal %q", is.PostQuantum, is.Proposal)
				}
				t.Logf("charon %s[%s] %s_i %s_r %s; iked %s %s", cs.Name, cs.UniqueID, cs.SPIi, cs.SPIr, cs.Algorithms(), is.ID, is.Proposal)
				ping(t, p.topo.I, ikedInnerHost, charonInnerHost, pingCount)
				ping(t, p.topo.S, charonInnerHost, ikedInnerHost, pingCount)
				ic := wantCounters(t, "iked", p.iked, 2*pingCount)
				if n := intermediateExchanges(t, p.cap); n != pc.intermediates {
					t.Errorf("%d IKE_INTERMEDIATE exchanges on the wire, want %d", n, pc.intermediates)
				}
				wireCheck(t, p.cap, p.iked.KeyLogPrefs(), p.topo.IkedAddr, p.topo.CharonAddr, spiValue(t, ic.SPIOut), spiValue(t, ic.SPIIn), 2*pingCount)
				w := checkWireGenerations(t, p.cap, p.iked)
				if w.Generations != pc.intermediates+1 {
					t.Errorf("%d key generations logged, want %d", w.Generations, pc.intermediates+1)
				}
			})
		}
	}
}

// waitOneChild waits until iked and charon each have one IKE SA with one
// live Child SA (charon keeps a rekeyed Child SA's inbound half a while in
// state DELETED), the same on both sides, and returns them.
func waitOneChild(t *testing.T, p *pair, what string) (ike.SAInfo, charonIKESA) {
	t.Helper()
	var is ike.SAInfo
	var cs charonIKESA
	waitFor(t, 15*time.Second, func() string {
		isas, err := p.iked.SAs()
		if err != nil {
			return err.Error()
		}
		csas, err := p.charon.ListSAs()
		if err != nil {
			return err.Error()
		}
		for i := range csas {
			var live []charonChildSA
			for _, c := range csas[i].Children {
				if c.State != "DELETED" && c.State != "DELETING" {
					live = append(live, c)
				}
			}
			csas[i].Children = live
		}
		var est []charonIKESA
		for _, c := range csas {
			if c.State == "ESTABLISHED" {
				est = append(est, c)
			}
		}
		if len(isas) != 1 || len(est) != 1 || len(isas[0].Children) != 1 || len(est[0].Children) != 1 {
			return fmt.Sprintf("%s: iked %s; charon %+v", what, describeSAs(isas), csas)
		}
		is, cs = isas[0], est[0]
		ic, cc := is.Children[0], cs.Children[0]
		if is.SPIi != spiHex(cs.SPIi, 16) || is.SPIr != spiHex(cs.SPIr, 16) || ic.SPIIn != spiHex(cc.SPIOut, 8) || ic.SPIOut != spiHex(cc.SPIIn, 8) {
			return fmt.Sprintf("%s: SAs differ: iked %s; charon %s_i %s_r child %s_i %s_o", what, describeSAs(isas), cs.SPIi, cs.SPIr, cc.SPIIn, cc.SPIOut)
		}
		return ""
	})
	return is, cs
}

// checkESPDecrypts asserts that every ESP packet of the capture decrypts
// with iked's key log into an ICMP echo (only pings cross the tunnel), and
// returns how many there were.
func checkESPDecrypts(t *testing.T, c *capture, prefs []string) int {
	t.Helper()
	out, _, err := c.tsharkPrefs(append(prefs, "esp.enable_encryption_decode:TRUE"),
		"-Y", "esp", "-T", "fields", "-E", "aggregator=,", "-e", "esp.spi", "-e", "icmp.type")
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	var total int
	spis := map[string]int{}
	var bad []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		total++
		f := strings.Split(l, "\t")
		spis[f[0]]++
		if len(f) < 2 || (f[1] != "8" && f[1] != "0") {
			bad = append(bad, l)
		}
	}
	t.Logf("ESP: %d packets under %d SPIs %v, all decrypted to ICMP echoes: %v", total, len(spis), spis, len(bad) == 0)
	if len(bad) > 0 {
		t.Errorf("%d of %d ESP packets do not decrypt to ICMP echoes with iked's key log, e.g. %q", len(bad), total, bad[:min(5, len(bad))])
	}
	return total
}

// TestPQCharon6Rekey: with a hybrid IKE SA and ESP with PFS and ML-KEM
// (aes256gcm16-x25519-ke1_mlkem768), first iked, then charon rekeys the
// Child SA and the IKE SA, while ping runs through the tunnel every 50 ms.
// Each rekey runs its ML-KEM exchange in IKE_FOLLOWUP_KE (RFC 9370
// §2.2.4); both sides end with the same new SAs and report the additional
// exchange for both; ping loses at most the echo in flight at a Child SA
// switch; every IKE and ESP message decrypts with iked's key log.
func TestPQCharon6Rekey(t *testing.T) {
	b := requireCharon6(t)
	requireTools(t, "ping")
	const ikeProp = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	const espProp = "aes256gcm16-x25519-ke1_mlkem768"
	const wantESP = "AES_GCM_16-256/CURVE_25519/KE1_ML_KEM_768/NO_EXT_SEQ"
	const wantIKE = "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768"
	for _, by := range []string{"iked", "charon"} {
		t.Run("by-"+by, func(t *testing.T) {
			p := pqPair(t, b, ikeProp, espProp, nil)
			establish(t, p, by == "iked") // the other side initiates: the rekeyer is not always the initiator
			is0, _ := waitOneChild(t, p, "established")
			ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 1)
			pg := startPing(t, p.topo.I, ikedInnerHost, charonInnerHost, 50*time.Millisecond)
			time.Sleep(2 * time.Second)

			// The Child SA rekey, with PFS: X25519 and ML-KEM-768.
			if by == "iked" {
				spi, _ := strconv.ParseUint(is0.Children[0].SPIIn, 16, 32)
				if out, err := p.iked.ikectl(20*time.Second, "rekey", is0.ID, fmt.Sprintf("%08x", spi)); err != nil {
					t.Fatalf("ikectl rekey (Child SA): %v\n%s", err, out)
				}
			} else if out, err := p.charon.swanctl(20*time.Second, "--rekey", "--child", childName); err != nil {
				t.Fatalf("swanctl --rekey --child: %v\n%s", err, out)
			}
			waitFor(t, 15*time.Second, func() string {
				sas, err := p.iked.SAs()
				if err != nil || len(sas) != 1 || len(sas[0].Children) != 1 || sas[0].Children[0].SPIIn == is0.Children[0].SPIIn {
					return fmt.Sprintf("Child SA not rekeyed yet: %s", describeSAs(sas))
				}
				return ""
			})
			is1, cs1 := waitOneChild(t, p, "after the Child SA rekey")
			if ic := is1.Children[0]; ic.Algorithms != wantESP || ic.Proposal != espProp {
				t.Errorf("iked's rekeyed Child SA: %s (%s), want %s", ic.Algorithms, ic.Proposal, wantESP)
			}
			if msg := sameParts("rekeyed Child SA", is1.Children[0].Algorithms, cs1.Children[0].Algorithms()); msg != "" {
				t.Error(msg)
			}
			time.Sleep(2 * time.Second)

			// The IKE SA rekey, with its ML-KEM exchange.
			if by == "iked" {
				if out, err := p.iked.ikectl(20*time.Second, "rekey", is1.ID); err != nil {
					t.Fatalf("ikectl rekey (IKE SA): %v\n%s", err, out)
				}
			} else if out, err := p.charon.swanctl(20*time.Second, "--rekey", "--ike", connName); err != nil {
				t.Fatalf("swanctl --rekey --ike: %v\n%s", err, out)
			}
			waitFor(t, 15*time.Second, func() string {
				sas, err := p.iked.SAs()
				if err != nil || len(sas) != 1 || sas[0].SPIi == is1.SPIi {
					return fmt.Sprintf("IKE SA not rekeyed yet: %s", describeSAs(sas))
				}
				return ""
			})
			is2, cs2 := waitOneChild(t, p, "after the IKE SA rekey")
			if is2.Algorithms != wantIKE || !is2.PostQuantum {
				t.Errorf("iked's rekeyed IKE SA: %s (post_quantum %v), want %s", is2.Algorithms, is2.PostQuantum, wantIKE)
			}
			if msg := sameParts("rekeyed IKE SA", is2.Algorithms, cs2.Algorithms()); msg != "" {
				t.Error(msg)
			}
			if is2.Children[0].SPIIn != is1.Children[0].SPIIn {
				t.Errorf("the Child SA changed with the IKE SA rekey: %s -> %s", is1.Children[0].SPIIn, is2.Children[0].SPIIn)
			}
			time.Sleep(2 * time.Second)
			out := pg.stop()
			checkPingLoss(t, out, 1, map[string]*iked{"iked": p.iked})
			ping(t, p.topo.S, charonInnerHost, ikedInnerHost, 2)

			followups := len(logLines(p.charon.Log(), "IKE_FOLLOWUP_KE"))
			t.Logf("charon logged %d lines with IKE_FOLLOWUP_KE; iked %s, charon %s[%s]", followups, is2.ID, cs2.Name, cs2.UniqueID)
			w := checkWireGenerations(t, p.cap, p.iked)
			// One IKE_FOLLOWUP_KE exchange (request and response) per rekey.
			if w.FollowupKEs < 4 || w.ByExchange[exchCreateChildSA] < 4 {
				t.Errorf("on the wire: %d IKE_FOLLOWUP_KE and %d CREATE_CHILD_SA messages, want at least 4 each (two rekeys)", w.FollowupKEs, w.ByExchange[exchCreateChildSA])
			}
			if n := checkESPDecrypts(t, p.cap, p.iked.KeyLogPrefs()); n < 200 {
				t.Errorf("only %d ESP packets captured", n)
			}
		})
	}
}

// TestPQOptionalAgainst598: `ke1_mlkem768-ke1_none` makes ML-KEM optional:
// against Debian's strongSwan 5.9.8, which knows neither RFC 9370 nor
// ML-KEM, the SA comes up classical, whoever initiates, and carries
// traffic; iked shows it as not post-quantum.
func TestPQOptionalAgainst598(t *testing.T) {
	const optional = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none"
	const classic = "aes256gcm16-prfsha384-x25519"
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := pqPair(t, nil, classic, "aes256gcm16", func(ic *ikedConn, _ *charonConn) {
				ic.IKEProposals = []string{optional}
			})
			establish(t, p, dir.charonInitiates)
			is, _ := checkEstablished(t, p, dir.charonInitiates, "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519", "AES_GCM_16-256/NO_EXT_SEQ")
			if is.PostQuantum || is.Proposal != classic {
				t.Errorf("iked shows post_quantum %v, proposal %q", is.PostQuantum, is.Proposal)
			}
			ping(t, p.topo.I, ikedInnerHost, charonInnerHost, pingCount)
			if n := intermediateExchanges(t, p.cap); n != 0 {
				t.Errorf("%d IKE_INTERMEDIATE exchanges with strongSwan 5.9.8", n)
			}
			checkWireDecrypts(t, p.cap, p.iked)
		})
	}
}

// TestPQRequire: iked with require_pq refuses a classical peer (strongSwan
// 5.9.8). As responder it answers IKE_SA_INIT with NO_PROPOSAL_CHOSEN (on
// the wire) and logs why; as initiator, offering ML-KEM as optional, it
// refuses 5.9.8's classical choice and logs why. iked keeps no SA,
// and the metric counts pq_required. (As initiator iked just abandons the
// exchange: the responder's half-open SA expires on its own.)
func TestPQRequire(t *testing.T) {
	const optional = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none"
	const classic = "aes256gcm16-prfsha384-x25519"
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := pqPair(t, nil, classic, "aes256gcm16", func(ic *ikedConn, _ *charonConn) {
				ic.IKEProposals, ic.RequirePQ = []string{optional}, true
			})
			if dir.charonInitiates {
				out, err := p.charon.Initiate(childName, connName)
				if err == nil {
					t.Fatalf("charon's classical initiation succeeded:\n%s", out)
				}
				if !strings.Contains(out, "NO_PROPOSAL_CHOSEN") {
					t.Errorf("charon did not report NO_PROPOSAL_CHOSEN:\n%s", out)
				}
			} else if out, err := p.iked.Initiate(connName); err == nil || !strings.Contains(out+err.Error(), "require_pq") {
				t.Fatalf("iked's initiation: %v\n%s", err, out)
			}
			want := "IKE_SA_INIT refused: the peer offers no post-quantum key exchange (ML-KEM) and require_pq is set"
			if !dir.charonInitiates {
				want = "require_pq is set"
			}
			waitFor(t, 5*time.Second, func() string {
				if len(logLines(p.iked.Log(), want)) == 0 {
					return "iked logged no line with " + strconv.Quote(want)
				}
				return ""
			})
			t.Logf("iked: %s", logLines(p.iked.Log(), want)[0])
			if v := metric(t, p.iked, "iked_handshakes_failed_total", `reason="pq_required"`); v != 1 {
				t.Errorf("iked_handshakes_failed_total{reason=\"pq_required\"} = %v, want 1", v)
			}
			if dir.charonInitiates {
				frames, _, err := ikeFrames(p.cap, nil)
				if err != nil {
					t.Fatal(err)
				}
				seen := false
				for _, f := range frames {
					if f.Exchange == "IKE_SA_INIT" && f.Response && strings.Join(f.Notifies, ",") == "14" {
						seen = true
					}
				}
				if !seen {
					t.Errorf("no IKE_SA_INIT response with only NO_PROPOSAL_CHOSEN (14) on the wire:\n%s", p.cap.Summary(nil))
				}
			}
			if dir.charonInitiates {
				waitGone(t, p)
				return
			}
			// The responder is left with a half-open SA, which its
			// half-open timeout removes (an unauthenticated peer may not
			// be told more); iked keeps nothing.
			waitFor(t, 5*time.Second, func() string {
				if sas, err := p.iked.SAs(); err != nil || len(sas) != 0 {
					return fmt.Sprintf("iked lists %v (%v)", sas, err)
				}
				return ""
			})
		})
	}
}
