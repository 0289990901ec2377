package interop

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/auth/kerberos/kdctest"
	"github.com/iked/iked/internal/sambaad"
)

// IKEv1 Main Mode with the GSS-API (Kerberos) method — what a Windows
// domain's "Kerberos V5" connection security rules speak — between iked
// and racoon, and between two ikeds, through an MIT KDC and through a
// Samba Active Directory KDC; Quick Mode on top, traffic through iked's
// userspace data plane, the tokens on the wire read by tshark, and the
// refusals logged on both sides.

// krbV1Realm is the KDC side of a test: the realm, what each namespace
// dials to reach the KDC, a krb5.conf for racoon (MIT's library, in S),
// and the keytab and principal of each host.
type krbV1Realm struct {
	realm      string
	kdcFromI   string // host:port for iked in I
	kdcFromS   string // host:port for S
	krb5ConfS  string // krb5.conf naming kdcFromS
	ktI, ktS   string
	princI     string // name without realm, e.g. host/iked.example.test
	princS     string
	combinedKT string // both hosts' keys, for tshark
	log        func() string
	// rotate gives a principal a new key on the KDC (a higher key
	// version) without touching any keytab.
	rotate func(t *testing.T, principal string)
}

func (r *krbV1Realm) full(p string) string { return p + "@" + r.realm }

// krbV1Auth renders iked's auth: {method: kerberos, ...}.
func krbV1Auth(r *krbV1Realm, kdc, keytab, principal, service string, allowed []string) string {
	kv := []string{"method: kerberos", "realm: " + yamlQuote(r.realm), "kdcs: " + yamlList([]string{kdc}),
		"keytab: " + yamlQuote(keytab), "principal: " + yamlQuote(principal)}
	if service != "" {
		kv = append(kv, "service: "+yamlQuote(service))
	}
	kv = append(kv, "allowed: "+yamlList(allowed), "kdc_backoff: 100ms")
	return "{" + strings.Join(kv, ", ") + "}"
}

// mitV1Realm runs an MIT KDC in S on S's veth address (iked in I reaches it
// over the veth, outside any tunnel) with principals for both hosts.
func mitV1Realm(t *testing.T, topo *topology, realm string) *krbV1Realm {
	t.Helper()
	kdctest.Require(t)
	kdcAddr := netip.AddrPortFrom(topo.CharonAddr, 88).String()
	kdc := kdctest.StartWith(t, realm, kdctest.Options{Listen: kdcAddr, Wrap: []string{"ip", "netns", "exec", topo.S.name}})
	r := &krbV1Realm{realm: realm, kdcFromI: kdcAddr, kdcFromS: kdcAddr, krb5ConfS: kdc.Krb5Conf,
		princI: "host/iked.example.test", princS: "host/racoon.example.test", log: kdc.Log,
		rotate: func(_ *testing.T, p string) { kdc.Rotate(p) }}
	r.ktI = kdc.AddHost(r.princI, filepath.Join(kdc.Dir, "iked.keytab"))
	r.ktS = kdc.AddHost(r.princS, filepath.Join(kdc.Dir, "racoon.keytab"))
	r.combinedKT = filepath.Join(kdc.Dir, "both.keytab")
	kdc.Kadmin("ktadd -k " + r.combinedKT + " -norandkey " + r.princI + " " + r.princS)
	return r
}

// adV1Hosts are the machine accounts of every AD test, so that they share
// one provisioned domain: iked and racoon with the domain's default
// enctypes (AES), aes with AES256 only and rc4 with RC4-HMAC only
// (msDS-SupportedEncryptionTypes 16 and 4), each forced on its account.
var adV1Hosts = sambaad.Options{Hosts: []string{"iked", "racoon", "aes", "rc4"}, ETypes: map[string]int{"aes": 16, "rc4": 4}}

