#!/usr/bin/env bash
# The side-by-side responder comparison (docs/performance.md): builds iked
# and ikeload, unpacks libreswan beside strongSwan (their Debian packages
# conflict, so libreswan is never installed: `apt-get download` and
# `dpkg -x` into a cache directory), waits for a quiet machine, and runs
# bench/responders. Needs root. Arguments go to bench/responders, e.g.
#   bench/run.sh --responders iked,charon --sas 10000 --duration 10s
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: must run as root" >&2; exit 1; }
export PATH="$PATH:/usr/local/go/bin"

cache="${IKEBENCH_CACHE:-/var/cache/iked-bench}"
bin="$cache/bin"
mkdir -p "$bin"
echo "== building iked and ikeload"
go build -o "$bin/iked" ./cmd/iked
go build -o "$bin/ikeload" ./cmd/ikeload

if ! dpkg-query -W -f='${Status}' strongswan-charon 2>/dev/null | grep -q "install ok installed"; then
  echo "== installing strongSwan"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends strongswan-charon strongswan-swanctl \
    libstrongswan-standard-plugins >/dev/null
fi

lsw="$cache/libreswan"
if [ ! -x "$lsw/usr/libexec/ipsec/pluto" ]; then
  echo "== unpacking libreswan into $lsw"
  dl="$cache/debs"
  mkdir -p "$dl" "$lsw"
  # pluto's runtime libraries that strongSwan's machine lacks, and certutil
  # for its NSS database.
  (cd "$dl" && apt-get download libreswan libldns3 libevent-pthreads-2.1-7 libnss3-tools 2>&1 | grep -v '^W:' || true)
  for d in "$dl"/*.deb; do dpkg -x "$d" "$lsw"; done
  dpkg-deb -f "$dl"/libreswan_*.deb Version > "$lsw/VERSION"
fi

# Measure on a quiet machine: wait up to 20 minutes for a 1-minute load
# average below 0.7.
for i in $(seq 1 120); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$load" 'BEGIN { exit !(l < 0.7) }'; then break; fi
  [ "$i" = 1 ] && echo "== waiting for load average < 0.7 (now $load)"
  [ "$i" = 120 ] && echo "== load average still $load after 20 minutes: measuring anyway"
  [ "$i" = 120 ] || sleep 10
done
echo "== load average $(cut -d' ' -f1-3 /proc/loadavg)"
go run ./bench/responders --bin "$bin" --libreswan "$lsw" --out "${IKEBENCH_OUT:-$cache/results.json}" "$@"
