#!/usr/bin/env bash
# Validates the rendered chart (defaults and every charts/videocall/ci/ values file) and
# manifests/ against the upstream schemas of a current Kubernetes with an independent
# validator, `kubernetes-validate --strict` (PyPI; installed into ~/.cache/videocall-tools/venv).
# Custom resources are not in those schemas: operator/tests/chart.rs checks them against our CRDs.
# The 1.20 values render for a 1.20 server (tcp probes, NodePort gateway) and validate against
# the oldest schemas the validator has; the real 1.20 API server takes them in operator/tests/cluster.rs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="${VIDEOCALL_TOOLS_DIR:-$HOME/.cache/videocall-tools}"
venv="$tools/venv"
validator="$venv/bin/kubernetes-validate"
helm="${VIDEOCALL_HELM:-$("$root/scripts/k8s-tools.sh")/helm}"
current=1.35.0
oldest=1.25.0
if [ ! -x "$validator" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
validate() { # version file
  "$validator" --strict --quiet --no-warn -k "$1" "$2" || { echo "kubernetes-validate -k $1 failed on $2" >&2; exit 1; }
}
"$helm" template videocall "$root/charts/videocall" --namespace videocall --include-crds >"$work/default.yaml"
validate "$current" "$work/default.yaml"
for values in "$root"/charts/videocall/ci/*.yaml; do
  name=$(basename "$values" .yaml)
  case "$name" in
    kube-1.20-values)
      "$helm" template videocall "$root/charts/videocall" --namespace videocall --include-crds \
        --kube-version 1.20.2 -f "$values" >"$work/$name.yaml"
      validate "$oldest" "$work/$name.yaml" ;;
    *)
      "$helm" template videocall "$root/charts/videocall" --namespace videocall --include-crds \
        -f "$values" >"$work/$name.yaml"
      validate "$current" "$work/$name.yaml" ;;
  esac
done
validate "$current" "$root/manifests/videocall.yaml"
validate "$current" "$root/manifests/streamer/streamer.yaml"
for example in "$root"/manifests/examples/*.yaml "$root"/manifests/namespace.yaml; do
  validate "$current" "$example"
done
echo "kubernetes-validate --strict: chart (defaults + $(ls "$root"/charts/videocall/ci/*.yaml | wc -l) values files) and manifests/ valid"
