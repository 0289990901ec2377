package kerberos

import (
	"strings"
	"testing"

	"github.com/iked/iked/ike/wire"
)

func TestKDCAddressesAreTheKDCsGivenAsIPAddresses(t *testing.T) {
	got := kdcAddresses([]string{"10.0.0.88", "10.0.0.89:88", "[2001:db8::88]:88", "kdc.example.test:88", "10.0.0.88:750"})
	want := []string{"10.0.0.88", "10.0.0.89", "2001:db8::88"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("got %v, want %v", got, want)
		}
	}
}

func TestLocalIdentityNamesThePrincipalAsThePeerChecksIt(t *testing.T) {
	for name, want := range map[string]string{"host/a.example.test": "fqdn:a.example.test", "ipsec/a.example.test": "keyid:ipsec/a.example.test@R.TEST", "host/a/b": "keyid:host/a/b@R.TEST"} {
		m := &Method{principal: Principal{Name: name, Realm: "R.TEST"}}
		if got := m.PrincipalIdentity(); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
		if !names(&wire.ID{IDType: map[bool]wire.IDType{true: wire.IDFQDN, false: wire.IDKeyID}[strings.HasPrefix(want, "fqdn:")], Data: []byte(want[strings.Index(want, ":")+1:])}, m.principal) {
			t.Errorf("%s: the identity %s does not name the principal for the peer's check", name, want)
		}
	}
}
