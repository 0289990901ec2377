package interop

import (
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/ike"
)

// IKEv1 against racoon (ipsec-tools 0.9.1), the reference for the
// Windows-era wire format.

// racoonPair is iked in I and racoon in S.
type racoonPair struct {
	topo   *topology
	cap    *capture
	iked   *iked
	racoon *racoon
	ic     ikedConn
	ro     racoonOptions
}

// newRacoonPair starts iked (IKEv1, PSK, AES-CBC-256/SHA-256/MODP-2048,
// tunnel 10.1.0.0/24 === 10.2.0.0/24) and racoon with matching settings
// after edit adjusted them.
func newRacoonPair(t *testing.T, edit func(*ikedConn, *racoonOptions)) *racoonPair {
	return newRacoonPairOpts(t, edit, nil)
}

// newRacoonPairOpts is newRacoonPair with a hook on iked's options.
func newRacoonPairOpts(t *testing.T, edit func(*ikedConn, *racoonOptions), opts func(*ikedOptions)) *racoonPair {
	t.Helper()
	requireRacoon(t)
	p := &racoonPair{topo: newTopology(t)}
	iAddr, rAddr := p.topo.IkedAddr.String(), p.topo.CharonAddr.String()
	// racoon takes only address identities in Main Mode with a PSK (as
	// RFC 2409 §5.4 implies: the key is chosen by address), as Windows.
	p.ic = ikedConn{Name: connName, Local: iAddr, Remote: rAddr, LocalID: "ip:" + iAddr, RemoteID: "ip:" + rAddr, PSK: interopPSK,
		Version: "ikev1", IKEProposals: []string{v1IKE}, ESPProposals: []string{v1ESP},
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}
	p.ro = racoonOptions{LocalAddr: rAddr, RemoteAddr: iAddr, LocalID: "ip:" + rAddr, RemoteID: "ip:" + iAddr, PSK: interopPSK,
		LocalTS: charonInnerNet, RemoteTS: ikedInnerNet}
	if edit != nil {
		edit(&p.ic, &p.ro)
	}
	p.cap = startCaptureFilter(t, p.topo.S, "veth-s", "udp")
	t.Cleanup(func() {
		if (t.Failed() || verbose()) && p.iked != nil {
			t.Logf("capture on veth-s (decrypted with iked's key log):\n%s", p.cap.Summary(p.iked.KeyLogPrefs()))
		}
	})
	io := ikedOptions{Listen: []string{iAddr + ":500", iAddr + ":4500"}, Conns: []ikedConn{p.ic}}
	if opts != nil {
		opts(&io)
	}
	p.iked = startIked(t, p.topo.I, io)
	p.racoon = startRacoon(t, p.topo.S, p.ro)
	return p
}

// racoonPolicies are the setkey lines racoon needs to initiate a Quick
// Mode for the tunnel (a responder generates its own).
func racoonPolicies(racoonAddr, ikedAddr string) []string {
	return []string{
		fmt.Sprintf("spdadd %s %s any -P out ipsec esp/tunnel/%s-%s/require;", charonInnerNet, ikedInnerNet, racoonAddr, ikedAddr),
		fmt.Sprintf("spdadd %s %s any -P in ipsec esp/tunnel/%s-%s/require;", ikedInnerNet, charonInnerNet, ikedAddr, racoonAddr),
	}
}

// ikedESPKeys reads the ESP keys from iked's key log, by SPI.
func ikedESPKeys(d *iked) map[string][2]string {
	re := regexp.MustCompile(`^uat:esp_sa:"IPv4","[^"]*","[^"]*","0x([0-9a-f]{8})","[^"]*","0x([0-9a-f]*)","[^"]*","0x([0-9a-f]*)"`)
	out := map[string][2]string{}
	for _, l := range d.KeyLogPrefs() {
		if m := re.FindStringSubmatch(l); m != nil {
			out[m[1]] = [2]string{m[2], m[3]}
		}
	}
	return out
}

