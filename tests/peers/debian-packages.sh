#!/bin/sh
# Debian packages the test suite runs for real, installed when missing (tox runs this first,
# like `npm ci` for the npm peers): nginx with Debian's RTMP module, the media server of
# tests/heihei/test_media_server.py, and chromium, the browser the tests/browser/ tests drive with
# Playwright (its own executable, never `playwright install`), with a CJK font for the pages'
# Chinese. Idempotent: does nothing when they are installed.
set -eu

PACKAGES="nginx libnginx-mod-rtmp chromium fonts-wqy-microhei"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "debian-packages.sh: the tests need$missing (Debian packages) and this is not a Debian system:" \
         "install them by hand" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    run="sudo -n"
else
    echo "debian-packages.sh: the tests need the Debian packages$missing; installing them needs root:" \
         "run 'apt-get install --no-install-recommends$missing' as root (or give this user sudo)" >&2
    exit 1
fi

echo "debian-packages.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# the package's own nginx service is not wanted (the tests start nginx with their own config):
# RUNLEVEL=1 keeps invoke-rc.d from starting it where no init system decides
# shellcheck disable=SC2086
if ! $run env RUNLEVEL=1 apt-get install -y -q --no-install-recommends $missing; then
    $run apt-get update -q
    $run env RUNLEVEL=1 apt-get install -y -q --no-install-recommends $missing
fi
