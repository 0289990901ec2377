// Package vmtest boots a QEMU guest with Debian 12's own kernel for tests
// of the kernel IPsec data plane.
//
// The kernels CI and developers run on may lack ESP, AH, XFRM interfaces or
// PF_KEY (this project's build machines have XFRM policies but none of
// those). Debian's 6.1 kernel has all of them as modules. The package
// downloads that kernel's package with apt-get download and unpacks it with
// dpkg -x into a cache directory (it is never installed as the host's
// kernel), extracts the uncompressed image so that QEMU boots it through its
// PVH entry point, and builds a small initramfs (busybox and the modules
// the guest needs at once). The guest's root file system is the host's /,
// shared read-only over virtio-9p under a writable tmpfs overlay: the guest
// runs the freshly built iked, the test binary itself, and the host's
// charon, pluto, ip, tcpdump and tshark, and what it writes never reaches
// the host. A second share, read-write, carries the command in and the
// results out.
//
// Image.Run runs one shell script in a fresh guest and returns its exit
// status, its console and the shared directory; RunTests runs the calling
// test binary inside the guest and reports each test it ran there as a
// subtest on the host, so that one boot serves a group of tests. Guest
// tests find themselves in the guest with InGuest.
//
// QEMU uses KVM when the host's CPU offers hardware virtualisation and
// /dev/kvm is usable, else TCG (software emulation): correct, but a boot
// takes several seconds and traffic through kernel ESP runs at tens of
// Mbit/s, so tests in the guest assert what happened, never how fast.
// Every guest is bounded in time and QEMU is killed by its PID.
//
// Requirements on the host (Debian packages): qemu-system-x86,
// busybox-static, kmod, cpio, xz-utils, and apt with package lists (for
// apt-get download). Require turns a missing one into a skip, or a failure
// under CI=true.
package vmtest