// checkRacoonEstablished asserts that iked and racoon hold the same ISAKMP
// SA (cookies) and the same IPsec SA pair (SPIs paired, keys equal), with
// iked in the wanted role.
func checkRacoonEstablished(t *testing.T, p *racoonPair, ikedRole, wantIKE, wantESP string) (ike.SAInfo, ike.ChildInfo) {
	t.Helper()
	var is ike.SAInfo
	waitFor(t, 10*time.Second, func() string {
		sas, err := p.iked.SAs()
		if err != nil {
			return err.Error()
		}
		if len(sas) != 1 || sas[0].State != "established" || len(sas[0].Children) != 1 {
			return fmt.Sprintf("iked lists %+v, want one established ISAKMP SA with one IPsec SA", sas)
		}
		is = sas[0]
		return ""
	})
	if is.Role != ikedRole || is.Algorithms != wantIKE || !strings.HasPrefix(is.ID, "isakmp-") {
		t.Errorf("iked SA %s role %s algorithms %s, want role %s, %s", is.ID, is.Role, is.Algorithms, ikedRole, wantIKE)
	}
	ic := is.Children[0]
	if ic.Algorithms != wantESP {
		t.Errorf("iked IPsec SA algorithms %s, want %s", ic.Algorithms, wantESP)
	}
	var rs []racoonSA
	waitFor(t, 10*time.Second, func() string {
		r1, err := p.racoon.ISAKMPSAs()
		if err != nil {
			return err.Error()
		}
		if len(r1) != 1 || r1[0].ICookie != is.SPIi || r1[0].RCookie != is.SPIr {
			return fmt.Sprintf("racoon's ISAKMP SAs %+v, iked's cookies %s:%s", r1, is.SPIi, is.SPIr)
		}
		rs = p.racoon.IPsecSAs()
		if len(rs) < 2 {
			return fmt.Sprintf("racoon installed %d IPsec SAs, want 2", len(rs))
		}
		return ""
	})
	keys := ikedESPKeys(p.iked)
	found := map[string]bool{}
	for _, r := range rs {
		k, ok := keys[r.SPI]
		if !ok {
			t.Errorf("racoon's IPsec SA %s -> %s SPI %s is not one of iked's (in %s, out %s)", r.Src, r.Dst, r.SPI, ic.SPIIn, ic.SPIOut)
			continue
		}
		found[r.SPI] = true
		if r.EncKey != k[0] || r.AuthKey != k[1] {
			t.Errorf("IPsec SA %s: keys differ: racoon enc %s auth %s, iked enc %s auth %s", r.SPI, r.EncKey, r.AuthKey, k[0], k[1])
		}
	}
	if !found[ic.SPIIn] || !found[ic.SPIOut] {
		t.Errorf("racoon installed %+v, iked's SPIs in %s out %s", rs, ic.SPIIn, ic.SPIOut)
	}
	return is, ic
}

func TestIKEv1RacoonIkedInitiatesPSK(t *testing.T) {
	p := newRacoonPair(t, nil)
	if out, err := p.iked.Initiate(connName); err != nil {
		t.Fatalf("iked initiate: %v\n%s", err, out)
	}
	checkRacoonEstablished(t, p, "initiator", v1WantIKE, v1WantESP)
	checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
}

func TestIKEv1RacoonInitiatesPSK(t *testing.T) {
	p := newRacoonPair(t, func(_ *ikedConn, ro *racoonOptions) {
		ro.Policies = racoonPolicies(ro.LocalAddr, ro.RemoteAddr)
	})
	if out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "isakmp", "inet", p.ro.LocalAddr, p.ro.RemoteAddr); err != nil {
		t.Fatalf("racoonctl establish-sa isakmp: %v\n%s", err, out)
	}
	if out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "esp", "inet", charonInnerNet, ikedInnerNet, "any"); err != nil {
		t.Fatalf("racoonctl establish-sa esp: %v\n%s", err, out)
	}
	checkRacoonEstablished(t, p, "responder", v1WantIKE, v1WantESP)
	checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
}