// adV1Realm runs a Samba AD DC linked to both namespaces; the host in I
// is hostI, the one in S hostS (accounts of adV1Hosts).
func adV1Realm(t *testing.T, topo *topology, hostI, hostS string) (*krbV1Realm, *sambaad.DC) {
	t.Helper()
	sambaad.Require(t)
	dc := sambaad.Start(t, adV1Hosts)
	// The first link is S's: the DC's krb5.conf names it, for racoon.
	dc.Connect(topo.S.name, netip.MustParsePrefix("10.86.0.1/24"), netip.MustParsePrefix("10.86.0.2/24"))
	dc.Connect(topo.I.name, netip.MustParsePrefix("10.87.0.1/24"), netip.MustParsePrefix("10.87.0.2/24"))
	r := &krbV1Realm{realm: dc.Realm, kdcFromI: "10.87.0.1:88", kdcFromS: "10.86.0.1:88", krb5ConfS: dc.KRB5Conf,
		ktI: dc.Keytab(hostI), ktS: dc.Keytab(hostS), princI: "host/" + dc.FQDN(hostI), princS: "host/" + dc.FQDN(hostS),
		log: dc.Log}
	r.rotate = func(t *testing.T, p string) {
		// A machine account's key changes with its password.
		host := strings.TrimSuffix(strings.TrimPrefix(p, "host/"), "."+dc.DNSDomain())
		if out, err := dc.SambaTool("user", "setpassword", strings.ToUpper(host)+"$", "--random-password"); err != nil {
			t.Fatalf("samba-tool user setpassword: %v\n%s", err, out)
		}
	}
	r.combineKeytabs(t)
	return r, dc
}

// combineKeytabs writes both hosts' keytabs into one for tshark (a keytab
// is a version word and entries).
func (r *krbV1Realm) combineKeytabs(t *testing.T) {
	t.Helper()
	a, err := os.ReadFile(r.ktI)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(r.ktS)
	if err != nil {
		t.Fatal(err)
	}
	r.combinedKT = filepath.Join(t.TempDir(), "both.keytab")
	if err := os.WriteFile(r.combinedKT, append(a, b[2:]...), 0o600); err != nil {
		t.Fatal(err)
	}
}

// krbRacoonPair is iked in I and racoon in S with Kerberos (GSS-API)
// authentication.
type krbRacoonPair struct {
	*racoonPair
	realm *krbV1Realm
}

// newKrbRacoonPair starts iked and racoon authenticating with Kerberos:
// iked as host I's principal, racoon as S's, each allowing the other.
func newKrbRacoonPair(t *testing.T, topo *topology, r *krbV1Realm, edit func(*ikedConn, *racoonOptions)) *krbRacoonPair {
	t.Helper()
	requireRacoon(t)
	p := &racoonPair{topo: topo}
	iAddr, rAddr := topo.IkedAddr.String(), topo.CharonAddr.String()
	p.ic = ikedConn{Name: connName, Local: iAddr, Remote: rAddr, LocalID: "ip:" + iAddr, RemoteID: "ip:" + rAddr,
		Auth:    krbV1Auth(r, r.kdcFromI, r.ktI, r.princI, r.princS, []string{r.full(r.princS)}),
		Version: "ikev1", IKEProposals: []string{v1IKE}, ESPProposals: []string{v1ESP},
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}
	ccache := filepath.Join(t.TempDir(), "racoon.ccache")
	p.ro = racoonOptions{LocalAddr: rAddr, RemoteAddr: iAddr, LocalID: "ip:" + rAddr, RemoteID: "ip:" + iAddr,
		Auth: "gssapi_krb", GSSID: r.full(r.princS), LocalTS: charonInnerNet, RemoteTS: ikedInnerNet,
		Env: []string{"KRB5_CONFIG=" + r.krb5ConfS, "KRB5_KTNAME=FILE:" + r.ktS, "KRB5_CLIENT_KTNAME=FILE:" + r.ktS,
			"KRB5CCNAME=FILE:" + ccache, "KRB5_TRACE=/dev/stderr"}}
	if edit != nil {
		edit(&p.ic, &p.ro)
	}
	p.cap = startCaptureFilter(t, topo.S, "veth-s", "udp")
	t.Cleanup(func() {
		if (t.Failed() || verbose()) && p.iked != nil {
			t.Logf("capture on veth-s (decrypted with iked's key log):\n%s", p.cap.Summary(p.iked.KeyLogPrefs()))
			t.Logf("KDC log:\n%s", r.log())
		}
	})
	p.iked = startIked(t, topo.I, ikedOptions{Listen: []string{iAddr + ":500", iAddr + ":4500"}, Conns: []ikedConn{p.ic}})
	p.racoon = startRacoon(t, topo.S, p.ro)
	return &krbRacoonPair{racoonPair: p, realm: r}
}

