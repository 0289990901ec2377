#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, gosec, unit tests, fuzz seed
# corpora, and the end-to-end tests with real processes. On a fresh Debian
# machine run as root it first installs the packages the suite needs.
# Under CI=true a test that needs something missing fails instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"
export PATH="$PATH:$(go env GOPATH)/bin"

# Debian packages the suite uses (interop peers, captures, namespaces).
packages=(iproute2 nftables strongswan-charon strongswan-swanctl libcharon-extra-plugins
  libstrongswan-extra-plugins libstrongswan-standard-plugins tshark tcpdump krb5-kdc krb5-admin-server krb5-user
  iperf3 iputils-ping
  samba samba-dsdb-modules samba-vfs-modules samba-ad-provision ldb-tools smbclient openssl
  # the unit under systemd, man pages, the package, completions
  systemd groff-base man-db file adduser bash-completion zsh
  # the kernel data-plane tests' QEMU guest (internal/vmtest; the kernel package is downloaded, not installed)
  qemu-system-x86 busybox-static kmod cpio xz-utils
  # libreswan's runtime libraries and certutil: its package conflicts with strongSwan's, so the kernel
  # data-plane tests unpack it (apt-get download, dpkg -x) and run it in the guest
  libnss3-tools libnss3 libnspr4 libevent-core-2.1-7 libevent-pthreads-2.1-7 libldns3 libunbound8 libcurl3-nss
  libldap-2.5-0
  # racoon's build (../shared/vendor/racoon, built once into a cache: the IKEv1 interop tests run it with
  # fakepfkey.so, the guest with the kernel's PF_KEY)
  autoconf automake libtool pkg-config flex bison libfl-dev libssl-dev libkrb5-dev libpam0g-dev libldap2-dev gcc
  # strongSwan 6.0.6's build (scripts/strongswan6.sh, the post-quantum interop peer): the same, and gperf
  gperf make
  # a real Prometheus scrapes iked; promtool checks the metrics, the alert rules and their tests
  prometheus)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    # tshark asks whether non-root users may capture; answer no, quietly.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

echo "== strongSwan 6.0.6 (the post-quantum interop peer, built once into a cache)"
# The interop tests use it as they use Debian's 5.9.8 (interop/charon6_test.go);
# the script prints how long the build took, or that it was cached.
if [ "$(id -u)" = 0 ]; then
  if ! ./scripts/strongswan6.sh; then
    if [ "${CI:-}" = true ]; then
      echo "strongSwan 6.0.6 could not be built (CI=true: failing)"; exit 1
    fi
    echo "strongSwan 6.0.6 could not be built: its interop tests will skip"
  fi
fi

echo "== go mod download"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
command -v staticcheck >/dev/null || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
staticcheck ./...

echo "== gosec"
# The security linter, pinned. Its exclusions, each with its reason, are in
# scripts/gosec.json; every #nosec in the code names its rule and says why.
go run github.com/securego/gosec/v2/cmd/gosec@v2.30.0 -quiet -conf scripts/gosec.json ./...

echo "== go test -race (engines, data plane, auth, policy, control)"
# The packages whose goroutines share state run under the race detector too;
# TestConcurrencyStress (ike) and TestStress (ikev1) are the lock discipline's tests (docs/design.md).
go test -race -count=1 -timeout 20m "$@" ./ike/... ./ikev1/... ./transport/... ./sadb/... ./auth/... ./policy/... ./control/... ./vici/...

echo "== go test"
go test -count=1 -timeout 30m "$@" ./...
