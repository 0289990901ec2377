package vici

import (
	"context"
	"crypto/x509"
	"strconv"
	"testing"

	govici "github.com/strongswan/govici/vici"

	"github.com/iked/iked/internal/testpki"
	"github.com/iked/iked/sadb"
)

// What the strongSwan Prometheus exporters read, declared as they declare
// it: govici unmarshals the events into tagged structs, numbers into ints.
type exporterIKE struct {
	UniqueID     string                   `vici:"uniqueid"`
	Version      int                      `vici:"version"`
	State        string                   `vici:"state"`
	LocalHost    string                   `vici:"local-host"`
	LocalPort    int                      `vici:"local-port"`
	LocalID      string                   `vici:"local-id"`
	RemoteHost   string                   `vici:"remote-host"`
	RemotePort   int                      `vici:"remote-port"`
	RemoteID     string                   `vici:"remote-id"`
	Initiator    string                   `vici:"initiator"`
	InitiatorSPI string                   `vici:"initiator-spi"`
	ResponderSPI string                   `vici:"responder-spi"`
	NATAny       string                   `vici:"nat-any"`
	EncrAlg      string                   `vici:"encr-alg"`
	EncrKeySize  int                      `vici:"encr-keysize"`
	IntegAlg     string                   `vici:"integ-alg"`
	PRFAlg       string                   `vici:"prf-alg"`
	DHGroup      string                   `vici:"dh-group"`
	Established  int64                    `vici:"established"`
	RekeyTime    int64                    `vici:"rekey-time"`
	ReauthTime   int64                    `vici:"reauth-time"`
	Children     map[string]exporterChild `vici:"child-sas"`
}

type exporterChild struct {
	Name        string   `vici:"name"`
	UniqueID    string   `vici:"uniqueid"`
	ReqID       string   `vici:"reqid"`
	State       string   `vici:"state"`
	Mode        string   `vici:"mode"`
	Protocol    string   `vici:"protocol"`
	EncrAlg     string   `vici:"encr-alg"`
	EncrKeySize int      `vici:"encr-keysize"`
	SPIIn       string   `vici:"spi-in"`
	SPIOut      string   `vici:"spi-out"`
	BytesIn     int64    `vici:"bytes-in"`
	PacketsIn   int64    `vici:"packets-in"`
	BytesOut    int64    `vici:"bytes-out"`
	PacketsOut  int64    `vici:"packets-out"`
	RekeyTime   int64    `vici:"rekey-time"`
	InstallTime int64    `vici:"install-time"`
	LocalTS     []string `vici:"local-ts"`
	RemoteTS    []string `vici:"remote-ts"`
}

type exporterConn struct {
	LocalAddrs  []string                     `vici:"local_addrs"`
	RemoteAddrs []string                     `vici:"remote_addrs"`
	Version     string                       `vici:"version"`
	ReauthTime  int64                        `vici:"reauth_time"`
	RekeyTime   int64                        `vici:"rekey_time"`
	Children    map[string]exporterConnChild `vici:"children"`
}

type exporterConnChild struct {
	Mode         string   `vici:"mode"`
	RekeyTime    int64    `vici:"rekey_time"`
	RekeyBytes   int64    `vici:"rekey_bytes"`
	RekeyPackets int64    `vici:"rekey_packets"`
	LocalTS      []string `vici:"local-ts"`
	RemoteTS     []string `vici:"remote-ts"`
}

type exporterCert struct {
	Type string `vici:"type"`
	Flag string `vici:"flag"`
	Data string `vici:"data"`
}

// stream makes a streamed request as the exporters do, through govici's
// event subscription rather than its StreamedCommandRequest: in govici
// v0.8.0 that one waits on the events and on the response in one select,
// so that when both have arrived (charon, too, sends them back to back)
// it may take the response first and drop the events. Subscribed events
// are handed over by govici's reader in the order they arrive, before
// the response, so none is lost.
func stream(t *testing.T, sess *govici.Session, cmd, event string, req *govici.Message) ([]*govici.Message, error) {
	t.Helper()
	evs := make(chan govici.Event, 64)
	sess.NotifyEvents(evs)
	defer sess.StopEvents(evs)
	if err := sess.Subscribe(event); err != nil {
		return nil, err
	}
	defer sess.Unsubscribe(event)
	if _, err := sess.Call(context.Background(), cmd, req); err != nil {
		return nil, err
	}
	var out []*govici.Message
	for {
		select {
		case ev := <-evs:
			if ev.Name == event {
				out = append(out, ev.Message)
			}
		default:
			return out, nil
		}
	}
}

