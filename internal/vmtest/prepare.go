package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables.
const (
	// GuestEnv is set to "1" in the guest's environment by RunTests.
	GuestEnv = "IKED_VMTEST_GUEST"
	// CacheEnv overrides the cache directory (default: the user's cache
	// directory, e.g. /root/.cache/iked-vmtest).
	CacheEnv = "IKED_VMTEST_CACHE"
	// AccelEnv forces the accelerator: "kvm" or "tcg".
	AccelEnv = "IKED_VMTEST_ACCEL"
)

// InGuest reports whether this process runs inside a guest started by
// RunTests.
func InGuest() bool { return os.Getenv(GuestEnv) == "1" }

// CacheDir is where kernels, packages and initramfs images are kept
// between runs.
func CacheDir() (string, error) {
	if d := os.Getenv(CacheEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "iked-vmtest"), nil
}

// Accel picks QEMU's accelerator: KVM when the CPU offers hardware
// virtualisation (vmx or svm) and /dev/kvm opens, else TCG. A /dev/kvm
// without vmx/svm in the CPU flags is a paravirtual KVM (e.g. kvm_pvm in a
// sandbox) that runs only kernels built as its guests: a stock kernel
// never boots there.
func Accel() string {
	switch a := os.Getenv(AccelEnv); a {
	case "kvm", "tcg":
		return a
	}
	info, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "tcg"
	}
	hw := false
	for _, l := range strings.Split(string(info), "\n") {
		if strings.HasPrefix(l, "flags") {
			for _, f := range strings.Fields(l) {
				if f == "vmx" || f == "svm" {
					hw = true
				}
			}
			break
		}
	}
	if !hw {
		return "tcg"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	f.Close()
	return "kvm"
}

// Lock takes the cache's lock (flock on cache/lock), so that test
// processes running in parallel prepare the cache one at a time; the
// returned function releases it.
func Lock(cache string) (func(), error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(cache, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// hostTools are the programs Prepare and Run need on the host, with the
// Debian package of each.
var hostTools = [][2]string{
	{"qemu-system-x86_64", "qemu-system-x86"}, {"modprobe", "kmod"}, {"depmod", "kmod"},
	{"apt-get", "apt"}, {"apt-cache", "apt"}, {"dpkg", "dpkg"}, {"xz", "xz-utils"},
}

// Prepare readies the guest's kernel and initramfs in the cache: the
// kernel package downloaded and unpacked on first use (~70 MB), its
// modules indexed, the initramfs built. Later calls find them ready.
func Prepare(ctx context.Context, cache string) (*Image, error) {
	for _, t := range hostTools {
		if _, err := exec.LookPath(t[0]); err != nil {
			return nil, fmt.Errorf("%s not found (Debian package %s)", t[0], t[1])
		}
	}
	if _, err := os.Stat(busyboxPath); err != nil {
		return nil, fmt.Errorf("%s not found (Debian package busybox-static)", busyboxPath)
	}
	unlock, err := Lock(cache)
	if err != nil {
		return nil, err
	}
	defer unlock()
	k, err := prepareKernel(ctx, cache)
	if err != nil {
		return nil, err
	}
	initrd, err := buildInitramfs(ctx, cache, k)
	if err != nil {
		return nil, err
	}
	return &Image{Kernel: k, Initramfs: initrd, Accel: Accel()}, nil
}

// underCI reports whether the tests run in CI (CI=true), where a missing
// requirement fails a test instead of skipping it.
func underCI() bool { return os.Getenv("CI") == "true" }

// Missing stops a test whose requirement is not met: t.Fatal under
// CI=true, t.Skip otherwise, with a one-line reason.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if underCI() {
		t.Fatal("VM test requirement missing (CI=true, not skipping): " + reason)
	}
	t.Skip("VM test requirement missing: " + reason)
}

var (
	prepOnce sync.Once
	prepImg  *Image
	prepErr  error
	prepTime time.Duration
)

// Require returns the prepared guest image, preparing it once per test
// process, or stops the test (Missing) when the host cannot run guests:
// not root (the guest reads the host's whole / over 9p), a tool or the
// kernel package missing.
func Require(t testing.TB) *Image {
	t.Helper()
	if InGuest() {
		t.Fatal("vmtest.Require called inside the guest")
	}
	if os.Geteuid() != 0 {
		Missing(t, "needs root: the guest's root is the host's / shared over 9p (euid %d)", os.Geteuid())
	}
	prepOnce.Do(func() {
		cache, err := CacheDir()
		if err != nil {
			prepErr = err
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		prepImg, prepErr = Prepare(ctx, cache)
		prepTime = time.Since(start)
	})
	if prepErr != nil {
		Missing(t, "%v", prepErr)
	}
	t.Logf("guest: kernel %s (%s), initramfs %s, accelerator %s; prepared in %v",
		prepImg.Kernel.Version, filepath.Base(prepImg.Kernel.Image), filepath.Base(prepImg.Initramfs), prepImg.Accel, prepTime.Round(time.Millisecond))
	return prepImg
}
