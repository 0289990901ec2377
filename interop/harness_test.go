package interop

import (
	"reflect"
	"strings"
	"testing"
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
