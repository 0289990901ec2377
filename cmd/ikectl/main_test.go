package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/policy/agent"
)

// fakeDaemon is a control.Handler with canned answers.
type fakeDaemon struct {
	sas       []ike.SAInfo
	initiated []string
}

func (f *fakeDaemon) SAs() []ike.SAInfo { return f.sas }

func (f *fakeDaemon) ExchangeTimeout() time.Duration { return time.Second }

func (f *fakeDaemon) Initiate(_ context.Context, conn string, _ bool) ([]ike.SAInfo, error) {
	f.initiated = append(f.initiated, conn)
	if conn != "site-a" {
		return nil, errors.New("no connection named \"" + conn + "\"")
	}
	return f.sas[:1], nil
}

func (f *fakeDaemon) Terminate(_ context.Context, target string) (int, error) {
	if target == "ike-1" {
		return 1, nil
	}
	return 0, nil
}

func (f *fakeDaemon) Rekey(_ context.Context, target string, spi uint32) (string, error) {
	if target != "ike-1" {
		return "", errors.New("no IKE SA " + target)
	}
	return "ike-2", nil
}

func (f *fakeDaemon) Policy() (*agent.PolicyInfo, error) {
	return &agent.PolicyInfo{Name: "server-request-security", Exempt: []string{"IKE (UDP 500, 4500), ESP, AH"},
		Rules: []agent.RuleInfo{{Name: "all-icmp", Action: "permit", Filters: []string{"me -> any icmp (mirrored)"}, Connection: "all"},
			{Name: "all-ip", Action: "negotiate", Filters: []string{"me -> any (mirrored)"}, Methods: []string{"esp aes256gcm16"},
				Auth: []string{"kerberos", "psk"}, AcceptUnsecured: true, Fallback: "3s", Connection: "all", KeyModule: "auto"}},
		DefaultResponse: &agent.RuleInfo{Name: "default-response", Action: "negotiate", Filters: []string{"dynamic"}, KeyModule: "ikev1"},
		KeyExchange:     agent.KeyExchangeInfo{KeyModule: "ikev1", Methods: []string{"aes256-sha256-modp2048"}, Lifetime: "8h0m0s", MasterKeyPFS: true}}, nil
}

func (f *fakeDaemon) Peers(peer netip.Addr, proto uint8, port uint16) ([]agent.PeerStatus, error) {
	return []agent.PeerStatus{{Peer: peer.String(), Traffic: fmt.Sprintf("proto %d port %d", proto, port), Verdict: agent.VerdictClearFallback,
		Rule: "all-ip", Filter: "me -> any (mirrored)", Detail: "the peer did not answer IKE", Until: time.Now().Add(4*time.Minute + 30*time.Second),
		KeyModule: "auto", Negotiated: "ikev1", SAs: []string{"isakmp-3"}, Versions: []string{"ikev1"}}}, nil
}

func TestPolicyAndPeersPrintWhatTheDaemonSays(t *testing.T) {
	path := startDaemon(t, &fakeDaemon{})
	env := map[string]string{"IKED_SOCKET": path}
	r := runIkectl(env, "policy")
	for _, want := range []string{"policy server-request-security", "all-ip: negotiate (accept unsecured, fallback to clear after 3s)", "auth    kerberos, psk", "default-response: negotiate",
		"    key     auto", "    key     ikev1", "key exchange: key module ikev1; main mode aes256-sha256-modp2048; lifetime 8h0m0s; master key pfs"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("policy: exit %d, output lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	r = runIkectl(env, "peers", "10.0.0.2", "--protocol", "tcp", "--port", "23")
	for _, want := range []string{"10.0.0.2: clear-fallback", "proto 6 port 23", "the peer did not answer IKE (for 4m",
		"  key      auto, last negotiated with ikev1", "  SAs      isakmp-3 (ikev1)"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("peers: exit %d, output lacks %q:\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	if r := runIkectl(env, "peers", "a", "b"); r.code != 2 {
		t.Errorf("peers with two addresses: exit %d", r.code)
	}
}

func (f *fakeDaemon) Status() control.Status {
	return control.Status{Version: "test", PID: 99, Backend: "fake", IKESAs: len(f.sas)}
}

// startDaemon serves h on a socket in a temporary directory.
func startDaemon(t *testing.T, h control.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "iked.sock")
	s, err := control.Listen(path, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close() })
	return path
}

type result struct {
	code           int
	stdout, stderr string
}

func runIkectl(env map[string]string, args ...string) result {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return result{code, out.String(), errOut.String()}
}

func TestRunAgainstDaemon(t *testing.T) {
	d := &fakeDaemon{sas: sampleSAs()}
	sock := startDaemon(t, d)

	r := runIkectl(nil, "--socket", sock, "sas")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ike-1   site-a       established") || strings.Count(r.stdout, "\n") != 4 || r.stderr != "" {
		t.Errorf("sas: %+v", r)
	}

	// The socket can come from the environment.
	r = runIkectl(map[string]string{"IKED_SOCKET": sock}, "sas", "--json")
	var sas []ike.SAInfo
	if err := json.Unmarshal([]byte(r.stdout), &sas); r.code != 0 || err != nil || len(sas) != 2 || sas[1].ID != "ike-12" {
		t.Errorf("sas --json: %+v (%v)", r, err)
	}
	// --socket wins over the environment.
	r = runIkectl(map[string]string{"IKED_SOCKET": "/nonexistent"}, "--socket="+sock, "status")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "iked test, pid 99\n") || !strings.Contains(r.stdout, "backend:    fake\n") {
		t.Errorf("status: %+v", r)
	}
	r = runIkectl(nil, "--socket", sock, "status", "--json")
	var st control.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); r.code != 0 || err != nil || st.PID != 99 {
		t.Errorf("status --json: %+v (%v)", r, err)
	}

	r = runIkectl(nil, "--socket", sock, "initiate", "site-a")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "initiated site-a\nike-1  site-a  established") {
		t.Errorf("initiate: %+v", r)
	}
	r = runIkectl(nil, "--socket", sock, "initiate", "nope")
	if r.code != 1 || r.stdout != "" || r.stderr != "ikectl: initiate nope: no connection named \"nope\"\n" {
		t.Errorf("initiate unknown: %+v", r)
	}
	if want := []string{"site-a", "nope"}; strings.Join(d.initiated, ",") != strings.Join(want, ",") {
		t.Errorf("daemon saw initiate %q, want %q", d.initiated, want)
	}

	r = runIkectl(nil, "--socket", sock, "terminate", "ike-1")
	if r.code != 0 || r.stdout != "terminated 1 IKE SA\n" {
		t.Errorf("terminate: %+v", r)
	}
	r = runIkectl(nil, "--socket", sock, "terminate", "ike-77")
	if r.code != 1 || r.stderr != "ikectl: terminate ike-77: no IKE SA matches\n" {
		t.Errorf("terminate no match: %+v", r)
	}
}