// TestGovici: a govici client makes the exporters' calls (stats,
// list-sas, list-conns, list-certs, get-pools) and finds in the fields
// they read what the engine holds.
func TestGovici(t *testing.T) {
	p := newPair(t)
	sas, err := p.a.Initiate(context.Background(), "site")
	if err != nil {
		t.Fatal(err)
	}
	// Traffic counted by the data plane shows in the counters.
	in := sadb.ID{Dst: addrA.Addr(), Protocol: sadb.ESP, SPI: parseSPI(sas[0].Children[0].SPIIn)}
	for range 3 {
		if err := p.memA.Count(in, 1400); err != nil {
			t.Fatal(err)
		}
	}
	ch := p.a.SAs()[0].Children[0]
	if ch.BytesIn != 3*1400 || ch.PacketsIn != 3 {
		t.Fatalf("engine counters after 3 packets: %d bytes, %d packets", ch.BytesIn, ch.PacketsIn)
	}
	sess, err := govici.NewSession(govici.WithSocketPath(p.path))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	st, err := sess.Call(context.Background(), "stats", nil)
	if err != nil {
		t.Fatal(err)
	}
	ikesas, ok := st.Get("ikesas").(*govici.Message)
	if !ok || ikesas.Get("total") != "1" || ikesas.Get("half-open") != "0" {
		t.Fatalf("stats ikesas: %v", st)
	}
	if up, ok := st.Get("uptime").(*govici.Message); !ok || up.Get("since") == nil {
		t.Fatalf("stats uptime: %v", st)
	}

	msgs, err := stream(t, sess, "list-sas", "list-sa", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("list-sas: %d events, want 1", len(msgs))
	}
	raw, ok := msgs[0].Get("site").(*govici.Message)
	if !ok {
		t.Fatalf("list-sa event without section site: %v", msgs[0])
	}
	var ike exporterIKE
	if err := govici.UnmarshalMessage(raw, &ike); err != nil {
		t.Fatal(err)
	}
	want := sas[0]
	if ike.UniqueID != strconv.FormatUint(uniqueID(want.ID), 10) || ike.Version != 2 || ike.State != "ESTABLISHED" ||
		ike.LocalHost != "192.0.2.1" || ike.LocalPort != 500 || ike.RemoteHost != "192.0.2.2" || ike.RemotePort != 500 ||
		ike.LocalID != "a.example" || ike.RemoteID != "b.example" || ike.Initiator != "yes" ||
		ike.InitiatorSPI != want.SPIi || ike.ResponderSPI != want.SPIr || ike.EncrAlg != "AES_GCM_16" || ike.EncrKeySize != 256 ||
		ike.PRFAlg != "PRF_HMAC_SHA2_256" || ike.DHGroup != "CURVE_25519" || ike.IntegAlg != "" {
		t.Fatalf("list-sa IKE SA: %+v\nengine: %+v", ike, want)
	}
	if ike.Established < 0 || ike.RekeyTime <= 0 || ike.RekeyTime > 4*3600 {
		t.Fatalf("list-sa times: established %d, rekey-time %d", ike.Established, ike.RekeyTime)
	}
	if len(ike.Children) != 1 {
		t.Fatalf("list-sa child-sas: %+v", ike.Children)
	}
	for name, c := range ike.Children {
		if name != "site-"+c.UniqueID || c.Name != "site" || c.State != "INSTALLED" || c.Mode != "TUNNEL" || c.Protocol != "ESP" ||
			c.SPIIn != ch.SPIIn || c.SPIOut != ch.SPIOut || c.EncrAlg != "AES_GCM_16" || c.EncrKeySize != 256 ||
			c.ReqID == "" || c.ReqID == "0" || c.RekeyTime <= 0 || c.RekeyTime > 3600 || c.InstallTime < 0 ||
			len(c.LocalTS) != 1 || c.LocalTS[0] != "10.1.0.0/24" || c.RemoteTS[0] != "10.2.0.0/24" {
			t.Fatalf("list-sa Child SA %s: %+v\nengine: %+v", name, c, ch)
		}
		if c.BytesIn != int64(ch.BytesIn) || c.PacketsIn != int64(ch.PacketsIn) || c.PacketsOut != int64(ch.PacketsOut) {
			t.Fatalf("list-sa counters in %d/%d out %d, engine %+v", c.BytesIn, c.PacketsIn, c.PacketsOut, ch)
		}
	}

	msgs, err = stream(t, sess, "list-conns", "list-conn", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("list-conns: %d events", len(msgs))
	}
	var conn exporterConn
	if err := govici.UnmarshalMessage(msgs[0].Get("site").(*govici.Message), &conn); err != nil {
		t.Fatal(err)
	}
	if conn.Version != "IKEv2" || conn.LocalAddrs[0] != "192.0.2.1" || conn.RemoteAddrs[0] != "192.0.2.2" ||
		conn.RekeyTime != 4*3600 || conn.Children["site"].RekeyTime != 3600 || conn.Children["site"].Mode != "TUNNEL" ||
		conn.Children["site"].LocalTS[0] != "10.1.0.0/24" {
		t.Fatalf("list-conn: %+v", conn)
	}

	// A CA certificate loaded over VICI is what list-certs streams; the
	// exporter parses data as DER.
	pki := testpki.New(t, "Govici", "p256", 0)
	load := govici.NewMessage()
	_ = load.Set("type", "X509")
	_ = load.Set("flag", "CA")
	_ = load.Set("data", string(pki.Root.Raw))
	if r, err := sess.Call(context.Background(), "load-cert", load); err != nil || r.Get("success") != "yes" {
		t.Fatalf("load-cert: %v %v", r, err)
	}
	req := govici.NewMessage()
	_ = req.Set("type", "X509")
	msgs, err = stream(t, sess, "list-certs", "list-cert", req)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("list-certs: %d events", len(msgs))
	}
	var cert exporterCert
	if err := govici.UnmarshalMessage(msgs[0], &cert); err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate([]byte(cert.Data))
	if err != nil || cert.Type != "X509" || cert.Flag != "CA" || !c.Equal(pki.Root) {
		t.Fatalf("list-cert: %+v, %v", cert, err)
	}

	pools, err := sess.Call(context.Background(), "get-pools", nil)
	if err != nil || len(pools.Keys()) != 0 {
		t.Fatalf("get-pools: %v %v", pools, err)
	}
}
