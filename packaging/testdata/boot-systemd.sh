#!/bin/sh
# Boots systemd as the service manager of a throwaway container and runs
# iked.service in it, for TestUnitUnderSystemd. Run as PID 1 of new PID,
# mount, network, UTS, IPC and cgroup namespaces (unshare --fork), with
#   $1  an empty directory for the container's files (not under /tmp)
#   $2  the iked .deb to install in it
# The container's root is an overlay of the host's /: everything it writes
# (the package, systemd's cleaning of /tmp at boot) lands in $1/upper, and
# the host's files stay as they are. It boots iked-test.target: iked.service
# and what systemd itself needs, none of the host's other services.
set -eu
base=$1
deb=$2
r=$base/root
mkdir -p "$base/upper" "$base/work" "$r"
mount -t overlay overlay -o "lowerdir=/,upperdir=$base/upper,workdir=$base/work" "$r"
mount -t proc proc "$r/proc"
# A read-only /sys: systemd then starts no udev in the container.
mount -t sysfs -o ro sysfs "$r/sys"
# The cgroup namespace's root: systemd's cgroups stay below the test's.
mount -t cgroup2 cgroup2 "$r/sys/fs/cgroup"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
for d in null zero full random urandom tty; do
	touch "$r/dev/$d"
	mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir -p "$r/dev/net" "$r/dev/pts" "$r/dev/shm"
touch "$r/dev/net/tun"
mount --bind /dev/net/tun "$r/dev/net/tun"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts"
ln -sf pts/ptmx "$r/dev/ptmx"
mount -t tmpfs tmpfs "$r/dev/shm"
ip link set lo up
hostname iked-test

cp "$deb" "$r/root/iked.deb"
chroot "$r" dpkg -i /root/iked.deb >/dev/null
cat > "$r/etc/systemd/system/iked-test.target" <<'UNIT'
[Unit]
Description=iked under test
Requires=iked.service
After=iked.service
AllowIsolate=yes
UNIT
# systemd logs to the container's journal, which the test reads.
cd "$r"
mkdir -p oldroot
pivot_root . oldroot
exec chroot . /bin/sh -c 'umount -l /oldroot && rmdir /oldroot && exec env container=iked-test /lib/systemd/systemd --unit=iked-test.target --show-status=no'