// racoonInitiates makes racoon run Main Mode and Quick Mode towards iked.
func (p *krbRacoonPair) racoonInitiates(t *testing.T) {
	t.Helper()
	if out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "isakmp", "inet", p.ro.LocalAddr, p.ro.RemoteAddr); err != nil {
		t.Fatalf("racoonctl establish-sa isakmp: %v\n%s\nracoon log:\n%s", err, out, p.racoon.Log())
	}
	if out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "esp", "inet", charonInnerNet, ikedInnerNet, "any"); err != nil {
		t.Fatalf("racoonctl establish-sa esp: %v\n%s", err, out)
	}
}

// checkKerberosAuth asserts that iked's ISAKMP SA is Kerberos-
// authenticated and that its log names racoon's principal.
func (p *krbRacoonPair) checkKerberosAuth(t *testing.T) {
	t.Helper()
	sas, err := p.iked.SAs()
	if err != nil || len(sas) != 1 || sas[0].Auth != "kerberos" {
		t.Fatalf("iked's SAs %+v (%v), want one authenticated with kerberos", sas, err)
	}
	if want := "peer_principal\":\"" + p.realm.full(p.realm.princS); !strings.Contains(p.iked.Log(), want) {
		t.Errorf("iked's log does not name racoon's principal (%s)", want)
	}
	if !strings.Contains(p.racoon.Log(), "gss_init_sec_context") && !strings.Contains(p.racoon.Log(), "ISAKMP-SA established") {
		t.Errorf("racoon's log shows no Kerberos phase 1:\n%s", p.racoon.Log())
	}
}

func TestKerberosIKEv1RacoonMIT(t *testing.T) {
	for _, racoonFirst := range []bool{false, true} {
		name := "iked initiates"
		if racoonFirst {
			name = "racoon initiates"
		}
		t.Run(name, func(t *testing.T) {
			topo := newTopology(t)
			r := mitV1Realm(t, topo, "IKED.TEST")
			p := newKrbRacoonPair(t, topo, r, func(_ *ikedConn, ro *racoonOptions) {
				if racoonFirst {
					ro.Policies = racoonPolicies(ro.LocalAddr, ro.RemoteAddr)
				}
			})
			role := "initiator"
			if racoonFirst {
				role = "responder"
				p.racoonInitiates(t)
			} else if out, err := p.iked.Initiate(connName); err != nil {
				t.Fatalf("iked initiate: %v\n%s\nracoon log:\n%s", err, out, p.racoon.Log())
			}
			checkRacoonEstablished(t, p.racoonPair, role, v1WantIKE, v1WantESP)
			p.checkKerberosAuth(t)
			checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
			client, service := r.princI, r.princS
			if racoonFirst {
				client, service = service, client
			}
			checkGSSOnWire(t, p.cap, p.iked, r, client, service)
		})
	}
}

