#!/usr/bin/env bash
# The soak (not in CI): one relay holds a 50-person meeting for 30 minutes while one person
# leaves and another joins every second; every 10 s the relay's memory, file descriptors,
# threads, Tokio tasks, participant count and the media latency are printed, then trends
# and what is left after everyone leaves. Figures go to BENCHMARKS.md.
#
#   scripts/soak.sh                 30 minutes
#   scripts/soak.sh 5               5 minutes
#   scripts/soak.sh 30 --soak-participants 100 --soak-audio-publishers 20
#
# Loopback only; the relay runs as its own process (release build).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-30}"
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/videocall-target}"
cargo build --release --locked -p videocall-relay -p videocall-loadgen --bin videocall-relay --bin relay-bench
exec "$CARGO_TARGET_DIR/release/relay-bench" --soak-minutes "$minutes" "$@"
