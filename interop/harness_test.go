package interop

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// listSAsSample is swanctl 5.9.8 --list-sas --pretty output for one
// established IKE SA with one installed Child SA.
const listSAsSample = `list-sa event {
  interop {
    uniqueid = 1
    version = 2
    state = ESTABLISHED
    local-host = 10.99.1.2
    local-port = 4500
    local-id = charon.example
    remote-host = 10.99.1.1
    remote-port = 4500
    remote-id = iked.example
    initiator = yes
    initiator-spi = e74af7b12c2810c6
    responder-spi = 6f25885de57a8852
    nat-local = yes
    nat-any = yes
    encr-alg = AES_GCM_16
    encr-keysize = 256
    prf-alg = PRF_HMAC_SHA2_256
    dh-group = CURVE_25519
    established = 0
    rekey-time = 14046
    child-sas {
      net-1 {
        name = net
        uniqueid = 1
        reqid = 1
        state = INSTALLED
        mode = TUNNEL
        protocol = ESP
        encap = yes
        spi-in = be49a18b
        spi-out = 38450ccd
        encr-alg = AES_GCM_16
        encr-keysize = 256
        bytes-in = 0
        packets-in = 0
        local-ts = [
          10.2.0.0/24
        ]
        remote-ts = [
          10.1.0.0/24
        ]
      }
    }
  }
}
list-sas reply {
}
`

func TestParseListSAs(t *testing.T) {
	sas, err := parseListSAs(listSAsSample)
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) != 1 {
		t.Fatalf("%d SAs", len(sas))
	}
	s := sas[0]
	if s.Name != "interop" || s.State != "ESTABLISHED" || !s.Initiator || s.SPIi != "e74af7b12c2810c6" || s.SPIr != "6f25885de57a8852" || !s.NATAny || s.RemotePort != "4500" {
		t.Fatalf("IKE SA %+v", s)
	}
	if got := s.Algorithms(); got != "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519" {
		t.Fatalf("IKE algorithms %q", got)
	}
	if len(s.Children) != 1 {
		t.Fatalf("%d Child SAs", len(s.Children))
	}
	c := s.Children[0]
	if c.Name != "net" || c.State != "INSTALLED" || c.SPIIn != "be49a18b" || c.SPIOut != "38450ccd" || !c.Encap ||
		!reflect.DeepEqual(c.LocalTS, []string{"10.2.0.0/24"}) || !reflect.DeepEqual(c.RemoteTS, []string{"10.1.0.0/24"}) {
		t.Fatalf("Child SA %+v", c)
	}
	if got := c.Algorithms(); got != "AES_GCM_16-256/NO_EXT_SEQ" {
		t.Fatalf("ESP algorithms %q", got)
	}
	if sas, err := parseListSAs("list-sas reply {\n}\n"); err != nil || len(sas) != 0 {
		t.Fatalf("empty list: %v %v", sas, err)
	}
	if _, err := parseListSAs("list-sa event {\n  x {\n"); err == nil {
		t.Fatal("unterminated section accepted")
	}
}

func TestAlgorithmsCBC(t *testing.T) {
	s := charonIKESA{EncrAlg: "AES_CBC", EncrKey: "256", IntegAlg: "HMAC_SHA2_256_128", PRFAlg: "PRF_HMAC_SHA2_256", DHGroup: "MODP_2048"}
	if got := s.Algorithms(); got != "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" {
		t.Fatal(got)
	}
	c := charonChildSA{EncrAlg: "CHACHA20_POLY1305", DHGroup: "CURVE_25519", ESN: true}
	if got := c.Algorithms(); got != "CHACHA20_POLY1305/CURVE_25519/EXT_SEQ" {
		t.Fatal(got)
	}
	if spiHex("0xBE49A18B", 8) != "be49a18b" || spiHex("1", 16) != "0000000000000001" {
		t.Fatal("spiHex")
	}
}

func TestConfigRendering(t *testing.T) {
	sw := swanctlConf([]charonConn{{
		Name: "c", Child: "net", LocalAddr: "10.99.1.2", RemoteAddr: "10.99.1.1", LocalID: "fqdn:a", RemoteID: "fqdn:b",
		PSK: `se"cret`, IKEProposals: []string{"aes256gcm16-prfsha256-x25519"}, ESPProposals: []string{"aes256gcm16"},
		LocalTS: []string{"10.2.0.0/24"}, RemoteTS: []string{"10.1.0.0/24", "10.3.0.0/24"},
	}})
	for _, want := range []string{"local_addrs = 10.99.1.2", `secret = "se\"cret"`, "remote_ts = 10.1.0.0/24,10.3.0.0/24",
		"start_action = none", "mode = tunnel", "dpd_delay = 0s", `id = "fqdn:a"`} {
		if !strings.Contains(sw, want) {
			t.Errorf("swanctl.conf lacks %q:\n%s", want, sw)
		}
	}
	ss := strongswanConf("/d", charonOptions{Log: defaultCharonLog})
	for _, want := range []string{"path = /d/charon.log", "socket = unix:///d/charon.vici", "retransmit_tries = 2",
		"retransmit_timeout = 1\n", "install_routes = no", "kernel-libipsec kernel-netlink", "ike = 2"} {
		if !strings.Contains(ss, want) {
			t.Errorf("strongswan.conf lacks %q:\n%s", want, ss)
		}
	}
	y := ikedConfig("/d/s", "/d/k", ikedOptions{Listen: []string{"10.99.1.1:500"}, Conns: []ikedConn{{
		Name: "c", Local: "10.99.1.1", Remote: "10.99.1.2", PSK: "x", LocalTS: []string{"10.1.0.0/24"},
	}}})
	for _, want := range []string{`listen: ["10.99.1.1:500"]`, `control_socket: "/d/s"`, `key_log: "/d/k"`,
		"retransmit_timeout: 1s", `local_ts: ["10.1.0.0/24"]`, `auth: {method: psk, secret: "x"}`} {
		if !strings.Contains(y, want) {
			t.Errorf("iked config lacks %q:\n%s", want, y)
		}
	}
}

