package sambaad

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// TestDomainController: the restored DC issues tickets to its machine
// accounts (kinit with the exported keytab, from a namespace linked to
// it), serves LDAP with the Windows IPsec policy objects, takes LDIF
// changes, and stops and starts again.
func TestDomainController(t *testing.T) {
	dc := Start(t, Options{Hosts: []string{"left", "right"}, ComputersReadIPsec: true}) // the options of the interop tests: one provisioning for both
	peer := "sadt-peer"
	_ = exec.Command("ip", "netns", "del", peer).Run()
	if out, err := exec.Command("ip", "netns", "add", peer).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", peer).Run() })
	dc.Connect(peer, netip.MustParsePrefix("10.81.0.1/24"), netip.MustParsePrefix("10.81.0.2/24"))
	kinit := func() error {
		cmd := exec.Command("ip", "netns", "exec", peer, "kinit", "-k", "-t", dc.Keytab("left"), dc.Principal("left"))
		cmd.Env = []string{"KRB5_CONFIG=" + dc.KRB5Conf, "KRB5CCNAME=FILE:" + dc.Dir + "/cc.left"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return &exec.ExitError{Stderr: out}
		}
		return nil
	}
	if err := kinit(); err != nil {
		t.Fatalf("kinit as %s: %v %s\n%s", dc.Principal("left"), err, err.(*exec.ExitError).Stderr, dc.Log())
	}
	out, err := dc.Run("ldbsearch", "-H", "ldap://10.81.0.1", "-U", dc.NetBIOS+"\\Administrator%"+dc.AdminPassword,
		"-b", "CN=IP Security,CN=System,"+dc.BaseDN(), "(objectClass=ipsecPolicy)", "ipsecName")
	if err != nil || strings.Count(out, "ipsecName:") != 3 {
		t.Fatalf("the three default policies: %v\n%s", err, out)
	}
	if err := dc.LDIF("dn: CN=ipsecFilter{1CEDC0DE-0000-4000-8000-000000000009},CN=IP Security,CN=System," + dc.BaseDN() + "\nobjectClass: ipsecFilter\nipsecName: test\n"); err != nil {
		t.Fatal(err)
	}
	dc.Stop()
	if err := kinit(); err == nil {
		t.Fatal("kinit works with the DC stopped")
	}
	dc.Restart()
	if err := kinit(); err != nil {
		t.Fatalf("kinit after the restart: %s", err.(*exec.ExitError).Stderr)
	}
}