// checkGSSOnWire reads the capture with tshark: no malformed packet and
// no dissector error; payload 129 (shown as "Private Use") exactly in
// messages 3 and 4, holding a Kerberos V5 initial context token (AP-REQ)
// and the acceptor's AP-REP; and those two Kerberos messages, given to
// tshark's Kerberos dissector (which the ISAKMP dissector does not call
// for a private payload) with the hosts' keytab, decode and decrypt: the
// ticket (its client), the authenticator with its GSS-API checksum, and
// the AP-REP's encrypted part with the acceptor's subkey. client and
// service are the principals (without realm) the ticket must show. It
// returns the Kerberos dissection.
func checkGSSOnWire(t *testing.T, c *capture, d *iked, r *krbV1Realm, client, service string) string {
	t.Helper()
	bad, err := c.tshark(d.KeyLogPrefs(), "-Y", "isakmp && (_ws.malformed || _ws.expert.severity == \"Error\")", "-T", "fields", "-e", "frame.number", "-e", "_ws.col.Info")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(bad) != "" {
		t.Errorf("tshark finds malformed or erroneous ISAKMP packets:\n%s\n%s", bad, c.Details(d.KeyLogPrefs(), "_ws.malformed || _ws.expert.severity == \"Error\""))
	}
	out, err := c.tshark(d.KeyLogPrefs(), "-Y", "isakmp.typepayload == 129", "-T", "fields", "-E", "separator=/t", "-E", "aggregator=,",
		"-e", "frame.number", "-e", "isakmp.typepayload", "-e", "isakmp.datapayload")
	if err != nil {
		t.Fatal(err)
	}
	var toks [][]byte
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 3 {
			continue
		}
		for _, h := range strings.Split(f[2], ",") {
			if b, err := hex.DecodeString(h); err == nil && len(b) > 0 {
				toks = append(toks, b)
			}
		}
	}
	if len(toks) != 2 {
		t.Fatalf("tshark shows %d GSS token payloads (129), want 2 (messages 3 and 4):\n%s", len(toks), out)
	}
	var krb [][]byte
	for i, want := range []struct {
		tokID []byte
		name  string
	}{{[]byte{1, 0}, "AP-REQ"}, {[]byte{2, 0}, "AP-REP"}} {
		inner, ok := gssInner(toks[i], want.tokID)
		if !ok {
			t.Fatalf("GSS token %d is not a Kerberos V5 %s token: %x", i+1, want.name, toks[i][:min(24, len(toks[i]))])
		}
		krb = append(krb, inner)
	}
	pcap := filepath.Join(t.TempDir(), "gss-tokens.pcap")
	if err := writeKerberosPcap(pcap, krb); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tshark", "-r", pcap, "-n", "-V", "-o", "kerberos.decrypt:TRUE", "-o", "kerberos.file:"+r.combinedKT)
	dec, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tshark on the tokens: %v\n%s", err, dec)
	}
	s := string(dec)
	for _, want := range []string{
		"krb-ap-req (14)", "mutual-required: True", "krb-ap-rep (15)",
		"Decrypted keytype", "usage 2 using keytab principal " + r.full(service), "encTicketPart", "CNameString: " + strings.TrimPrefix(client, "host/"),
		"usage 11 using learnt encTicketPart_key", "cKSUMTYPE-GSSAPI (32771)", "Mutual: Request that remote peer authenticates itself",
		"usage 12 using learnt encTicketPart_key", "encAPRepPart",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("tshark's Kerberos dissection of the tokens lacks %q:\n%s", want, s)
			break
		}
	}
	if strings.Contains(s, "[Malformed") || strings.Contains(s, "Missing keytype") {
		t.Errorf("tshark's Kerberos dissection of the tokens is malformed or could not decrypt:\n%s", s)
	}
	return s
}

// gssInner returns the Kerberos message of a framed Kerberos V5 GSS token
// (0x60 length OID TOK_ID message) whose TOK_ID is tokID.
func gssInner(tok, tokID []byte) ([]byte, bool) {
	oid := []byte{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02}
	if len(tok) < 2 || tok[0] != 0x60 {
		return nil, false
	}
	n := 2
	if tok[1] >= 0x80 {
		n += int(tok[1] & 0x7f)
	}
	rest := tok[min(n, len(tok)):]
	if !bytes.HasPrefix(rest, oid) || !bytes.HasPrefix(rest[len(oid):], tokID) {
		return nil, false
	}
	return rest[len(oid)+2:], true
}