// racoonCertFiles writes what racoon needs for certificates: its own
// certificate and key, and the CAs in its certificate directory under
// OpenSSL's subject-hash names, where racoon's verification finds them.
func racoonCertFiles(t *testing.T, m *certMaterial) map[string][]byte {
	t.Helper()
	files := map[string][]byte{"racoon.pem": certPEM(m.charonCert), "racoon.key": keyPEM(t, m.charonKey),
		"root.pem": certPEM(m.pki.root)}
	for _, c := range []*x509.Certificate{m.pki.root, m.pki.inter} {
		dir := t.TempDir()
		path := filepath.Join(dir, "c.pem")
		if err := os.WriteFile(path, certPEM(c), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("openssl", "x509", "-hash", "-noout", "-in", path).Output()
		if err != nil {
			missing(t, "openssl x509 -hash: %v", err)
		}
		files[strings.TrimSpace(string(out))+".0"] = certPEM(c)
	}
	return files
}

// TestIKEv1RacoonCertificates: Main Mode with RSA signatures and
// certificates against racoon, both directions (racoon verifies iked's
// chain through the intermediate; iked verifies racoon's end-entity
// certificate with its configured intermediate).
func TestIKEv1RacoonCertificates(t *testing.T) {
	requireTools(t, "openssl")
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			m, auth := newCertMaterial(t, certSetup{ikedKey: "rsa2048", charonKey: "rsa2048"})
			p := newRacoonPairOpts(t, func(ic *ikedConn, ro *racoonOptions) {
				ic.PSK, ic.Cert = "", auth
				ic.LocalID, ic.RemoteID = ikedID, charonID
				ro.PSK, ro.Auth = "", "rsasig"
				ro.LocalID, ro.RemoteID = charonID, ikedID
				ro.Cert, ro.Key, ro.CA = "racoon.pem", "racoon.key", "root.pem"
				ro.Files = racoonCertFiles(t, m)
				if dir.charonInitiates {
					ro.Policies = racoonPolicies(ro.LocalAddr, ro.RemoteAddr)
				}
			}, func(io *ikedOptions) { io.Files = m.ikedFiles })
			role := "initiator"
			if dir.charonInitiates {
				role = "responder"
				if out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "isakmp", "inet", p.ro.LocalAddr, p.ro.RemoteAddr); err != nil {
					t.Fatalf("racoonctl establish-sa isakmp: %v\n%s", err, out)
				}
				if out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "esp", "inet", charonInnerNet, ikedInnerNet, "any"); err != nil {
					t.Fatalf("racoonctl establish-sa esp: %v\n%s", err, out)
				}
			} else if out, err := p.iked.Initiate(connName); err != nil {
				t.Fatalf("iked initiate: %v\n%s", err, out)
			}
			is, _ := checkRacoonEstablished(t, p, role, v1WantIKE, v1WantESP)
			if is.Auth != "rsa-sig" || is.RemoteID != charonID {
				t.Errorf("iked SA auth %s remote %s", is.Auth, is.RemoteID)
			}
			checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
		})
	}
}

// TestIKEv1RacoonWindows2003: the Windows 2003 default main mode
// (3DES/SHA-1/MODP-1024) and quick mode (3DES/SHA-1) with racoon, both
// ways, allowed on iked's side with allow_legacy.
func TestIKEv1RacoonWindows2003(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			p := newRacoonPair(t, func(ic *ikedConn, ro *racoonOptions) {
				ic.IKEProposals, ic.ESPProposals, ic.AllowLegacy = []string{"3des-sha1-modp1024"}, []string{"3des-sha1"}, true
				ro.Encr, ro.Hash, ro.DH, ro.ESPEncr, ro.ESPAuth = "3des", "sha1", 2, "3des", "hmac_sha1"
				if dir.charonInitiates {
					ro.Policies = racoonPolicies(ro.LocalAddr, ro.RemoteAddr)
				}
			})
			role := "initiator"
			if dir.charonInitiates {
				role = "responder"
				racoonEstablish(t, p, charonInnerNet, ikedInnerNet)
			} else if out, err := p.iked.Initiate(connName); err != nil {
				t.Fatalf("iked initiate: %v\n%s", err, out)
			}
			checkRacoonEstablished(t, p, role, "3DES/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024", "3DES/HMAC_SHA1_96/NO_EXT_SEQ")
			if !strings.Contains(p.iked.Log(), "uses the legacy") {
				t.Error("iked did not warn of the legacy algorithms")
			}
			checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
		})
	}
}

