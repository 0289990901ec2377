#!/bin/sh
# Prints the version to build: the tag (without its "v") when HEAD is a
# release tag, else 0.0~git<commit date>.<short commit>, which sorts in
# Debian's order; 0.0~unknown outside a git checkout.
set -e
cd "$(dirname "$0")/.."
if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
	echo "${tag#v}"
elif when=$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null); then
	echo "0.0~git${when}.$(git rev-parse --short=12 HEAD)"
else
	echo "0.0~unknown"
fi