// writeKerberosPcap writes each message as a UDP datagram to port 88 (the
// Kerberos dissector's port), raw IPv4 (link type 101).
func writeKerberosPcap(path string, msgs [][]byte) error {
	var b bytes.Buffer
	b.Write([]byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 101, 0, 0, 0})
	for i, m := range msgs {
		src, dst := []byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}
		sport, dport := uint16(50000), uint16(88)
		if i%2 == 1 {
			src, dst, sport, dport = dst, src, dport, sport
		}
		udpLen := 8 + len(m)
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		binary.BigEndian.PutUint16(ip[2:], uint16(20+udpLen))
		copy(ip[12:], src)
		copy(ip[16:], dst)
		var sum uint32
		for j := 0; j < 20; j += 2 {
			sum += uint32(binary.BigEndian.Uint16(ip[j:]))
		}
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
		udp := make([]byte, 8)
		binary.BigEndian.PutUint16(udp[0:], sport)
		binary.BigEndian.PutUint16(udp[2:], dport)
		binary.BigEndian.PutUint16(udp[4:], uint16(udpLen))
		pkt := append(append(ip, udp...), m...)
		rec := make([]byte, 16)
		binary.LittleEndian.PutUint32(rec[0:], uint32(1700000000+i))
		binary.LittleEndian.PutUint32(rec[8:], uint32(len(pkt)))
		binary.LittleEndian.PutUint32(rec[12:], uint32(len(pkt)))
		b.Write(rec)
		b.Write(pkt)
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func TestKerberosIKEv1RacoonSambaAD(t *testing.T) {
	for _, racoonFirst := range []bool{false, true} {
		name := "iked initiates"
		if racoonFirst {
			name = "racoon initiates"
		}
		t.Run(name, func(t *testing.T) {
			topo := newTopology(t)
			r, _ := adV1Realm(t, topo, "iked", "racoon")
			p := newKrbRacoonPair(t, topo, r, func(_ *ikedConn, ro *racoonOptions) {
				if racoonFirst {
					ro.Policies = racoonPolicies(ro.LocalAddr, ro.RemoteAddr)
				}
			})
			role, client, service := "initiator", r.princI, r.princS
			if racoonFirst {
				role, client, service = "responder", r.princS, r.princI
				p.racoonInitiates(t)
			} else if out, err := p.iked.Initiate(connName); err != nil {
				t.Fatalf("iked initiate: %v\n%s\nracoon log:\n%s", err, out, p.racoon.Log())
			}
			checkRacoonEstablished(t, p.racoonPair, role, v1WantIKE, v1WantESP)
			p.checkKerberosAuth(t)
			checkV1WireDecrypts(t, p.cap, p.iked, p.topo.IkedAddr.String())
			checkGSSOnWire(t, p.cap, p.iked, r, client, service)
		})
	}
}

// krbIkedPair is two iked with the userspace data plane authenticating
// with Kerberos over IKEv1: A in I initiates, B in S answers.
type krbIkedPair struct {
	topo   *topology
	cap    *capture
	a, b   *iked
	realm  *krbV1Realm
	ca, cb ikedConn
}

// newKrbIkedPair starts both iked; edit adjusts their connections.
func newKrbIkedPair(t *testing.T, topo *topology, r *krbV1Realm, edit func(a, b *ikedConn)) *krbIkedPair {
	t.Helper()
	requireTUN(t)
	requireTools(t, "ping", "tcpdump", "tshark")
	p := &krbIkedPair{topo: topo, realm: r}
	moveInnerHost(t, topo.I, "veth-i", ikedInnerHost)
	moveInnerHost(t, topo.S, "veth-s", charonInnerHost)
	aAddr, bAddr := topo.IkedAddr.String(), topo.CharonAddr.String()
	p.ca = ikedConn{Name: connName, Local: aAddr, Remote: bAddr, LocalID: "ip:" + aAddr, RemoteID: "ip:" + bAddr,
		Auth:    krbV1Auth(r, r.kdcFromI, r.ktI, r.princI, r.princS, []string{r.full(r.princS)}),
		Version: "ikev1", IKEProposals: []string{v1IKE}, ESPProposals: []string{v1ESP},
		LocalTS: []string{ikedInnerNet}, RemoteTS: []string{charonInnerNet}}
	p.cb = ikedConn{Name: connName, Local: bAddr, Remote: aAddr, LocalID: "ip:" + bAddr, RemoteID: "ip:" + aAddr,
		Auth:    krbV1Auth(r, r.kdcFromS, r.ktS, r.princS, "", []string{r.full(r.princI)}),
		Version: "ikev1", IKEProposals: []string{v1IKE}, ESPProposals: []string{v1ESP},
		LocalTS: []string{charonInnerNet}, RemoteTS: []string{ikedInnerNet}}
	if edit != nil {
		edit(&p.ca, &p.cb)
	}
	p.cap = startCaptureFilter(t, topo.I, "veth-i", "")
	t.Cleanup(func() {
		if (t.Failed() || verbose()) && p.a != nil {
			t.Logf("capture on veth-i:\n%s", p.cap.Summary(p.a.KeyLogPrefs()))
			t.Logf("KDC log:\n%s", r.log())
		}
	})
	p.b = startIked(t, topo.S, userspaceIked(bAddr, charonInnerHost, p.cb))
	p.a = startIked(t, topo.I, userspaceIked(aAddr, ikedInnerHost, p.ca))
	return p
}

