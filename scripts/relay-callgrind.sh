#!/usr/bin/env bash
# RELAY_BIN for relay-bench: runs the relay ($REAL_RELAY) under `valgrind --tool=callgrind` in
# the background, so that it outlives relay-bench's SIGKILL of this wrapper; SIGTERM the pid in
# $CALLGRIND_DIR/pid afterwards and it writes $CALLGRIND_DIR/relay.<pid>.out. Instruction
# counts do not depend on what else the machine is doing (BENCHMARKS.md).
#   CALLGRIND_DIR=/tmp/cg REAL_RELAY=target/release/videocall-relay RELAY_BIN=scripts/relay-callgrind.sh \
#     target/release/relay-bench --scenario meeting2 --transport websocket --warmup 3 --seconds 20
#   kill -TERM "$(cat /tmp/cg/pid)"; callgrind_annotate --inclusive=yes /tmp/cg/relay.*.out
out="${CALLGRIND_DIR:-/tmp/callgrind}"
mkdir -p "$out"
valgrind --tool=callgrind --callgrind-out-file="$out/relay.%p.out" "$REAL_RELAY" "$@" &
echo $! > "$out/pid"
wait
