#!/bin/sh
# `make demo`: the runbook against the local DMS endpoint.
# Starts emulator/dms-emulator on a free loopback port, runs
# examples/runbook.lua against it, and stops the emulator.
set -u
cd "$(dirname "$0")/.." || exit 2
LOG=$(mktemp)
FIFO=$(mktemp -u)
mkfifo "$FIFO"
python3 emulator/dms-emulator --seed emulator/seed.example.json ${DMS_EMULATOR_ARGS:-} >"$FIFO" 2>"$LOG" &
EMU_PID=$!
cleanup() {
    kill "$EMU_PID" 2>/dev/null
    wait "$EMU_PID" 2>/dev/null
    rm -f "$FIFO" "$LOG"
}
trap cleanup EXIT INT TERM
exec 3<"$FIFO"
read -r URL <&3 || { echo "the local DMS endpoint did not start:"; cat "$LOG"; exit 1; }
echo "local DMS endpoint: $URL (emulator pid $EMU_PID)"
echo
DMS_ENDPOINT="$URL" AWS_REGION=us-east-1 \
AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY \
LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='build/?.so;;' \
    lua5.4 examples/runbook.lua
