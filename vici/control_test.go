package vici

import (
	"context"
	"strings"
	"testing"
)

// TestRekeyEvents: rekeys over VICI raise ike-rekey and child-rekey with
// the old and the new SA, and no up/down events.
func TestRekeyEvents(t *testing.T) {
	p := newPair(t)
	mon := p.dial(t)
	for _, e := range []string{"ike-rekey", "child-rekey", "ike-updown", "child-updown"} {
		mon.register(e)
	}
	sas, err := p.a.Initiate(context.Background(), "site")
	if err != nil {
		t.Fatal(err)
	}
	// The initiation's up events come first; they are delivered apart
	// from Initiate, which may return before them.
	for seen := map[string]bool{}; !seen["ike-updown"] || !seen["child-updown"]; {
		typ, name, ev, err := mon.read(30e9)
		if err != nil || typ != pktEvent || name != "ike-updown" && name != "child-updown" || str(ev, "up") != "yes" || seen[name] {
			t.Fatalf("before the rekey: %q %v", name, err)
		}
		seen[name] = true
	}
	c := p.dial(t)
	_, resp := c.command("rekey", NewMessage().Set("ike", "site"))
	if str(resp, "success") != "yes" || str(resp, "matches") != "1" {
		t.Fatalf("rekey ike: %s %s", str(resp, "success"), str(resp, "errmsg"))
	}
	typ, name, ev, err := mon.read(30e9)
	if err != nil || typ != pktEvent || name != "ike-rekey" {
		t.Fatalf("after an IKE SA rekey: %q %v", name, err)
	}
	now := p.a.SAs()[0]
	if str(ev, "site", "old", "initiator-spi") != sas[0].SPIi || str(ev, "site", "new", "initiator-spi") != now.SPIi ||
		now.SPIi == sas[0].SPIi {
		t.Fatalf("ike-rekey old %s new %s; engine before %s after %s", str(ev, "site", "old", "initiator-spi"),
			str(ev, "site", "new", "initiator-spi"), sas[0].SPIi, now.SPIi)
	}
	_, resp = c.command("rekey", NewMessage().Set("child", "site"))
	if str(resp, "success") != "yes" {
		t.Fatalf("rekey child: %s", str(resp, "errmsg"))
	}
	typ, name, ev, err = mon.read(30e9)
	if err != nil || typ != pktEvent || name != "child-rekey" {
		t.Fatalf("after a Child SA rekey: %q %v", name, err)
	}
	after := p.a.SAs()[0].Children[0]
	if str(ev, "site", "child-sas", "site", "old", "spi-in") != sas[0].Children[0].SPIIn ||
		str(ev, "site", "child-sas", "site", "new", "spi-in") != after.SPIIn {
		t.Fatalf("child-rekey: old %s new %s, engine %s", str(ev, "site", "child-sas", "site", "old", "spi-in"),
			str(ev, "site", "child-sas", "site", "new", "spi-in"), after.SPIIn)
	}
	// terminate by child-id, then by ike-id.
	evs, _ := c.command("list-sas", nil)
	if len(evs) != 0 {
		t.Fatalf("list-sa events to a client not registered for them: %d", len(evs))
	}
	c.register("list-sa")
	evs, _ = c.command("list-sas", nil)
	site, _ := evs[0].Sub("site")
	cs, _ := site.Sub("child-sas")
	childID := str(cs, cs.Keys()[0], "uniqueid")
	_, resp = c.command("terminate", NewMessage().Set("child-id", childID))
	if str(resp, "success") != "yes" || str(resp, "terminated") != "1" {
		t.Fatalf("terminate child-id %s: %s", childID, str(resp, "errmsg"))
	}
	if n := len(p.a.SAs()[0].Children); n != 0 {
		t.Fatalf("after terminate child-id, %d Child SAs", n)
	}
	if name := mon.waitEvent("child-updown"); str(name, "up") != "" {
		t.Fatal("terminating a Child SA raised an up event")
	}
	_, resp = c.command("terminate", NewMessage().Set("ike-id", str(site, "uniqueid")).Set("force", "yes"))
	if str(resp, "success") != "yes" || len(p.a.SAs()) != 0 {
		t.Fatalf("terminate ike-id force: %s, %d SAs left", str(resp, "errmsg"), len(p.a.SAs()))
	}
	_, resp = c.command("terminate", NewMessage().Set("ike", "site"))
	if str(resp, "success") != "no" || str(resp, "errmsg") != "no matching SAs to terminate found" {
		t.Fatalf("terminate with nothing to match: %s", str(resp, "errmsg"))
	}
}

