package vmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCPIOReadByCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		Missing(t, "cpio not found (Debian package cpio)")
	}
	a := newCPIO()
	a.file("bin/busybox", 0o755, []byte("#!/bin/sh\necho hi\n"))
	a.symlink("bin/sh", "busybox")
	a.file("etc/modules.load", 0o644, []byte("x\n"))
	a.file("odd", 0o600, []byte("12345")) // a length that needs padding
	a.dir("empty/dir")
	var buf bytes.Buffer
	if err := a.writeTo(&buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-id", "--quiet")
	cmd.Dir, cmd.Stdin = dir, &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -id: %v: %s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "odd")); err != nil || string(b) != "12345" {
		t.Errorf("odd: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "bin/busybox")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/busybox: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || target != "busybox" {
		t.Errorf("bin/sh -> %q %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "empty/dir")); err != nil || !fi.IsDir() {
		t.Errorf("empty/dir: %v", err)
	}
}

func TestSplitPattern(t *testing.T) {
	for p, want := range map[string][]string{
		"":                 nil,
		"TestX":            {"TestX"},
		"TestX/a/b":        {"TestX", "a", "b"},
		"Test(X|Y/z)/[/]a": {"Test(X|Y/z)", "[/]a"},
		`TestX\/y/z`:       {`TestX\/y`, "z"},
	} {
		if got := splitPattern(p); !reflect.DeepEqual(got, want) {
			t.Errorf("splitPattern(%q) = %q, want %q", p, got, want)
		}
	}
}

// helperEnv makes TestHelperOutput produce output for TestParseTestOutput.
const helperEnv = "IKED_VMTEST_HELPER_OUTPUT"

// TestHelperOutput does nothing unless run by TestParseTestOutput.
func TestHelperOutput(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("run by TestParseTestOutput")
	}
	t.Log("top line")
	t.Run("a", func(t *testing.T) {
		t.Log("in a\nsecond line")
		t.Run("deep", func(t *testing.T) { t.Error("deep fails") })
	})
	t.Run("b", func(t *testing.T) { t.Skip("b skips because") })
	t.Run("c", func(t *testing.T) { t.Log("--- FAIL: not a frame") })
}

// TestParseTestOutput parses what this very binary prints for
// TestHelperOutput with -test.v=test2json.
func TestParseTestOutput(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperOutput$", "-test.v=test2json")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, _ := cmd.CombinedOutput() // it fails, by design
	tests := parseTestOutput(string(out))
	top := tests["TestHelperOutput"]
	if top == nil {
		t.Fatalf("no TestHelperOutput in:\n%s", out)
	}
	var names []string
	for _, c := range top.children {
		names = append(names, c.name+"="+c.status)
	}
	if want := []string{"TestHelperOutput/a=FAIL", "TestHelperOutput/b=SKIP", "TestHelperOutput/c=PASS"}; !reflect.DeepEqual(names, want) {
		t.Errorf("children %q, want %q", names, want)
	}
	if top.status != "FAIL" || !strings.Contains(strings.Join(top.output, "\n"), "top line") {
		t.Errorf("top: %+v", top)
	}
	a := tests["TestHelperOutput/a"]
	if len(a.children) != 1 || a.children[0].status != "FAIL" || !strings.Contains(strings.Join(a.children[0].output, "\n"), "deep fails") {
		t.Errorf("a/deep: %+v", a.children)
	}
	if !strings.Contains(strings.Join(a.output, "\n"), "second line") {
		t.Errorf("a's output: %q", a.output)
	}
	if c := tests["TestHelperOutput/c"]; !strings.Contains(strings.Join(c.output, "\n"), "--- FAIL: not a frame") {
		t.Errorf("c's output %q", c.output)
	}
}

// TestGuest boots a guest and checks, inside it, what the kernel data
// plane tests rely on: Debian's kernel with ESP, AH, XFRM interfaces and
// PF_KEY, the host's binaries, a private writable /tmp and the host's /
// on /host.
func TestGuest(t *testing.T) {
	if InGuest() {
		guestChecks(t)
		return
	}
	img := Require(t)
	exe, _ := os.Executable()
	res := RunTests(t, img, TestRun{Timeout: 5 * time.Minute, Env: map[string]string{
		"VMTEST_WANT_KERNEL": img.Kernel.Version, "VMTEST_HOST_EXE": exe,
	}})
	if !strings.Contains(res.Console, markerReady) {
		t.Errorf("no %s on the console", markerReady)
	}
}

