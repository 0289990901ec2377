package config

import (
	"strings"
	"testing"
)

// TestInterfaceKey: "interface" is the if_id of an XFRM interface, 1 to
// 2^32-1; anything else is refused at its line.
func TestInterfaceKey(t *testing.T) {
	conf := func(v string) string {
		return "connections:\n  r:\n    remote: 192.0.2.2\n    auth: {method: psk, secret: a long enough secret}\n    interface: " + v + "\n"
	}
	cfg, err := Parse([]byte(conf("42")), "iked.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Connections[0].Interface; got != 42 {
		t.Errorf("interface %d, want 42", got)
	}
	cfg, err = Parse([]byte(conf("4294967295")), "iked.yaml", "")
	if err != nil || cfg.Connections[0].Interface != 1<<32-1 {
		t.Errorf("interface 4294967295: %v", err)
	}
	for _, bad := range []string{"0", "4294967296", "-1", "ipsec0"} {
		_, err := Parse([]byte(conf(bad)), "iked.yaml", "")
		if err == nil || !strings.HasPrefix(err.Error(), "iked.yaml:5: interface: ") {
			t.Errorf("interface %s: %v", bad, err)
		}
	}
	cfg, _ = Parse([]byte(strings.Replace(conf("1"), "    interface: 1\n", "", 1)), "iked.yaml", "")
	if cfg.Connections[0].Interface != 0 {
		t.Error("interface set without the key")
	}
}
