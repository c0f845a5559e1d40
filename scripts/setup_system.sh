#!/bin/sh
# Install the Debian packages the test suite needs (browser, servers, linters, build tools).
# Called by `make test` and by CI; does nothing when every package is already installed.
set -eu

PACKAGES="build-essential chromium cmake curl nginx postgresql redis-server shellcheck systemd"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "The test suite needs these Debian packages:$missing" >&2
    echo "This machine has no apt-get: install them with its package manager, then run make test." >&2
    exit 1
fi

if [ "$(id -u)" = 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root="sudo"
else
    echo "The test suite needs Debian packages that are not installed:$missing" >&2
    echo "Run this once, then make test again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi

echo "Installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get update -qq
# shellcheck disable=SC2086  # the package list is meant to split into words
$as_root apt-get install -y -qq --no-install-recommends $missing >/dev/null