func guestChecks(t *testing.T) {
	run := func(t *testing.T, argv ...string) string {
		t.Helper()
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
		}
		return string(out)
	}
	t.Run("kernel", func(t *testing.T) {
		if got := strings.TrimSpace(run(t, "uname", "-r")); got != os.Getenv("VMTEST_WANT_KERNEL") {
			t.Errorf("uname -r %q, want %q", got, os.Getenv("VMTEST_WANT_KERNEL"))
		}
		if _, err := os.Stat("/proc/net/pfkey"); err != nil {
			t.Errorf("no PF_KEY: %v", err)
		}
	})
	t.Run("esp-ah-xfrmi", func(t *testing.T) {
		ns := "vmtest-" + time.Now().Format("150405")
		run(t, "ip", "netns", "add", ns)
		defer exec.Command("ip", "netns", "del", ns).Run()
		ipn := func(args ...string) string { return run(t, append([]string{"ip", "-n", ns}, args...)...) }
		ipn("xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "spi", "0x1000", "mode", "tunnel",
			"aead", "rfc4106(gcm(aes))", "0x0102030405060708090a0b0c0d0e0f1011121314", "128")
		ipn("xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "esp", "spi", "0x1001", "mode", "transport",
			"aead", "rfc7539esp(chacha20,poly1305)", "0x"+strings.Repeat("ab", 36), "128")
		ipn("xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", "ah", "spi", "0x1002", "mode", "tunnel",
			"auth", "hmac(sha256)", "0x"+strings.Repeat("cd", 32))
		if out := ipn("xfrm", "state"); strings.Count(out, "src 192.0.2.1") != 3 {
			t.Errorf("ip xfrm state:\n%s", out)
		}
		ipn("link", "add", "xfrmi7", "type", "xfrm", "dev", "lo", "if_id", "7")
		if out := ipn("-d", "link", "show", "xfrmi7"); !strings.Contains(out, "if_id 0x7") {
			t.Errorf("xfrm interface:\n%s", out)
		}
	})
	t.Run("filesystems", func(t *testing.T) {
		if _, err := os.Stat(GuestPath(os.Getenv("VMTEST_HOST_EXE"))); err != nil {
			t.Errorf("the host's test binary through /host: %v", err)
		}
		if _, err := exec.LookPath("ip"); err != nil {
			t.Errorf("host binaries: %v", err)
		}
		if err := os.WriteFile("/etc/vmtest-probe", []byte("x"), 0o644); err != nil {
			t.Errorf("the overlay root is not writable: %v", err)
		}
		if _, err := os.Stat(GuestPath("/etc/vmtest-probe")); err == nil {
			t.Error("a file written in the guest reached the host's /etc")
		}
		if err := os.WriteFile("/mnt/probe", []byte("x"), 0o644); err != nil {
			t.Errorf("the share is not writable: %v", err)
		}
	})
}

// TestRunExitStatus: a script's exit status and the files it writes to the
// share come back.
func TestRunExitStatus(t *testing.T) {
	if InGuest() {
		t.Skip("host only")
	}
	img := Require(t)
	res, err := img.Run(t.Context(), Config{Script: "echo \"$GREETING\" > /mnt/hello\nexit 3\n", Env: map[string]string{"GREETING": "it's here"},
		Timeout: 3 * time.Minute, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(res.Share)
	t.Logf("ready after %v, %v in all (%s)", res.Ready.Round(10*time.Millisecond), res.Total.Round(10*time.Millisecond), res.Accel)
	if res.ExitCode != 3 {
		t.Errorf("exit status %d, want 3; console:\n%s", res.ExitCode, tail(res.Console, 3000))
	}
	if b, err := os.ReadFile(filepath.Join(res.Share, "hello")); err != nil || string(b) != "it's here\n" {
		t.Errorf("share: %q %v", b, err)
	}
}
