package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/control"
)

func TestMonitorAndLogLines(t *testing.T) {
	sas := sampleSAs()
	at := now.In(time.Local)
	c := sas[0].Children[0]
	old := sas[0]
	old.ID = "ike-0"
	for _, tc := range []struct {
		ev   control.SAEvent
		want string
	}{
		{control.SAEvent{Event: control.EventIKEUp, SA: sas[0]}, "ike-up       site-a ike-1  192.0.2.1:500 [fqdn:a.example] === 198.51.100.2:4500 [fqdn:b.example]  psk  AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768"},
		{control.SAEvent{Event: control.EventChildUp, SA: sas[0], Child: &c}, "child-up     site-a ike-1  esp tunnel  c1a2b3c4_i 0d0e0f10_o  10.1.0.0/24 === 10.2.0.0/24,10.3.0.0/16"},
		{control.SAEvent{Event: control.EventChildRekey, SA: sas[0], Child: &sas[0].Children[1], OldChild: &c}, "child-rekey  site-a ike-1  c1a2b3c4_i -> 00000001_i"},
		{control.SAEvent{Event: control.EventIKERekey, SA: sas[0], Old: &old}, "ike-rekey    site-a ike-0 -> ike-1"},
		{control.SAEvent{Event: control.EventIKEDown, SA: sas[0]}, "ike-down     site-a ike-1  198.51.100.2:4500 [fqdn:b.example]"},
	} {
		got := monitorLine(at, tc.ev)
		if !strings.HasPrefix(got, at.Format("15:04:05.000")+" "+tc.want) {
			t.Errorf("%s:\n got %q\nwant %q…", tc.ev.Event, got, tc.want)
		}
	}
	got := logLine(at, control.LogLine{Level: "DEBUG", Message: "parsed IKE_AUTH request 1 [ IDi AUTH ]", Attrs: []control.Attr{{Key: "sa", Value: "ike-1"}, {Key: "err", Value: "no such thing"}}})
	if want := at.Format("15:04:05.000") + ` DEBUG parsed IKE_AUTH request 1 [ IDi AUTH ] sa=ike-1 err="no such thing"`; got != want {
		t.Errorf("log line %q, want %q", got, want)
	}
}

func TestReadSideText(t *testing.T) {
	var b bytes.Buffer
	conns := []control.ConnectionInfo{{
		ConnectionStatus: control.ConnectionStatus{Name: "site-a", Local: "192.0.2.1", Remote: "198.51.100.2:500", LocalID: "fqdn:a", RemoteID: "fqdn:b",
			Auth: "psk", IKEProposals: "aes256gcm16-prfsha256-x25519", ESPProposals: "aes256gcm16", Mode: "tunnel", StartAction: "initiate", IKESAs: 1},
		State: "up", ChildSAs: 1, LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24"},
		RekeyTime: 3600, IKERekeyTime: 14400, DPDDelay: 30, DPDAction: "restart", Source: "file",
	}}
	if err := writeConns(&b, conns); err != nil {
		t.Fatal(err)
	}
	want := `site-a: up, 1 IKE SA, 1 Child SA (file)
  local:  192.0.2.1 [fqdn:a]
  remote: 198.51.100.2:500 [fqdn:b]
  auth psk, ike aes256gcm16-prfsha256-x25519, start action initiate
  child: tunnel 10.1.0.0/24 === 10.2.0.0/24, esp aes256gcm16
  rekey 1h00m (IKE 4h00m), reauth -, dpd 30s/restart
`
	if b.String() != want {
		t.Errorf("list-conns:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	certs := []control.CertificateInfo{{Kind: "end_entity", Subject: "CN=gw", Issuer: "CN=CA", Serial: "1a:2b", Key: "ECDSA P-256",
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(10 * 24 * time.Hour), AltNames: []string{"gw.example"}, Connections: []string{"site-a"}}}
	if err := writeCerts(&b, certs, now); err != nil {
		t.Fatal(err)
	}
	want = `end_entity   CN=gw
  issuer:  CN=CA
  serial:  1a:2b, ECDSA P-256, alt names gw.example
  valid:   2025-02-28 12:00:00 UTC .. 2025-03-11 12:00:00 UTC (expires in 10d00h)
  used by: site-a
`
	if b.String() != want {
		t.Errorf("list-certs:\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	st := &control.Stats{Started: now.Add(-time.Hour), Goroutines: 12, HeapBytes: 2 << 20, IKESAs: map[string]int{"established": 2},
		HandshakesCompleted: map[string]uint64{"initiator": 2}, HandshakesFailed: map[string]uint64{"timeout": 1, "other": 0}}
	if err := writeStats(&b, st, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"uptime: 1h00m,", "workers: 12 goroutines, heap 2.0 MiB", "IKE SAs: 2 total (established 2), 0 half-open",
		"handshakes failed: timeout 1\n", "notifies sent: none\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stats lacks %q:\n%s", want, b.String())
		}
	}
}
