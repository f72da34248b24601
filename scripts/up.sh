#!/usr/bin/env bash
# Command one: builds the browser client and starts the whole platform on this machine
# (control plane on SQLite, relay with a self-signed certificate, the page at
# /meeting/<your-name>/<meeting-id>), then prints the URL to open. Arguments go to `videocall up`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/web-build.sh
exec cargo run --release --locked --bin videocall -- up --web-dir web/dist "$@"