// TestKerberosIKEv1IkedSambaAD: two iked over IKEv1 with GSS-API through
// Samba's KDC, the responder's account forced to AES256 only and to
// RC4-HMAC only: Main Mode and Quick Mode, pings through the userspace
// data plane (counters on both sides), only ESP in UDP on the link, the
// tokens decoded by tshark with the keytab, and the session key's enctype
// the account allows (RC4's Wrap tokens are RFC 1964's, framed).
func TestKerberosIKEv1IkedSambaAD(t *testing.T) {
	for _, host := range []string{"aes", "rc4"} {
		t.Run(host, func(t *testing.T) {
			topo := newTopology(t)
			r, _ := adV1Realm(t, topo, "iked", host)
			p := newKrbIkedPair(t, topo, r, nil)
			if out, err := p.a.Initiate(connName); err != nil {
				t.Fatalf("initiate: %v\n%s\nresponder log:\n%s", err, out, p.b.Log())
			}
			sa, ca := oneChild(t, "initiator", p.a, v1WantESP)
			sb, cb := oneChild(t, "responder", p.b, v1WantESP)
			if sa.Auth != "kerberos" || sb.Auth != "kerberos" || sa.SPIi != sb.SPIi || sa.SPIr != sb.SPIr {
				t.Fatalf("ISAKMP SAs differ or are not Kerberos: %+v / %+v", sa, sb)
			}
			if ca.SPIOut != cb.SPIIn || ca.SPIIn != cb.SPIOut {
				t.Fatalf("IPsec SPIs do not pair: %+v / %+v", ca, cb)
			}
			if !strings.Contains(p.b.Log(), `"peer_principal":"`+r.full(r.princI)+`"`) || !strings.Contains(p.a.Log(), `"peer_principal":"`+r.full(r.princS)+`"`) {
				t.Errorf("the logs do not name the authenticated principals")
			}
			ping(t, topo.I, ikedInnerHost, charonInnerHost, pingCount)
			wantCounters(t, "initiator", p.a, pingCount)
			wantCounters(t, "responder", p.b, pingCount)
			wireCheck(t, p.cap, p.a.KeyLogPrefs(), topo.IkedAddr, topo.CharonAddr, spiValue(t, ca.SPIOut), spiValue(t, ca.SPIIn), pingCount)
			dec := checkGSSOnWire(t, p.cap, p.a, r, r.princI, r.princS)
			want := map[string]string{"aes": "eTYPE-AES256-CTS-HMAC-SHA1-96 (18)", "rc4": "eTYPE-ARCFOUR-HMAC-MD5 (23)"}[host]
			if !strings.Contains(dec, "etype: "+want) || !strings.Contains(dec, "keytype: "+map[string]string{"aes": "18", "rc4": "23"}[host]) {
				t.Errorf("the ticket and session key are not %s as the account's msDS-SupportedEncryptionTypes forces", want)
			}
		})
	}
}

