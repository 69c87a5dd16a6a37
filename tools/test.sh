#!/bin/sh
# The whole test run behind `make test`: C tests (ASan/UBSan and valgrind),
# the busted suite under Lua 5.4 and LuaJIT, the busted suite with the module
# built with ASan/UBSan, a valgrind pass with the garbage collector forced,
# the emulator's own suite, and luacheck. Ends with one line:
#   N passed, N failed, N skipped
# and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.." || exit 2
REF=${DMS_REFERENCE:-../shared/reference}
export DMS_REFERENCE="$REF"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PASSED=0 FAILED=0 SKIPPED=0 STATUS=0
LUA_PATH_DEV='lua/?.lua;lua/?/init.lua;spec/?.lua;;'

section() { printf '\n== %s\n' "$*"; }
count() { # passed failed skipped
    PASSED=$((PASSED + $1)); FAILED=$((FAILED + $2)); SKIPPED=$((SKIPPED + $3))
    [ "$2" -eq 0 ] || STATUS=1
}
# Reads busted's summary line ("N successes / N failures / N errors / N pending").
busted_counts() {
    line=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$1" | tail -1)
    if [ -z "$line" ]; then echo "0 1 0"; return; fi
    set -- $(echo "$line" | sed -E 's/^([0-9]+)[^0-9]+([0-9]+)[^0-9]+([0-9]+)[^0-9]+([0-9]+).*/\1 \2 \3 \4/')
    echo "$1 $(($2 + $3)) $4"
}
run_busted() { # label lua cpath specs...
    label=$1 lua=$2 cpath=$3; shift 3
    section "busted ($label)"
    LUA_PATH="$LUA_PATH_DEV" LUA_CPATH="$cpath" $lua /usr/bin/busted "$@" >"$OUT/busted.log" 2>&1
    rc=$?
    cat "$OUT/busted.log"
    set -- $(busted_counts "$OUT/busted.log")
    [ "$rc" -eq 0 ] || [ "$2" -gt 0 ] || set -- "$1" 1 "$3"
    count "$1" "$2" "$3"
}

CFLAGS_T="-std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -g -O1"
SAN="-fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer -fno-sanitize-recover=all"

CORE_SRCS="module/core.c module/error.c module/json.c module/sigv4.c module/shape.c module/sys.c"
CURL_SRCS="module/curl.c module/error.c module/http.c"

section "build: gcc and clang, -Wall -Wextra -Werror, Lua 5.4 and LuaJIT headers"
for compiler in gcc clang; do
    for inc in /usr/include/lua5.4 /usr/include/luajit-2.1; do
        W="-std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -shared -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes"
        if $compiler $W -I"$inc" -o "$OUT/core.so" $CORE_SRCS -lcrypto \
           && $compiler $W -I"$inc" -o "$OUT/curl.so" $CURL_SRCS -lcurl; then
            echo "$compiler with $inc: clean"; count 1 0 0
        else echo "$compiler with $inc: FAILED"; count 0 1 0; fi
    done
done