func TestConfigRenderingKnobs(t *testing.T) {
	zero := 0
	y := ikedConfig("/d/s", "/d/k", ikedOptions{Listen: []string{"10.99.1.1:500"}, CookieThreshold: &zero, Metrics: true})
	for _, want := range []string{"retransmit_tries: 2, cookie_threshold: 0}", `metrics_listen: "127.0.0.1:9764"`} {
		if !strings.Contains(y, want) {
			t.Errorf("iked config lacks %q:\n%s", want, y)
		}
	}
	if y := ikedConfig("/d/s", "/d/k", ikedOptions{}); strings.Contains(y, "cookie_threshold") || strings.Contains(y, "metrics_listen") {
		t.Errorf("defaults render cookie_threshold or metrics_listen:\n%s", y)
	}
}

func TestMetricValue(t *testing.T) {
	m := "# TYPE iked_handshakes_failed_total counter\niked_handshakes_failed_total{reason=\"no_proposal_chosen\"} 2\niked_retransmissions_total 0\n"
	if v, ok := metricValue(m, "iked_handshakes_failed_total", `reason="no_proposal_chosen"`); !ok || v != 2 {
		t.Errorf("labelled sample: %v %v", v, ok)
	}
	if v, ok := metricValue(m, "iked_retransmissions_total", ""); !ok || v != 0 {
		t.Errorf("plain sample: %v %v", v, ok)
	}
	if _, ok := metricValue(m, "iked_handshakes_failed_total", `reason="timeout"`); ok {
		t.Error("absent sample found")
	}
}

// TestOpenChaChaSK seals a synthetic IKE_AUTH request (behind a non-ESP
// marker) as RFC 7634 describes and checks that openChaChaSK opens it
// with the logged initiator key and refuses it with a changed one.
func TestOpenChaChaSK(t *testing.T) {
	ski := make([]byte, 36)
	for i := range ski {
		ski[i] = byte(i + 1)
	}
	line := "uat:ikev2_decryption_table:0102030405060708,1112131415161718," + hex.EncodeToString(ski) + "," +
		strings.Repeat("ee", 36) + `,"CHACHA20-POLY1305 [RFC7634]",,,"NONE [RFC4306]"`
	sas, err := parseKeyLogIKE([]string{line, "uat:esp_sa:ignored"})
	if err != nil {
		t.Fatal(err)
	}
	sa, ok := sas["0102030405060708"+"1112131415161718"]
	if !ok || sa.Encr != "CHACHA20-POLY1305 [RFC7634]" || sa.Integ != "NONE [RFC4306]" || len(sa.SKai) != 0 {
		t.Fatalf("parsed %+v", sas)
	}
	plain := []byte{0, 0, 0, 12, 2, 0, 0, 0, 'a', 'b', 'c', 'd'} // IDi, no next payload
	iv := []byte{9, 8, 7, 6, 5, 4, 3, 2}
	hdr := []byte{1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 46, 0x20, 35, 0x08, 0, 0, 0, 1}
	skLen := 4 + len(iv) + len(plain) + 16
	total := len(hdr) + 4 + 4 + skLen
	msg := append(append([]byte(nil), hdr...), byte(total>>24), byte(total>>16), byte(total>>8), byte(total))
	msg = append(msg, 35, 0, byte(skLen>>8), byte(skLen))
	aead, err := chacha20poly1305.New(ski[:32])
	if err != nil {
		t.Fatal(err)
	}
	nonce := append(append([]byte(nil), ski[32:]...), iv...)
	sealed := aead.Seal(nil, nonce, plain, msg)
	msg = append(append(msg, iv...), sealed...)
	f := ikeFrame{Num: 3, Exchange: "IKE_AUTH", Initiator: true, Payload: append([]byte{0, 0, 0, 0}, msg...)}
	if err := openChaChaSK(f, sa); err != nil {
		t.Fatalf("open with the right key: %v", err)
	}
	bad := sa
	bad.SKei = append([]byte(nil), ski...)
	bad.SKei[0] ^= 1
	if err := openChaChaSK(f, bad); err == nil {
		t.Fatal("opened with a changed key")
	}
	f.Initiator = false // the responder's key (SK_er) does not open it
	if err := openChaChaSK(f, sa); err == nil {
		t.Fatal("opened with SK_er")
	}
}
