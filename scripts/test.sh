#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, unit tests, fuzz seed
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
  # racoon's build (interop/racoon_test.go builds ../shared/vendor/racoon once into a cache)
  autoconf automake libtool pkg-config flex bison libfl-dev libssl-dev libkrb5-dev libpam0g-dev libldap2-dev gcc)
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

echo "== go test"
go test -count=1 -timeout 30m "$@" ./...
