#!/usr/bin/env bash
# Glass to glass, clear against end-to-end encrypted (web/e2e/glass-ab.mjs): builds the browser
# client and the platform (release), starts two platforms on loopback ports of their own (the
# demo meeting clear in one, encrypted in the other: `--demo-e2ee`), runs the rounds in Debian's
# chromium and firefox-esr, and stops both by PID. Arguments: [rounds] [frames a sitting].
#   scripts/glass-ab.sh 5 300
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
need_apt chromium firefox-esr pulseaudio
scripts/web-build.sh
cargo build --release --locked --bin videocall
bin="${CARGO_TARGET_DIR:-target}/release/videocall"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
# Firefox's AudioContext runs only with a sound server: PulseAudio with a null sink.
export XDG_RUNTIME_DIR="$work/runtime"
mkdir -p "$XDG_RUNTIME_DIR"
pulseaudio -n --daemonize=no --exit-idle-time=-1 --disallow-exit \
  --load="module-null-sink sink_name=null" --load=module-native-protocol-unix \
  >/dev/null 2>&1 &
pids+=($!)
urls=()
for way in clear encrypted; do
  extra=()
  [ "$way" = encrypted ] && extra=(--demo-e2ee)
  RUST_LOG=warn "$bin" --data-dir "$work/$way" up --web-dir web/dist \
    --http-addr 127.0.0.1:0 --quic-addr 127.0.0.1:0 --api-addr 127.0.0.1:0 \
    --webtransport-addr 127.0.0.1:0 --websocket-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
    --gateway-admin-addr 127.0.0.1:0 --control-plane-metrics-addr 127.0.0.1:0 \
    "${extra[@]}" >"$work/$way.log" 2>&1 &
  pids+=($!)
  url=""
  for _ in $(seq 300); do
    url="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http_url"].rstrip("/"))' \
      "$work/$way/platform.json" 2>/dev/null)" && break
    sleep 0.1
  done
  [ -n "$url" ] || { log "the $way platform did not start:"; cat "$work/$way.log" >&2; exit 1; }
  urls+=("$url")
done
log "clear ${urls[0]}, encrypted ${urls[1]}"
node web/e2e/glass-ab.mjs "${urls[0]}" "${urls[1]}" "${1:-5}" "${2:-300}"
