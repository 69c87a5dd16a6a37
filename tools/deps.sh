#!/bin/sh
# Installs the Debian packages that lua-dms needs to build, test and run the demo,
# then dynalite (tools/dynalite.sh). Does nothing when they are all there already.
PKGS="lua5.4 liblua5.4-dev lua-cjson lua-expat libcurl4-openssl-dev libssl-dev lua-busted lua-check luarocks lua-argparse nginx libnginx-mod-http-lua libluajit2-5.1-dev luajit2 valgrind clang openssl bsdutils python3 curl python3-prometheus-client"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# dynalite (a DynamoDB-compatible server) for the shared journal's tests and
# make demo-hosts, from the npm registry into tools/dynalite/node_modules
# (a failure is reported; the specs that need it fail, or skip where node is absent)
dynalite() { sh "$(dirname "$0")/dynalite.sh" || echo "lua-dms: warning: dynalite is not installed" >&2; }
[ -z "$missing" ] && { dynalite; exit $?; }
echo "lua-dms: installing missing Debian packages:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "lua-dms: run as root: apt-get install$missing" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
    echo "lua-dms: could not install:$missing (apt-get install$missing)" >&2; exit 1; }
dynalite
