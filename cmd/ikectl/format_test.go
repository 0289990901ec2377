package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/ike"
)

var now = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func sampleSAs() []ike.SAInfo {
	est := now.Add(-(5*time.Minute + 3*time.Second))
	return []ike.SAInfo{{
		ID: "ike-1", Connection: "site-a", SPIi: "0123456789abcdef", SPIr: "fedcba9876543210",
		State: "established", Role: "initiator",
		LocalAddr: "192.0.2.1:500", RemoteAddr: "198.51.100.2:4500",
		LocalID: "fqdn:a.example", RemoteID: "fqdn:b.example", Auth: "psk",
		Algorithms:  "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768",
		Proposal:    "aes256gcm16-prfsha384-x25519-ke1_mlkem768",
		PostQuantum: true,
		NATRemote:   true, Established: est,
		Children: []ike.ChildInfo{{
			SPIIn: "c1a2b3c4", SPIOut: "0d0e0f10", Protocol: "esp", Mode: "tunnel",
			LocalTS: []string{"10.1.0.0/24"}, RemoteTS: []string{"10.2.0.0/24", "10.3.0.0/16"},
			Algorithms: "AES_GCM_16-256/NO_EXT_SEQ", Proposal: "aes256gcm16",
			BytesIn: 1229, BytesOut: 300, PacketsIn: 10, PacketsOut: 1, Installed: est,
		}, {
			SPIIn: "00000001", SPIOut: "00000002", Protocol: "esp", Mode: "transport",
			LocalTS: []string{"192.0.2.1/32[tcp/80]"}, RemoteTS: []string{"198.51.100.2/32"},
			Algorithms: "AES_CBC-128/HMAC_SHA2_256_128/NO_EXT_SEQ", Proposal: "aes128-sha256",
			BytesIn: 3 << 30, Installed: now.Add(-2 * time.Hour),
		}},
	}, {
		ID: "ike-12", Connection: "roadwarrior", SPIi: "1111111111111111",
		State: "connecting", Role: "responder",
		LocalAddr: "192.0.2.1:500", RemoteAddr: "203.0.113.7:500",
		Children: nil,
	}}
}

const wantSAs = `ike-1   site-a       established  initiator  192.0.2.1:500 [fqdn:a.example] === 198.51.100.2:4500 [fqdn:b.example]  psk  aes256gcm16-prfsha384-x25519-ke1_mlkem768  established 5m03s ago  NAT: remote
    esp tunnel  c1a2b3c4_i 0d0e0f10_o  10.1.0.0/24 === 10.2.0.0/24,10.3.0.0/16  aes256gcm16  in 1.2 KiB/10 pkts  out 300 B/1 pkt  installed 5m03s ago
    esp transport  00000001_i 00000002_o  192.0.2.1/32[tcp/80] === 198.51.100.2/32  aes128-sha256  in 3.0 GiB/0 pkts  out 0 B/0 pkts  installed 2h00m ago
ike-12  roadwarrior  connecting   responder  192.0.2.1:500 === 203.0.113.7:500                                      -  -
`

func TestWriteSAs(t *testing.T) {
	var b bytes.Buffer
	if err := writeSAs(&b, sampleSAs(), now); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != wantSAs {
		t.Errorf("got:\n%s\nwant:\n%s", got, wantSAs)
	}
}

func TestWriteSAsEmpty(t *testing.T) {
	for _, sas := range [][]ike.SAInfo{nil, {}} {
		var b bytes.Buffer
		if err := writeSAs(&b, sas, now); err != nil {
			t.Fatal(err)
		}
		if got := b.String(); got != "no security associations\n" {
			t.Errorf("%#v: got %q", sas, got)
		}
	}
}

// The documented fields of ikectl sas --json (docs/ikectl.md).
var (
	saFields = []string{"id", "connection", "spi_i", "spi_r", "state", "role",
		"local_addr", "remote_addr", "local_id", "remote_id", "auth", "algorithms", "proposal", "post_quantum",
		"nat_local", "nat_remote", "established", "children", "version"}
	childFields = []string{"spi_in", "spi_out", "protocol", "mode", "local_ts", "remote_ts",
		"algorithms", "proposal", "bytes_in", "bytes_out", "packets_in", "packets_out", "installed"}
)