section "C tests: SigV4 suite under ASan/UBSan"
mkdir -p build/test
if cc $CFLAGS_T $SAN -o build/test/test_sigv4_asan test/c/test_sigv4.c module/sigv4.c -lcrypto; then
    build/test/test_sigv4_asan "$REF" | tee "$OUT/c1.log"
    set -- $(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$OUT/c1.log")
    count "${1:-0}" "${2:-1}" 0
else count 0 1 0; fi

section "C tests: SigV4 suite under valgrind"
if cc $CFLAGS_T -o build/test/test_sigv4 test/c/test_sigv4.c module/sigv4.c -lcrypto; then
    valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=3 \
        build/test/test_sigv4 "$REF" | tee "$OUT/c2.log"
    rc=$?
    set -- $(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$OUT/c2.log")
    [ "$rc" -eq 0 ] && count "${1:-0}" "${2:-1}" 0 || count "${1:-0}" $(( ${2:-0} + 1 )) 0
else count 0 1 0; fi

section "C fuzzing: SigV4 signer under libFuzzer with ASan/UBSan (20 s)"
sh test/fuzz/run.sh 20 >"$OUT/fuzz.log" 2>&1
rc=$?
tail -n 5 "$OUT/fuzz.log"
set -- $(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' "$OUT/fuzz.log" | tail -1)
if [ $# -eq 2 ]; then
    [ "$rc" -eq 0 ] || [ "$2" -gt 0 ] || set -- "$1" 1
    count "$1" "$2" 0
else count 0 1 0; fi

SPECS=$(ls spec/*_spec.lua)
run_busted "Lua 5.4" lua5.4 "build/?.so;;" $SPECS

run_busted "LuaJIT" luajit "build/luajit/?.so;;" $SPECS

section "busted with dms.core built with ASan/UBSan"
mkdir -p build/asan/dms
ASAN_CC="cc -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -shared -g -O1 $SAN -Wall -Wextra -Werror -I/usr/include/lua5.4"
if $ASAN_CC -o build/asan/dms/core.so $CORE_SRCS -lcrypto && $ASAN_CC -o build/asan/dms/curl.so $CURL_SRCS -lcurl; then
    LIBASAN=$(cc -print-file-name=libasan.so)
    LIBUBSAN=$(cc -print-file-name=libubsan.so)
    LD_PRELOAD="$LIBASAN $LIBUBSAN" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        run_busted "Lua 5.4 + ASan/UBSan" lua5.4 "build/asan/?.so;;" \
        spec/sigv4_spec.lua spec/shape_spec.lua spec/parse_spec.lua spec/client_spec.lua spec/fuzz_shape_spec.lua \
        spec/client_audit_spec.lua spec/sys_spec.lua spec/protocol_spec.lua spec/differential_spec.lua \
        spec/curl_spec.lua
else count 0 1 0; fi

section "busted under valgrind, garbage collector forced"
LUA_PATH="$LUA_PATH_DEV" LUA_CPATH="build/?.so;;" valgrind -q --error-exitcode=3 \
    --leak-check=full --errors-for-leak-kinds=definite \
    lua5.4 -e 'collectgarbage("setpause", 0)' /usr/bin/busted spec/sigv4_spec.lua spec/shape_spec.lua \
    spec/parse_spec.lua spec/retry_spec.lua spec/client_spec.lua spec/tls_spec.lua spec/sys_spec.lua \
    spec/protocol_spec.lua >"$OUT/vg.log" 2>&1
rc=$?
cat "$OUT/vg.log"
set -- $(busted_counts "$OUT/vg.log")
[ "$rc" -eq 0 ] && count "$1" "$2" "$3" || count "$1" $(($2 + 1)) "$3"

section "emulator suite (Python)"
emulator/tests/run >"$OUT/emu.log" 2>&1
rc=$?
tail -n 30 "$OUT/emu.log"
set -- $(sed -nE 's/^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?$/\1 \2 \4/p' "$OUT/emu.log" | tail -1)
if [ $# -ge 2 ]; then
    [ "$rc" -eq 0 ] || [ "$2" -gt 0 ] || set -- "$1" 1 "${3:-0}"
    count "$1" "$2" "${3:-0}"
else count 0 1 0; fi

section "rockspec: luarocks make --deps-mode=none, then load the installed module"
for v in 5.4 5.1; do
    tree="$OUT/rocks-$v"
    if [ "$v" = 5.1 ]; then lua=luajit; extra="LUA_INCDIR=/usr/include/luajit-2.1"; else lua=lua5.4; extra=""; fi
    if luarocks --lua-version="$v" --tree="$tree" make --deps-mode=none lua-dms-scm-1.rockspec $extra \
            >"$OUT/rock.log" 2>&1 \
       && (cd "$OUT" && TREE="$tree" LUA_PATH="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua;;" \
           LUA_CPATH="$tree/lib/lua/$v/?.so;;" $lua -e '
             local dms = require "dms"
             assert(package.searchpath("dms.core", package.cpath):find(os.getenv("TREE"), 1, true))
             local c = assert(dms.new{ region = "us-east-1", credentials = { access_key = "a", secret_key = "b" } })
             assert(dms.core.sign{ method = "POST", path = "/", region = "r", service = "s",
                                   access_key = "a", secret_key = "b", time = 0 }.signature)
             print("installed lua-dms " .. dms._VERSION .. " loads on " .. (jit and jit.version or _VERSION), c)') \
       && { [ "$v" != 5.4 ] || LUA_PATH="$tree/share/lua/$v/?.lua;$tree/share/lua/$v/?/init.lua;;" \
            LUA_CPATH="$tree/lib/lua/$v/?.so;;" "$tree/bin/dms-runbook" --help | head -n 3; }
    then echo "rockspec on Lua $v: ok"; count 1 0 0
    else cat "$OUT/rock.log"; echo "rockspec on Lua $v: FAILED"; count 0 1 0; fi
    rm -rf dms module/*.o        # luarocks make builds in the source tree
done

section "release rockspec: luarocks make --deps-mode=none rockspecs/lua-dms-*.rockspec into a temporary tree"
for spec in rockspecs/lua-dms-*.rockspec; do
    tree="$OUT/rocks-release"
    version=$(sed -nE 's/^version = "([^"-]+)-[0-9]+"/\1/p' "$spec")
    if luarocks --lua-version=5.4 --tree="$tree" make --deps-mode=none "$spec" >"$OUT/rock.log" 2>&1 \
       && (cd "$OUT" && TREE="$tree" VERSION="$version" LUA_PATH="$tree/share/lua/5.4/?.lua;$tree/share/lua/5.4/?/init.lua;;" \
           LUA_CPATH="$tree/lib/lua/5.4/?.so;;" lua5.4 -e '
             local dms = require "dms"
             assert(package.searchpath("dms.core", package.cpath):find(os.getenv("TREE"), 1, true))
             assert(package.searchpath("dms.workflow.tables", package.path):find(os.getenv("TREE"), 1, true))
             assert(dms._VERSION == os.getenv("VERSION"), dms._VERSION .. " is not the rockspec version")
             assert(require("dms.workflow")._VERSION == dms._VERSION)
             assert(require("dms.workflow.tables").list)
             print("installed lua-dms " .. dms._VERSION .. " from the release rockspec loads")')
    then echo "$spec: ok"; count 1 0 0
    else cat "$OUT/rock.log"; echo "$spec: FAILED"; count 0 1 0; fi
    rm -rf "$tree" dms module/*.o
done

section "luacheck"
if luacheck -q lua spec bin examples tools 2>&1 | tail -n 20; then :; fi
if ! luacheck -q lua spec bin examples tools >/dev/null 2>&1; then
    echo "luacheck reported problems"; count 0 1 0
fi

echo
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
exit $STATUS
