package kdctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestRealm checks the throwaway realm with MIT's own client tools.
func TestRealm(t *testing.T) {
	k := Start(t, "EXAMPLE.TEST")
	kt := k.AddHost("host/a.example.test", filepath.Join(k.Dir, "a.keytab"))
	k.AddHost("host/b.example.test", filepath.Join(k.Dir, "b.keytab"))
	for _, args := range [][]string{{"kinit", "-k", "-t", kt, "host/a.example.test"}, {"kvno", "host/b.example.test"}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = k.Env()
		if out, err := cmd.CombinedOutput(); err != nil {
			if _, lerr := exec.LookPath(args[0]); lerr != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s not installed (krb5-user): CI must install it", args[0])
				}
				t.Skipf("%s not installed (krb5-user)", args[0])
			}
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
}
