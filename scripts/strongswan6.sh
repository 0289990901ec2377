#!/usr/bin/env bash
# Builds strongSwan 6.0.6 (RFC 9242, RFC 9370, ML-KEM) from the shared vendor
# tarball into a cache directory, once: the interop tests use it as the
# post-quantum peer (interop/charon6_test.go). Debian 12 packages only 5.9.8.
#
#   PREFIX      where to install (default: $XDG_CACHE_HOME or ~/.cache, then
#               iked/strongswan-6.0.6); IKED_STRONGSWAN6_PREFIX is the same
#   IKED_VENDOR_DIR  the shared vendor directory (default ../shared/vendor
#               beside the checkout's parent, as /work/shared/vendor is)
#
# An installed build is kept: the script only checks it and says so. The
# build runs under nice (the machine is shared) and prints how long it took.
# It exits non-zero when the build fails; scripts/test.sh fails the run on
# that under CI=true.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
prefix="${PREFIX:-${IKED_STRONGSWAN6_PREFIX:-$cache/iked/strongswan-6.0.6}}"
vendor="${IKED_VENDOR_DIR:-$here/../../shared/vendor}"
[ -d "$vendor" ] || vendor="$here/../shared/vendor"
tarball="$vendor/strongswan-6.0.6.tar.gz"
case "$prefix" in
  /*/*) ;;
  *) echo "strongSwan 6.0.6: refusing prefix \"$prefix\" (an absolute path below a directory)" >&2; exit 1 ;;
esac

# The configure options. --disable-defaults turns IKEv2 off too, so it is
# enabled again (the recipe in the vendor README omits it: its charon
# answers every IKEv2 message with INVALID_MAJOR_VERSION).
options=(--disable-defaults --enable-charon --enable-ikev2 --enable-swanctl --enable-vici --enable-openssl --enable-ml
  --enable-nonce --enable-random --enable-kernel-netlink --enable-socket-default --enable-kernel-libipsec --enable-libipsec
  --enable-pem --enable-pkcs1 --enable-pkcs8 --enable-x509 --enable-pubkey --enable-constraints --enable-kdf
  --enable-sha2 --enable-hmac --enable-gcm --enable-aes --enable-curve25519 --enable-chapoly --disable-scripts)
# A build records its options; one made with others is made again.
stamp="$prefix/.iked-build-options"

built() {
  [ -x "$prefix/libexec/ipsec/charon" ] && [ -x "$prefix/sbin/swanctl" ] &&
    [ -e "$prefix/lib/ipsec/plugins/libstrongswan-ml.so" ] &&
    [ -e "$prefix/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so" ] &&
    [ "$(cat "$stamp" 2>/dev/null)" = "${options[*]}" ]
}

if built; then
  echo "strongSwan 6.0.6: cached in $prefix"
  exit 0
fi
if [ ! -f "$tarball" ]; then
  echo "strongSwan 6.0.6: source $tarball not found (set IKED_VENDOR_DIR)" >&2
  exit 1
fi

start=$(date +%s)
work="$(mktemp -d "${TMPDIR:-/tmp}/iked-strongswan6.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$work/build.log"
echo "strongSwan 6.0.6: building into $prefix (log $log while it runs)"
(
  cd "$work"
  tar xzf "$tarball"
  cd strongswan-6.0.6
  nice ./autogen.sh
  nice ./configure --prefix="$prefix" --sysconfdir="$prefix/etc" "${options[@]}"
  nice make -j"$(nproc)"
  rm -rf "$prefix"
  make install
  echo "${options[*]}" >"$stamp"
) >"$log" 2>&1 || {
  echo "strongSwan 6.0.6: build failed after $(( $(date +%s) - start )) s; last lines of the log:" >&2
  tail -40 "$log" >&2
  exit 1
}
if ! built; then
  echo "strongSwan 6.0.6: build finished but charon, swanctl or a plugin is missing in $prefix" >&2
  exit 1
fi
echo "strongSwan 6.0.6: built in $(( $(date +%s) - start )) s into $prefix"
