#!/bin/sh
# The outside programs the test suite runs for real, installed by the project itself (tox runs this
# before the tests): the npm packages pinned in tests/peers/package-lock.json. `npm ci` runs only
# when the lock file changed since the last install, so a warm machine pays nothing.
set -eu
cd "$(dirname "$0")"
if [ -f node_modules/.heihei-lock ] && cmp -s package-lock.json node_modules/.heihei-lock; then
    exit 0
fi
npm ci --no-audit --no-fund
cp package-lock.json node_modules/.heihei-lock
