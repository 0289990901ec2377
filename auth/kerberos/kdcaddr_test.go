package kerberos

import "testing"

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
