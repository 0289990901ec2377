package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoteResolvedEachInitiation: a connection whose remote is a DNS
// name is resolved at every initiation, so a retry reaches the peer's new
// address; the address family iked listens on is chosen; a name that does
// not resolve is a clear error.
func TestRemoteResolvedEachInitiation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "iked.yaml")
	cfg := `listen: ["127.0.0.1:0"]
control_socket: ` + filepath.Join(dir, "s") + `
backend: memory
connections:
  peer:
    remote: vpn.example.com:4501
    auth: {method: psk, secret: "a test key for dns"}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.engine.Close()
	answers := [][]netip.Addr{
		{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")},
		{netip.MustParseAddr("198.51.100.7")},
		nil,
	}
	var asked []string
	d.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		asked = append(asked, host)
		a := answers[0]
		answers = answers[1:]
		if a == nil {
			return nil, &netErr{"no such host"}
		}
		return a, nil
	}
	// The engine has no binds (serve was not called): each initiation
	// fails, naming the address it was resolved to.
	for _, want := range []string{"192.0.2.1:4501", "198.51.100.7:4501", "resolving vpn.example.com: no such host"} {
		_, err := d.Initiate(context.Background(), "peer", false)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("initiate: %v, want an error naming %s", err, want)
		}
	}
	if len(asked) != 3 || asked[0] != "vpn.example.com" {
		t.Fatalf("lookups %v, want one per initiation", asked)
	}
	if st := d.Status(); st.Connections[0].Remote != "vpn.example.com:4501" {
		t.Fatalf("status shows remote %q", st.Connections[0].Remote)
	}
}

type netErr struct{ s string }

func (e *netErr) Error() string { return e.s }
