package gpipsec

import (
	"os"
	"strings"
	"testing"
)

// provisionLDIF is Samba's provisioning data (Debian package
// samba-ad-provision): the 22 IPsec policy objects every Samba AD domain
// starts with, Windows' own default policies.
const provisionLDIF = "/usr/share/samba/setup/provision.ldif"

// testDomainDN is what ${DOMAINDN} becomes in these tests.
const testDomainDN = "DC=ad,DC=example,DC=test"

// ipsecContainer is CN=IP Security of the test domain.
const ipsecContainer = "CN=IP Security,CN=System," + testDomainDN

func provisioned(t testing.TB) *Directory {
	t.Helper()
	f, err := os.Open(provisionLDIF)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (Debian package samba-ad-provision)", err)
		}
		t.Skipf("no %s (Debian package samba-ad-provision)", provisionLDIF)
	}
	defer f.Close()
	objs, err := ReadLDIF(f, map[string]string{"DOMAINDN": testDomainDN})
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDirectory(objs)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// dn returns the DN of the provisioned object class{GUID}.
func dn(class, guid string) string { return "CN=" + class + guid + "," + ipsecContainer }

func obj(t *testing.T, d *Directory, class, guid string) *Object {
	t.Helper()
	o := d.Object(dn(class, guid))
	if o == nil {
		t.Fatalf("no %s%s in the provisioned objects", class, guid)
	}
	return o
}

func TestProvisionedObjectsAllDecode(t *testing.T) {
	d := provisioned(t)
	if n := len(d.Objects()); n != 22 {
		t.Fatalf("%d IPsec objects in %s, want 22", n, provisionLDIF)
	}
	for _, o := range d.Objects() {
		_, err := DecodeAny(o)
		// The "Version Information Object" is an ipsecNFA whose blob is
		// of another type (its GUID is {6A1F5C6F-…}): it is refused, and
		// no policy references it.
		if strings.Contains(o.DN, "6A1F5C6F") {
			if err == nil || !strings.Contains(err.Error(), o.DN) || !strings.Contains(err.Error(), "NFA-Policy-ID is {6A1F5C6F-72B7-11D2-ACF0-0060B0ECCA17}") {
				t.Errorf("version object: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v", err)
		}
	}
	for _, name := range []string{"Client (Respond Only)", "Server (Request Security)", "Secure Server (Require Security)"} {
		if _, err := d.Resolve(name); err != nil {
			t.Errorf("resolve %q: %v", name, err)
		}
	}
}
