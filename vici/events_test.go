package vici

import (
	"context"
	"testing"
)

// TestUpDownEvents: a client registered for ike-updown and child-updown
// hears the SA come up (IKE first, then its Child SA, both "up") and go
// down (the Child SA first, then the IKE SA), with the fields of list-sa.
func TestUpDownEvents(t *testing.T) {
	p := newPair(t)
	mon := p.dial(t)
	mon.register("ike-updown")
	mon.register("child-updown")
	sas, err := p.a.Initiate(context.Background(), "site")
	if err != nil {
		t.Fatal(err)
	}
	up := mon.waitEvent("ike-updown")
	if str(up, "up") != "yes" || str(up, "site", "state") != "ESTABLISHED" || str(up, "site", "initiator-spi") != sas[0].SPIi {
		t.Fatalf("ike-updown up: %v", up.Keys())
	}
	cu := mon.waitEvent("child-updown")
	cs, _ := cu.Sub("site")
	children, _ := cs.Sub("child-sas")
	if str(cu, "up") != "yes" || len(children.Keys()) != 1 {
		t.Fatalf("child-updown up: %v", children.Keys())
	}
	child, _ := children.Sub(children.Keys()[0])
	if str(child, "spi-in") != sas[0].Children[0].SPIIn || str(child, "state") != "INSTALLED" {
		t.Fatalf("child-updown child: spi-in %q", str(child, "spi-in"))
	}
	if _, err := p.a.Terminate(context.Background(), sas[0].ID); err != nil {
		t.Fatal(err)
	}
	cd := mon.waitEvent("child-updown")
	if str(cd, "up") != "" {
		t.Fatal("child-updown after terminate says up")
	}
	id := mon.waitEvent("ike-updown")
	if str(id, "up") != "" || str(id, "site", "uniqueid") != "1" {
		t.Fatalf("ike-updown down: up=%q uniqueid=%q", str(id, "up"), str(id, "site", "uniqueid"))
	}
}
