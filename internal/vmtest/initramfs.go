package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// bootModules are loaded by the initramfs before anything else: the 9p
// root and the share, the overlay, and the IPsec stack, so that no test
// depends on module autoloading (which also works: /sbin/modprobe reads
// the kernel's module tree, bound on /lib/modules). drbg must be there:
// seqiv and echainiv need the default RNG "stdrng", and without it adding
// an ESP SA fails with "Kernel was unable to initialize cryptographic
// operations".
var bootModules = []string{
	"virtio_pci", "virtio_rng", "9p", "9pnet_virtio", "overlay", "veth", "dummy", "tun",
	"xfrm_user", "af_key", "esp4", "esp6", "ah4", "ah6", "xfrm_interface", "xfrm4_tunnel", "xfrm6_tunnel",
	"ipcomp", "ipcomp6", "ip_vti", "ip6_vti",
	"gcm", "ghash-generic", "ghash-clmulni-intel", "aesni-intel", "ccm", "ctr", "authenc", "authencesn",
	"echainiv", "seqiv", "sha256_generic", "sha512_generic", "sha1_generic", "cmac", "xcbc",
	"chacha20poly1305", "chacha-x86_64", "chacha_generic", "poly1305-x86_64", "poly1305_generic",
	"des3_ede-x86_64", "des_generic", "drbg",
}

// Guest console markers.
const (
	markerInit  = "VMTEST-INIT"     // the initramfs runs
	markerReady = "VMTEST-READY"    // the host's root is mounted: the script starts
	markerExit  = "VMTEST-EXIT"     // followed by the script's exit status
	markerFail  = "VMTEST-FAILBOOT" // the initramfs could not set the root up
)

// initScript is the initramfs's /init (busybox sh). It loads the modules,
// mounts the host's / (9p tag root9p, read-only) under a tmpfs overlay as
// the new root, the Debian module tree on /lib/modules, the host's / again
// on /host (its /tmp included), fresh tmpfs on /run and /tmp, the share
// (tag share) on /mnt, and switch_roots into stage 2, which runs the
// script given as vmtest.run and reports its status on the console and
// through isa-debug-exit.
const initScript = `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
echo "` + markerInit + ` $(cut -d' ' -f1 /proc/uptime)"
while read -r m; do insmod "$m" 2>/dev/null || echo "VMTEST-INSMOD-FAIL $m"; done < /etc/modules.load
RUN=; MODDIR=
for a in $(cat /proc/cmdline); do case $a in
  vmtest.run=*) RUN=${a#vmtest.run=};;
  vmtest.moddir=*) MODDIR=${a#vmtest.moddir=};;
esac; done
fail() { echo "` + markerFail + ` $*"; echo 1 > /proc/sys/kernel/sysrq; echo o > /proc/sysrq-trigger; sleep 10; }
mkdir -p /lower /upper /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose root9p /lower || fail "mount root9p"
mount -t tmpfs -o size=60% tmpfs /upper && mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || fail "overlay"
for d in proc sys dev; do mkdir -p /newroot/$d; mount --move /$d /newroot/$d; done
mkdir -p /newroot/lib/modules /newroot/host /newroot/run /newroot/tmp /newroot/mnt /newroot/dev/pts /newroot/dev/shm
mount --bind "/lower$MODDIR" /newroot/lib/modules || fail "module tree $MODDIR"
mount --bind /lower /newroot/host
mount -t tmpfs tmpfs /newroot/run; mount -t tmpfs tmpfs /newroot/tmp; chmod 1777 /newroot/tmp
mount -t devpts devpts /newroot/dev/pts; mount -t tmpfs tmpfs /newroot/dev/shm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 share /newroot/mnt || fail "mount share"
cp /stage2 /newroot/run/vmtest-stage2
exec switch_root /newroot /bin/sh /run/vmtest-stage2 "$RUN"
`

// stage2Script runs in the host's root (dash, the host's tools).
const stage2Script = `export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mkdir -p /run/netns /run/lock
echo /sbin/modprobe > /proc/sys/kernel/modprobe
echo "` + markerReady + ` $(cut -d' ' -f1 /proc/uptime)"
sh "$1"; rc=$?
echo "` + markerExit + ` $rc $(cut -d' ' -f1 /proc/uptime)"
sync
printf "\\$(printf %o $((rc & 0x7f)))" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
echo 1 > /proc/sys/kernel/sysrq; echo o > /proc/sysrq-trigger
sleep 10
`

// busyboxPath is Debian's busybox-static.
const busyboxPath = "/bin/busybox"

// buildInitramfs writes the initramfs for k into the cache, named by a
// hash of what goes into it, and returns its path. The caller holds the
// cache lock.
func buildInitramfs(ctx context.Context, cache string, k *Kernel) (string, error) {
	bb, err := os.ReadFile(busyboxPath)
	if err != nil {
		return "", fmt.Errorf("busybox: %w (install busybox-static)", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", k.Version, initScript, stage2Script, strings.Join(bootModules, ","))
	h.Write(bb)
	out := filepath.Join(cache, "initramfs-"+hex.EncodeToString(h.Sum(nil))[:16]+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}

	a := newCPIO()
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "etc", "lower", "upper", "newroot"} {
		a.dir(d)
	}
	a.file("bin/busybox", 0o755, bb)
	list, err := exec.CommandContext(ctx, busyboxPath, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			a.symlink("bin/"+applet, "busybox")
		}
	}
	a.file("init", 0o755, []byte(initScript))
	a.file("stage2", 0o755, []byte(stage2Script))

	paths, err := moduleFiles(ctx, k, bootModules)
	if err != nil {
		return "", err
	}
	var load bytes.Buffer
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		rel := "/lib/modules/" + k.Version + "/" + filepath.Base(p)
		a.file(rel, 0o644, data)
		load.WriteString(rel + "\n")
	}
	a.file("etc/modules.load", 0o644, load.Bytes())

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = a.writeTo(w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	// Older archives of other contents are of no further use.
	old, _ := filepath.Glob(filepath.Join(cache, "initramfs-*.cpio"))
	for _, o := range old {
		os.Remove(o)
	}
	return out, os.Rename(tmp, out)
}

// moduleFiles resolves modules and their dependencies, in load order,
// with modprobe --show-depends over the unpacked tree. Built-in modules
// need no file.
func moduleFiles(ctx context.Context, k *Kernel, names []string) ([]string, error) {
	var paths []string
	seen := map[string]bool{}
	for _, m := range names {
		out, err := exec.CommandContext(ctx, "modprobe", "-d", k.Root, "-S", k.Version, "--show-depends", m).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("modprobe --show-depends %s: %v: %s", m, err, lastLines(out, 2))
		}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "insmod" || seen[f[1]] {
				continue
			}
			seen[f[1]] = true
			paths = append(paths, f[1])
		}
	}
	return paths, nil
}
