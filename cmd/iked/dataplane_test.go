package main

import (
	"strings"
	"testing"

	"github.com/iked/iked/config"
)

// TestInterfaceNeedsXFRM: a connection bound to an XFRM interface is
// refused, at its line, by every data plane but the kernel's.
func TestInterfaceNeedsXFRM(t *testing.T) {
	cfg, err := config.Parse([]byte("connections:\n  r:\n    remote: 192.0.2.2\n    auth: {method: psk, secret: a long enough secret}\n    interface: 42\n"), "iked.yaml", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := (&dataPlane{name: "xfrm"}).supports(cfg); err != nil {
		t.Errorf("xfrm: %v", err)
	}
	for _, name := range []string{"userspace", "memory"} {
		err := (&dataPlane{name: name}).supports(cfg)
		if err == nil || !strings.HasPrefix(err.Error(), `iked.yaml:2: connection "r": interface 42 needs the kernel data plane`) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