func TestRunEmpty(t *testing.T) {
	sock := startDaemon(t, &fakeDaemon{})
	if r := runIkectl(nil, "--socket", sock, "sas"); r.code != 0 || r.stdout != "no security associations\n" {
		t.Errorf("sas: %+v", r)
	}
	if r := runIkectl(nil, "--socket", sock, "sas", "--json"); r.code != 0 || r.stdout != "[]\n" {
		t.Errorf("sas --json: %+v", r)
	}
}

func TestRunNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "iked.sock")
	for _, args := range [][]string{{"sas"}, {"sas", "--json"}, {"status"}, {"initiate", "x"}, {"terminate", "x"}} {
		r := runIkectl(map[string]string{"IKED_SOCKET": sock}, args...)
		want := "ikectl: iked is not running (no control socket at " + sock + ")\n"
		if r.code != 1 || r.stdout != "" || r.stderr != want {
			t.Errorf("%q: %+v, want stderr %q", args, r, want)
		}
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"--bogus", "sas"},
		{"--socket"},
		{"sas", "extra"},
		{"sas", "--yaml"},
		{"initiate"},
		{"initiate", "a", "b"},
		{"terminate"},
	} {
		r := runIkectl(nil, args...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "ikectl: ") ||
			!strings.HasSuffix(r.stderr, "Run 'ikectl --help' for usage.\n") || strings.Count(r.stderr, "\n") != 2 {
			t.Errorf("%q: %+v", args, r)
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"sas", "--help"}, {"initiate", "--help"}} {
		r := runIkectl(nil, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "usage: ikectl") || r.stderr != "" {
			t.Errorf("%q: %+v", args, r)
		}
	}
}

// TestGlobalFlagsAnywhere: --socket before or after the command, in both
// spellings, and --version anywhere.
func TestGlobalFlagsAnywhere(t *testing.T) {
	for _, args := range [][]string{
		{"--socket", "/x/s.sock", "sas", "--json"},
		{"sas", "--socket", "/x/s.sock", "--json"},
		{"sas", "--json", "--socket=/x/s.sock"},
		{"-socket", "/x/s.sock", "--json", "sas"},
	} {
		g, err := globalFlags(args)
		if err != nil || g.socket != "/x/s.sock" || strings.Join(g.rest, " ") == "" {
			t.Fatalf("%q: %+v %v", args, g, err)
		}
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb, func(string) string { return "" })
		if code != exitError || !strings.Contains(errb.String(), "/x/s.sock") {
			t.Fatalf("%q: exit %d, stderr %q (want the socket named)", args, code, errb.String())
		}
	}
	if _, err := globalFlags([]string{"sas", "--socket"}); err == nil {
		t.Fatal("--socket without a value accepted")
	}
	var out bytes.Buffer
	if code := run(context.Background(), []string{"sas", "--version"}, &out, io.Discard, func(string) string { return "" }); code != 0 || !strings.HasPrefix(out.String(), "ikectl ") || !strings.Contains(out.String(), "commit") {
		t.Fatalf("--version: %d %q", code, out.String())
	}
}
