package vmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Kernel is a Debian kernel package unpacked into the cache.
type Kernel struct {
	// Package is the Debian package, e.g. linux-image-6.1.0-57-amd64.
	Package string
	// Version is the kernel release (uname -r), e.g. 6.1.0-57-amd64.
	Version string
	// Root is where the package was unpacked (dpkg -x).
	Root string
	// Image is what QEMU boots: the uncompressed ELF (PVH entry), or the
	// bzImage when it could not be extracted.
	Image string
	// Modules is the module tree, Root/lib/modules/Version, indexed by
	// depmod.
	Modules string
}

// KernelPackageEnv names a kernel package to use instead of the one
// linux-image-amd64 depends on (e.g. linux-image-6.1.0-57-amd64).
const KernelPackageEnv = "IKED_VMTEST_KERNEL_PKG"

// kernelPackage is the package of Debian's current 6.1 kernel: the one the
// linux-image-amd64 metapackage depends on.
func kernelPackage(ctx context.Context) (string, error) {
	if p := os.Getenv(KernelPackageEnv); p != "" {
		return p, nil
	}
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if p, ok := strings.CutPrefix(l, "Depends: "); ok && strings.HasPrefix(p, "linux-image-6.1.") && strings.HasSuffix(p, "-amd64") {
			return p, nil
		}
	}
	return "", errors.New("apt-cache knows no linux-image-6.1.*-amd64 for linux-image-amd64 (is this Debian 12 with package lists? run apt-get update)")
}

// UnpackPackage downloads a Debian package with apt-get download and
// unpacks it with dpkg -x into cache/pkg/NAME, once; it is never installed.
// It returns the directory. The caller holds the cache lock.
func UnpackPackage(ctx context.Context, cache, name string) (string, error) {
	dir := filepath.Join(cache, "pkg", name)
	ready := filepath.Join(dir, ".unpacked")
	if _, err := os.Stat(ready); err == nil {
		return dir, nil
	}
	dl := filepath.Join(cache, "dl")
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return "", err
	}
	// apt-get download writes into the working directory.
	old, _ := filepath.Glob(filepath.Join(dl, name+"_*.deb"))
	for _, f := range old {
		os.Remove(f)
	}
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", name)
	cmd.Dir = dl
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %v: %s", name, err, lastLines(out, 3))
	}
	debs, _ := filepath.Glob(filepath.Join(dl, name+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s: found %d .deb files", name, len(debs))
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if out, err := exec.CommandContext(ctx, "dpkg", "-x", debs[0], tmp).CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("dpkg -x %s: %v: %s", debs[0], err, lastLines(out, 3))
	}
	os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	// The package file is not needed once unpacked.
	os.Remove(debs[0])
	return dir, os.WriteFile(ready, nil, 0o644)
}

// prepareKernel unpacks Debian's 6.1 kernel into the cache (once), indexes
// its modules and extracts the uncompressed image. The caller holds the
// cache lock.
func prepareKernel(ctx context.Context, cache string) (*Kernel, error) {
	pkg, err := kernelPackage(ctx)
	if err != nil {
		return nil, err
	}
	root, err := UnpackPackage(ctx, cache, pkg)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Package: pkg, Version: strings.TrimPrefix(pkg, "linux-image-"), Root: root}
	k.Modules = filepath.Join(root, "lib", "modules", k.Version)
	if _, err := os.Stat(k.Modules); err != nil {
		return nil, fmt.Errorf("%s has no modules for %s: %w", pkg, k.Version, err)
	}
	// The package ships no modules.dep: depmod indexes the tree, for
	// module dependencies here and for modprobe in the guest.
	if _, err := os.Stat(filepath.Join(k.Modules, "modules.dep.bin")); err != nil {
		if out, err := exec.CommandContext(ctx, "depmod", "-b", root, k.Version).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("depmod -b %s %s: %v: %s", root, k.Version, err, lastLines(out, 3))
		}
	}
	bz := filepath.Join(root, "boot", "vmlinuz-"+k.Version)
	elf := filepath.Join(root, "boot", "vmlinux-"+k.Version)
	if _, err := os.Stat(elf); err != nil {
		if err := extractVmlinux(ctx, bz, elf); err != nil {
			// The bzImage boots too, through the BIOS and the kernel's own
			// decompressor: several seconds slower under emulation.
			k.Image = bz
			return k, nil
		}
	}
	k.Image = elf
	return k, nil
}

// xzMagic starts an xz stream (Debian compresses the bzImage payload with xz).
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// extractVmlinux writes the uncompressed ELF kernel inside a bzImage to
// out. QEMU boots it through its PVH note (CONFIG_PVH), which skips the
// BIOS, real-mode set-up and the in-guest decompression: under TCG that
// is ~4 s to /init instead of ~10 s.
func extractVmlinux(ctx context.Context, bzImage, out string) error {
	data, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	i := bytes.Index(data, xzMagic)
	if i < 0 {
		return fmt.Errorf("%s: no xz payload", bzImage)
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// --single-stream ignores what follows the payload in the bzImage.
	cmd := exec.CommandContext(ctx, "xz", "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(data[i:])
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("xz -d: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	head := make([]byte, 4)
	if g, err := os.Open(tmp); err == nil {
		_, _ = g.Read(head)
		g.Close()
	}
	if string(head) != "\x7fELF" {
		return fmt.Errorf("%s: the payload is not an ELF image", bzImage)
	}
	return os.Rename(tmp, out)
}

// lastLines returns the last n lines of a command's output, for errors.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
