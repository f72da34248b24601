#!/usr/bin/env bash
# Writes manifests/credentials.env (git-ignored) with fresh random credentials, once: the
# kustomization turns it into the `videocall-credentials` Secret. Run again with --force to
# replace them (restart the control plane and relays afterwards).
# Usage: scripts/manifests-credentials.sh [--force] [directory]   (default: manifests/)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
dir="${1:-$root/manifests}"
file="$dir/credentials.env"
if [ -e "$file" ] && [ "$force" = 0 ]; then
  echo "$file exists; keeping it (use --force to replace)"
  exit 0
fi
random() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$1"; }
admin=$(random 24)
operator=$(random 32)
relays=$(random 32)
umask 077
cat >"$file" <<ENV
adminPassword=$admin
operatorApiKey=vk_operator:$operator
apiKey=vk_relays:$relays
bootstrapApiKeys=operator:admin:vk_operator:$operator,relays:relay:vk_relays:$relays
ENV
echo "wrote $file"