// waitLog waits until log() contains want (a hang guard, not a timing
// assertion) and reports whether it did.
func waitLog(log func() string, want string) bool {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(log(), want) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// noSA asserts that d holds no established SA.
func noSA(t *testing.T, who string, d *iked) {
	t.Helper()
	sas, err := d.SAs()
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range sas {
		if sa.State == "established" {
			t.Errorf("%s established an SA after the refusal: %+v", who, sa)
		}
	}
}

// TestKerberosIKEv1RefusalsRacoon: refusals between iked and racoon (MIT
// KDC), each logged on both sides. racoon initiates as a principal iked
// does not allow: iked logs why and answers with a KRB-ERROR token, which
// racoon's GSS-API library reports. iked's key is changed on the KDC but
// not in its keytab, and racoon initiates with a ticket of the new key
// version: iked refuses it naming the versions, racoon reports the
// error. (With racoon's own key changed racoon cannot get its
// credentials and sends nothing: a refusal only racoon logs.)
func TestKerberosIKEv1RefusalsRacoon(t *testing.T) {
	t.Run("principal not allowed", func(t *testing.T) {
		topo := newTopology(t)
		r := mitV1Realm(t, topo, "IKED.TEST")
		p := newKrbRacoonPair(t, topo, r, func(ic *ikedConn, ro *racoonOptions) {
			ic.Auth = krbV1Auth(r, r.kdcFromI, r.ktI, r.princI, r.princS, []string{"host/someone-else.example.test@" + r.realm})
			ro.Policies = racoonPolicies(ro.LocalAddr, ro.RemoteAddr)
		})
		out, err := p.racoon.ctl(30*time.Second, "establish-sa", "-w", "isakmp", "inet", p.ro.LocalAddr, p.ro.RemoteAddr)
		if err == nil && !strings.Contains(out, "fail") {
			t.Logf("racoonctl: %s", out)
		}
		if want := "client " + r.full(r.princS) + " is not allowed"; !waitLog(p.iked.Log, want) {
			t.Errorf("iked did not log %q:\n%s", want, p.iked.Log())
		}
		if want := "KDC policy rejects request"; !waitLog(p.racoon.Log, want) {
			t.Errorf("racoon did not log %q (the KRB-ERROR iked answered with):\n%s", want, p.racoon.Log())
		}
		noSA(t, "iked", p.iked)
	})
	t.Run("stale key version", func(t *testing.T) {
		topo := newTopology(t)
		r := mitV1Realm(t, topo, "IKED.TEST")
		p := newKrbRacoonPair(t, topo, r, func(_ *ikedConn, ro *racoonOptions) {
			ro.Policies = racoonPolicies(ro.LocalAddr, ro.RemoteAddr)
		})
		// iked's key changes on the KDC; its keytab keeps the old one.
		r.rotate(t, r.princI)
		_, _ = p.racoon.ctl(30*time.Second, "establish-sa", "-w", "isakmp", "inet", p.ro.LocalAddr, p.ro.RemoteAddr)
		if want := "was the key changed on the KDC without updating the keytab?"; !waitLog(p.iked.Log, want) {
			t.Errorf("iked did not log %q:\n%s", want, p.iked.Log())
		}
		if want := "Key version is not available"; !waitLog(p.racoon.Log, want) {
			t.Errorf("racoon did not log %q (the KRB-ERROR iked answered with):\n%s", want, p.racoon.Log())
		}
		noSA(t, "iked", p.iked)
	})
}

// TestKerberosIKEv1RefusalsSambaAD: refusals between two iked over IKEv1
// with Samba's KDC, each logged on both sides (the responder's reason, the
// initiator's reading of the KRB-ERROR it answered with): a principal
// not allowed, a realm not allowed, a key rollover on the DC that left the
// responder's keytab stale (and, once the new key is exported, success),
// and the KDC unreachable (the initiator says so and sends nothing).
func TestKerberosIKEv1RefusalsSambaAD(t *testing.T) {
	refused := func(t *testing.T, p *krbIkedPair, wantA, wantB string) {
		t.Helper()
		out, err := p.a.Initiate(connName)
		if err == nil {
			t.Fatalf("initiate succeeded: %s", out)
		}
		if !waitLog(p.a.Log, wantA) {
			t.Errorf("initiator did not log %q:\n%s", wantA, p.a.Log())
		}
		if wantB != "" && !waitLog(p.b.Log, wantB) {
			t.Errorf("responder did not log %q:\n%s", wantB, p.b.Log())
		}
		noSA(t, "responder", p.b)
	}
	t.Run("principal not allowed", func(t *testing.T) {
		topo := newTopology(t)
		r, _ := adV1Realm(t, topo, "iked", "aes")
		p := newKrbIkedPair(t, topo, r, func(_, b *ikedConn) {
			b.Auth = krbV1Auth(r, r.kdcFromS, r.ktS, r.princS, "", []string{"host/" + "racoon." + strings.ToLower(r.realm) + "@" + r.realm})
		})
		refused(t, p, "refused our AP-REQ with KDC_ERR_POLICY", "client "+r.full(r.princI)+" is not allowed")
	})
	t.Run("wrong realm", func(t *testing.T) {
		topo := newTopology(t)
		r, _ := adV1Realm(t, topo, "iked", "aes")
		p := newKrbIkedPair(t, topo, r, func(_, b *ikedConn) {
			b.Auth = krbV1Auth(r, r.kdcFromS, r.ktS, r.princS, "", []string{"@PARTNER.EXAMPLE.TEST"})
		})
		refused(t, p, "KDC_ERR_POLICY", "client "+r.full(r.princI)+" is not allowed (allowed: @PARTNER.EXAMPLE.TEST)")
	})
	t.Run("stale key version after a rollover on the DC", func(t *testing.T) {
		topo := newTopology(t)
		r, dc := adV1Realm(t, topo, "iked", "aes")
		// The responder reads a copy of its keytab, updated below.
		kt := filepath.Join(t.TempDir(), "aes.keytab")
		b, err := os.ReadFile(r.ktS)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(kt, b, 0o600); err != nil {
			t.Fatal(err)
		}
		p := newKrbIkedPair(t, topo, r, func(_, b *ikedConn) {
			b.Auth = krbV1Auth(r, r.kdcFromS, kt, r.princS, "", []string{r.full(r.princI)})
		})
		r.rotate(t, r.princS)
		refused(t, p, "refused our AP-REQ with KRB_AP_ERR_BADKEYVER", "was the key changed on the KDC without updating the keytab?")
		// The rollover reaches the keytab (exportkeytab appends the new
		// version); the responder reads the file again and accepts.
		if out, err := dc.SambaTool("domain", "exportkeytab", kt, "--principal="+r.full(r.princS)); err != nil {
			t.Fatalf("exportkeytab: %v\n%s", err, out)
		}
		if out, err := p.a.Initiate(connName); err != nil {
			t.Fatalf("after the keytab update: %v\n%s\nresponder log:\n%s", err, out, p.b.Log())
		}
		if !waitLog(p.b.Log, "kerberos: keytab reloaded") {
			t.Errorf("the responder did not log the keytab reload")
		}
	})
	t.Run("KDC unreachable", func(t *testing.T) {
		topo := newTopology(t)
		r, dc := adV1Realm(t, topo, "iked", "aes")
		p := newKrbIkedPair(t, topo, r, nil)
		dc.Stop()
		out, err := p.a.Initiate(connName)
		if err == nil || !strings.Contains(out+err.Error()+p.a.Log(), "no KDC reachable") {
			t.Fatalf("initiate with the DC down: %v\n%s\n%s", err, out, p.a.Log())
		}
		if !strings.Contains(p.a.Log(), "KDC unreachable, retrying") {
			t.Errorf("the initiator did not log its retries:\n%s", p.a.Log())
		}
		p.cap.Stop()
		frames, err := readPcap(p.cap.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			if f.src == topo.IkedAddr {
				t.Fatalf("the initiator sent IKE packets without a ticket: %+v", f)
			}
		}
	})
}
