#!/bin/sh
# Installs dynalite (a DynamoDB-compatible server on LevelDB, from the npm
# registry) into tools/dynalite/node_modules from the committed lock file, for
# the journal's tests and `make demo-hosts`. Does nothing when it is there.
# Needs node and npm (Debian: nodejs npm).
set -u
cd "$(dirname "$0")/dynalite" || exit 2
[ -f node_modules/dynalite/package.json ] && exit 0
if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "lua-dms: dynalite needs node and npm: apt-get install nodejs npm" >&2; exit 1
    fi
    echo "lua-dms: installing nodejs and npm (for dynalite)"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null || {
        echo "lua-dms: could not install nodejs npm" >&2; exit 1; }
fi
npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1 || npm ci --no-audit --no-fund || {
    echo "lua-dms: npm ci failed in tools/dynalite" >&2; exit 1; }
