package ike

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"

	"github.com/iked/iked/ike/wire"
)

func TestDNIdentity(t *testing.T) {
	id, err := ParseIdentity("C=CH, O=Example Org, CN=gw.example")
	if err != nil {
		t.Fatal(err)
	}
	if id.Type != wire.IDDERASN1DN || id.String() != "dn:C=CH, O=Example Org, CN=gw.example" {
		t.Fatalf("parsed %v (%d)", id, id.Type)
	}
	// The same DN encoded by crypto/x509 (other string types), and in
	// RFC 4514's reversed order, matches; another CN does not.
	der, _ := asn1.Marshal(pkix.Name{Country: []string{"CH"}, Organization: []string{"Example Org"}, CommonName: "gw.example"}.ToRDNSequence())
	if !id.Matches(&wire.ID{IDType: wire.IDDERASN1DN, Data: der}) {
		t.Error("same DN from crypto/x509 does not match")
	}
	rev, _ := ParseIdentity("dn:CN=gw.example,O=Example Org,C=CH")
	if !id.Matches(rev.Payload(false)) {
		t.Error("reversed order does not match")
	}
	other, _ := ParseIdentity("dn:C=CH, O=Example Org, CN=other.example")
	if id.Matches(other.Payload(false)) {
		t.Error("a different CN matches")
	}
	if _, err := ParseIdentity("dn:CN=x, XX=y"); err == nil {
		t.Error("unknown attribute accepted")
	}
	esc, err := ParseIdentity(`dn:O=Example\, Inc, CN=gw`)
	if err != nil || esc.String() != `dn:O=Example\, Inc, CN=gw` {
		t.Errorf("escaped comma: %v %v", esc, err)
	}
}