// TestLoadConnRefusals: load-conn refuses by name what iked does not
// have, and what it does not know, and keeps the file's connections.
func TestLoadConnRefusals(t *testing.T) {
	p := newPair(t)
	c := p.dial(t)
	conn := func(mod func(m *Message)) *Message {
		req := NewMessage()
		m := req.Section("lab")
		m.SetList("remote_addrs", []string{"192.0.2.2"})
		m.Section("local").Set("auth", "psk").Set("id", "a.example")
		m.Section("remote").Set("auth", "psk").Set("id", "b.example")
		m.Section("children").Section("net").SetList("local_ts", []string{"10.1.0.0/24"})
		mod(m)
		return req
	}
	for want, mod := range map[string]func(m *Message){
		"unsupported option: vips":        func(m *Message) { m.SetList("vips", []string{"0.0.0.0"}) },
		"unknown option: frobnicate":      func(m *Message) { m.Set("frobnicate", "yes") },
		"unsupported option: updown":      func(m *Message) { s, _ := m.Sub("children"); s2, _ := s.Sub("net"); s2.Set("updown", "/bin/true") },
		"unsupported option: children":    func(m *Message) { s, _ := m.Sub("children"); s.Section("second") },
		"invalid value for: mode":         func(m *Message) { s, _ := m.Sub("children"); s2, _ := s.Sub("net"); s2.Set("mode", "beet") },
		"invalid value for: auth":         func(m *Message) { s, _ := m.Sub("local"); s.Set("auth", "eap-mschapv2") },
		"invalid value for: remote_addrs": func(m *Message) { m.SetList("remote_addrs", []string{"192.0.2.2", "192.0.2.3"}) },
	} {
		_, resp := c.command("load-conn", conn(mod))
		if str(resp, "success") != "no" || !strings.HasPrefix(str(resp, "errmsg"), want) {
			t.Errorf("%s: %s %q", want, str(resp, "success"), str(resp, "errmsg"))
		}
	}
	req := NewMessage()
	req.Section("site").Set("version", "2")
	if _, resp := c.command("load-conn", req); !strings.Contains(str(resp, "errmsg"), "defined in iked's configuration file") {
		t.Errorf("load-conn over a file connection: %q", str(resp, "errmsg"))
	}
	if len(p.a.Connections()) != 1 || p.loaded != nil {
		t.Fatalf("refused loads changed the connections: %d", len(p.a.Connections()))
	}
	_, resp := c.command("load-conn", conn(func(*Message) {}))
	if str(resp, "success") != "yes" || len(p.a.Connections()) != 2 {
		t.Fatalf("load-conn: %q, %d connections", str(resp, "errmsg"), len(p.a.Connections()))
	}
	_, resp = c.command("get-conns", nil)
	if l, _ := resp.List("conns"); len(l) != 1 || l[0] != "lab" {
		t.Fatalf("get-conns: %v", l)
	}
	_, resp = c.command("unload-conn", NewMessage().Set("name", "lab"))
	if str(resp, "success") != "yes" || len(p.a.Connections()) != 1 {
		t.Fatalf("unload-conn: %q, %d connections", str(resp, "errmsg"), len(p.a.Connections()))
	}
}
