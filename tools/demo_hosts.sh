#!/bin/sh
# `make demo-hosts`: one fleet from three hosts sharing a DynamoDB journal.
# Starts the local DMS endpoint with 24 replications and dynalite (a
# DynamoDB-compatible server) on free loopback ports, creates the journal's
# table, runs `dms-runbook run --match 'hosts-*' --journal dynamodb://...` as
# three processes (host-a, host-b, host-c), kills host-c with SIGKILL midway,
# and shows how host-a and host-b split the fleet and took host-c's
# replications over once its leases expired: no replication started twice.
set -u
cd "$(dirname "$0")/.." || exit 2
command -v node >/dev/null 2>&1 || { echo "make demo-hosts needs node (apt-get install nodejs npm)"; exit 1; }
sh tools/dynalite.sh || exit 1
WORK=$(mktemp -d)
mkfifo "$WORK/emu" "$WORK/ddb"
python3 emulator/dms-emulator --seed emulator/seed.example.json >"$WORK/emu" 2>"$WORK/emu.log" &
EMU_PID=$!
node tools/dynalite/serve.js >"$WORK/ddb" 2>"$WORK/ddb.log" &
DDB_PID=$!
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    kill "$EMU_PID" "$DDB_PID" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
exec 3<"$WORK/emu" 4<"$WORK/ddb"
read -r URL <&3 || { echo "the local DMS endpoint did not start:"; cat "$WORK/emu.log"; exit 1; }
read -r DDB <&4 || { echo "dynalite did not start:"; cat "$WORK/ddb.log"; exit 1; }
curl -s -XPOST "$URL/_emulator/replications" \
    -d '{"count": 24, "identifier": "hosts-{n:02}", "type": "full-load-and-cdc"}' >/dev/null || exit 1
export AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' TERM=dumb
RUNBOOK="lua5.4 bin/dms-runbook"
echo "local DMS endpoint: $URL (24 replications hosts-01..24); DynamoDB (dynalite): $DDB"
$RUNBOOK journal create-table dms-runbooks --journal-endpoint "$DDB" >/dev/null 2>"$WORK/create.err" || {
    cat "$WORK/create.err"; exit 1; }
echo "journal table dms-runbooks created (dynalite does not take UpdateTimeToLive: DynamoDB does)"
echo "three hosts: run --match 'hosts-*' --concurrency 4 --wait-for full-load-complete --lease 3"
echo "(poll every 0.2 s and a 3 s lease: the local endpoint runs 1000 times faster than DMS;"
echo " on AWS: 15 s polls and the default 300 s lease)"
echo
for host in host-a host-b host-c; do
    $RUNBOOK run --endpoint "$URL" --match 'hosts-*' --concurrency 4 --wait-for full-load-complete \
        --journal dynamodb://dms-runbooks --journal-endpoint "$DDB" --owner "$host" --lease 3 \
        --poll-interval 0.2 --print-table >"$WORK/$host.out" 2>"$WORK/$host.err" &
    PIDS="$PIDS $!"
    eval "PID_$(echo $host | tr - _)=$!"
done
sleep 5
echo "killing host-c (SIGKILL, pid $PID_host_c) while it drives:"
$RUNBOOK journal list dms-runbooks --journal-endpoint "$DDB" --print-table | grep -E '^REPLICATION|host-c' 
kill -KILL "$PID_host_c"
echo
CODE=0
for host in host-a host-b; do
    eval "wait \$PID_$(echo $host | tr - _)"
    rc=$?
    echo "== $host exited $rc; its table:"
    sed -n '/^REPLICATION/,$p' "$WORK/$host.out"
    grep -h 'lease taken over' "$WORK/$host.out" | sed 's/^/   /'
    echo
    [ "$rc" -eq 0 ] || CODE=1
done
STARTS=$(curl -s "$URL/_emulator/requests" | python3 -c '
import json, sys, collections
c = collections.Counter(r["body"]["ReplicationConfigArn"] for r in json.load(sys.stdin)["requests"]
                        if r["operation"] == "StartReplication" and r.get("status") == 200)
print(len(c), max(c.values()) if c else 0)')
set -- $STARTS
echo "StartReplication: $1 replications started, at most $2 start(s) for one of them"
[ "$1" -eq 24 ] && [ "$2" -eq 1 ] || CODE=1
exit $CODE