func keys(m map[string]any) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	slices.Sort(k)
	return k
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestWriteSAsJSON(t *testing.T) {
	var b bytes.Buffer
	if err := writeSAsJSON(&b, sampleSAs()); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("output is not a JSON array of objects: %v\n%s", err, b.String())
	}
	if len(got) != 2 {
		t.Fatalf("got %d SAs, want 2", len(got))
	}
	if k := keys(got[0]); !slices.Equal(k, sorted(saFields)) {
		t.Errorf("SA fields %q, want %q", k, sorted(saFields))
	}
	// Not established: "established" is left out.
	// Not negotiated yet: no proposal either.
	wantPending := slices.DeleteFunc(sorted(saFields), func(s string) bool { return s == "established" || s == "proposal" })
	if k := keys(got[1]); !slices.Equal(k, wantPending) {
		t.Errorf("pending SA fields %q, want %q", k, wantPending)
	}
	if got[0]["version"] != "ikev2" {
		t.Errorf("version %v, want ikev2", got[0]["version"])
	}
	children, ok := got[0]["children"].([]any)
	if !ok || len(children) != 2 {
		t.Fatalf("children = %#v", got[0]["children"])
	}
	if k := keys(children[0].(map[string]any)); !slices.Equal(k, sorted(childFields)) {
		t.Errorf("child fields %q, want %q", k, sorted(childFields))
	}
	// Arrays are arrays even when empty, for scripts.
	if c, ok := got[1]["children"].([]any); !ok || len(c) != 0 {
		t.Errorf("children of SA without Child SAs = %#v, want []", got[1]["children"])
	}
	if got[0]["id"] != "ike-1" || got[0]["nat_remote"] != true || children[0].(map[string]any)["bytes_in"] != 1229.0 {
		t.Errorf("values not carried through: %v", got[0])
	}
	// And it decodes back to the same SAs.
	var back []ike.SAInfo
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back[0].Children[1].LocalTS[0] != "192.0.2.1/32[tcp/80]" || !back[0].Established.Equal(sampleSAs()[0].Established) {
		t.Errorf("round trip: %+v", back[0])
	}
}

func TestWriteSAsJSONEmpty(t *testing.T) {
	for _, sas := range [][]ike.SAInfo{nil, {}} {
		var b bytes.Buffer
		if err := writeSAsJSON(&b, sas); err != nil {
			t.Fatal(err)
		}
		if got := b.String(); got != "[]\n" {
			t.Errorf("%#v: got %q, want []", sas, got)
		}
	}
}

func TestFormatAge(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                          "0s",
		0:                                     "0s",
		59*time.Second + 999*time.Millisecond: "59s",
		time.Minute:                           "1m00s",
		5*time.Minute + 3*time.Second:         "5m03s",
		2*time.Hour + 5*time.Minute:           "2h05m",
		26 * time.Hour:                        "1d02h",
		400 * 24 * time.Hour:                  "400d00h",
	} {
		if got := formatAge(d); got != want {
			t.Errorf("formatAge(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0:       "0 B",
		1023:    "1023 B",
		1024:    "1.0 KiB",
		1536:    "1.5 KiB",
		5 << 20: "5.0 MiB",
		1 << 62: "4096.0 PiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWriteStatus(t *testing.T) {
	st := &control.Status{
		Version: "0.1.0", PID: 1234, Started: now.Add(-(2*time.Hour + 3*time.Minute)),
		ConfigFile: "/etc/iked/iked.conf", Listen: []string{"0.0.0.0:500", "0.0.0.0:4500"},
		Backend: "memory", IKESAs: 3, ChildSAs: 1, HalfOpen: 1,
		Connections: []control.ConnectionStatus{{
			Name: "site-a", Local: "192.0.2.1", Remote: "198.51.100.2",
			LocalID: "fqdn:a.example", RemoteID: "fqdn:b.example", Auth: "psk",
			IKEProposals: "aes256gcm16-prfsha256-x25519", ESPProposals: "aes256gcm16",
			Mode: "tunnel", StartAction: "initiate", IKESAs: 1,
		}, {Name: "roadwarrior", Remote: "%any", Auth: "psk", Mode: "tunnel", StartAction: "none"}},
	}
	var b bytes.Buffer
	if err := writeStatus(&b, st, now); err != nil {
		t.Fatal(err)
	}
	want := `iked 0.1.0, pid 1234, up 2h03m (since 2025-03-01 09:57:00 UTC)
config:     /etc/iked/iked.conf
listening:  0.0.0.0:500, 0.0.0.0:4500
backend:    memory
SAs:        3 IKE SAs (1 half-open), 1 Child SA
connections (2):
  site-a: 192.0.2.1 === 198.51.100.2, 1 IKE SA
    identities: fqdn:a.example === fqdn:b.example, auth psk
    proposals:  ike aes256gcm16-prfsha256-x25519, esp aes256gcm16
    child:      tunnel mode, start action initiate
  roadwarrior: - === %any, 0 IKE SAs
    identities: - === -, auth psk
    proposals:  ike -, esp -
    child:      tunnel mode, start action none
`
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	b.Reset()
	if err := writeStatus(&b, &control.Status{PID: 7}, now); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); !strings.HasSuffix(got, "no connections configured\n") || !strings.HasPrefix(got, "iked (unknown version), pid 7\n") {
		t.Errorf("empty status:\n%s", got)
	}
}

// TestWriteSAsJSONVersion: an ISAKMP SA (the IKEv1 engine's isakmp-<n>)
// is marked version ikev1.
func TestWriteSAsJSONVersion(t *testing.T) {
	var b bytes.Buffer
	if err := writeSAsJSON(&b, []ike.SAInfo{{ID: "isakmp-3"}, {ID: "ike-4"}}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got[0]["version"] != "ikev1" || got[1]["version"] != "ikev2" {
		t.Errorf("versions %v %v", got[0]["version"], got[1]["version"])
	}
}