// TestIKEv1RacoonLifecycle: with racoon, iked's rekeys of both phases by
// lifetime (racoon answers the new Quick Mode and Main Mode and receives
// the Deletes of the old SAs), DPD both ways, and deletes from either
// side. (racoon rekeys IPsec SAs on the kernel's soft expiry, which its
// PF_KEY stand-in never sends: its own IPsec rekeys cannot happen here.)
func TestIKEv1RacoonLifecycle(t *testing.T) {
	t.Run("rekey", func(t *testing.T) {
		p := newRacoonPair(t, func(ic *ikedConn, _ *racoonOptions) { ic.RekeyTime, ic.IKERekeyTime = "3s", "6s" })
		if out, err := p.iked.Initiate(connName); err != nil {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		first, _ := checkRacoonEstablished(t, p, "initiator", v1WantIKE, v1WantESP)
		waitFor(t, 30*time.Second, func() string {
			sas, err := p.iked.SAs()
			if err != nil || len(sas) != 1 || sas[0].SPIi == first.SPIi || len(sas[0].Children) != 1 ||
				sas[0].Children[0].SPIIn == first.Children[0].SPIIn {
				return fmt.Sprintf("iked SAs %+v %v; want a new ISAKMP SA with a new IPsec SA", sas, err)
			}
			r, err := p.racoon.ISAKMPSAs()
			if err != nil || !slices.ContainsFunc(r, func(s racoonISAKMP) bool { return s.ICookie == sas[0].SPIi }) {
				return fmt.Sprintf("racoon's ISAKMP SAs %+v %v lack iked's new one", r, err)
			}
			keys := ikedESPKeys(p.iked)
			for _, spi := range []string{sas[0].Children[0].SPIIn, sas[0].Children[0].SPIOut} {
				found := false
				for _, rs := range p.racoon.IPsecSAs() {
					found = found || rs.SPI == spi && rs.EncKey == keys[spi][0]
				}
				if !found {
					return "racoon did not install the rekeyed IPsec SA " + spi
				}
			}
			return ""
		})
		log := p.racoon.Log()
		for _, want := range []string{"delete payload for protocol ISAKMP", "ISAKMP-SA deleted", "delete payload for protocol ESP"} {
			if !strings.Contains(log, want) {
				t.Errorf("racoon's log lacks %q", want)
			}
		}
		checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
	})
	t.Run("dpd", func(t *testing.T) {
		p := newRacoonPair(t, func(ic *ikedConn, ro *racoonOptions) { ic.DPDDelay, ro.DPDDelay = "1s", 1 })
		if out, err := p.iked.Initiate(connName); err != nil {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		checkRacoonEstablished(t, p, "initiator", v1WantIKE, v1WantESP)
		waitFor(t, 20*time.Second, func() string {
			log := p.racoon.Log()
			for _, want := range []string{"received a valid R-U-THERE, ACK sent", "received an R-U-THERE-ACK"} {
				if !strings.Contains(log, want) {
					return "racoon's log lacks " + want
				}
			}
			return ""
		})
	})
	t.Run("iked-deletes", func(t *testing.T) {
		p := newRacoonPair(t, nil)
		if out, err := p.iked.Initiate(connName); err != nil {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		is, _ := checkRacoonEstablished(t, p, "initiator", v1WantIKE, v1WantESP)
		if out, err := p.iked.Terminate(is.ID); err != nil {
			t.Fatalf("ikectl terminate: %v\n%s", err, out)
		}
		waitFor(t, 10*time.Second, func() string {
			if r, err := p.racoon.ISAKMPSAs(); err != nil || len(r) != 0 {
				return fmt.Sprintf("racoon still lists %+v %v", r, err)
			}
			if !strings.Contains(p.racoon.Log(), "delete payload for protocol ESP") {
				return "racoon logged no Delete of the IPsec SA"
			}
			return ""
		})
	})
	t.Run("racoon-deletes", func(t *testing.T) {
		p := newRacoonPair(t, nil)
		if out, err := p.iked.Initiate(connName); err != nil {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		checkRacoonEstablished(t, p, "initiator", v1WantIKE, v1WantESP)
		if out, err := p.racoon.ctl(20*time.Second, "delete-sa", "isakmp", "inet", p.ro.LocalAddr, p.ro.RemoteAddr); err != nil {
			t.Fatalf("racoonctl delete-sa isakmp: %v\n%s", err, out)
		}
		waitFor(t, 10*time.Second, func() string {
			sas, err := p.iked.SAs()
			if err != nil || len(sas) != 0 {
				return fmt.Sprintf("iked still lists %+v %v", sas, err)
			}
			return ""
		})
		if !strings.Contains(p.iked.Log(), "peer deleted the ISAKMP SA") {
			t.Error("iked did not log racoon's Delete")
		}
	})
}
