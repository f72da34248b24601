#!/usr/bin/env bash
# A node for the test cluster of scripts/kube.sh (best effort): containerd (Debian), kubelet and
# kube-scheduler (v1.20.2, `scripts/kube.sh build-node`), so pods from the images of
# scripts/images.sh run.
#
#   scripts/node.sh start DIR    DIR holds a cluster started by `scripts/kube.sh start DIR`
#   scripts/node.sh stop DIR
#
# The pod sandbox ("pause") image is the images' Debian base running `sleep infinity`: no image
# registry is reachable, so nothing is pulled (every image is imported from podman's store, and
# pods say imagePullPolicy: Never). Pods use the node's network (hostNetwork): the only addresses
# tests may use here are loopback ones. The node's container runtime is containerd with runc and
# cgroupfs (this machine has hybrid cgroups v1 and refuses raised rlimits).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
version=1.20.2
bin="${VIDEOCALL_KUBE_DIR:-$HOME/.cache/videocall-kube}/$version"
tag=$(awk -F'"' '/^appVersion:/ { print $2 }' "$root/charts/videocall/Chart.yaml")
pause=localhost/videocall/pause:3.2

start() {
  local dir; dir=$(cd "$1" && pwd)
  [ -f "$dir/kubeconfig" ] || { log "no cluster in $dir (scripts/kube.sh start $dir)"; exit 1; }
  need_apt containerd runc containernetworking-plugins
  for b in kubelet kube-scheduler; do
    [ -x "$bin/$b" ] || "$root/scripts/kube.sh" build-node >/dev/null
  done
  local node="$dir/node"
  mkdir -p "$node/containerd" "$node/cni" "$node/kubelet" "$node/images" "$dir/logs"
  local sock="$node/containerd/containerd.sock"
  # A CNI network so the runtime reports its network ready; pods here use the host's.
  cat >"$node/cni/10-videocall.conflist" <<CNI
{"cniVersion": "0.4.0", "name": "videocall", "plugins": [{"type": "loopback"}]}
CNI
  cat >"$node/containerd.toml" <<TOML
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
[grpc]
  address = "$sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni"
TOML
  containerd --config "$node/containerd.toml" >"$dir/logs/containerd.log" 2>&1 &
  echo $! >"$dir/containerd.pid"
  wait_for containerd 30 ctr --address "$sock" version

  # The sandbox image and the project's images, from podman's store.
  local base
  base=$(podman images --format '{{.Repository}}:{{.Tag}}' | grep -m1 '^localhost/videocall/base:') \
    || { log "no base image: run scripts/images.sh build"; exit 1; }
  if ! podman image exists "$pause"; then
    local ctr; ctr=$(buildah from --pull-never "$base")
    buildah config --entrypoint '["/bin/sleep", "infinity"]' --cmd '' "$ctr"
    buildah commit --quiet --rm "$ctr" "$pause" >/dev/null
  fi
  for image in "$pause" $(podman images --format '{{.Repository}}:{{.Tag}}' | grep "^localhost/videocall/.*:$tag\$"); do
    local archive="$node/images/$(echo "$image" | tr '/:' '__').tar"
    podman save --quiet --format docker-archive -o "$archive" "$image"
    ctr --address "$sock" -n k8s.io images import --no-unpack=false "$archive" >/dev/null
    rm -f "$archive"
  done

  "$bin/kube-scheduler" --kubeconfig "$dir/kubeconfig" --leader-elect=false --port 0 --secure-port 0 \
    --v 1 >"$dir/logs/kube-scheduler.log" 2>&1 &
  echo $! >"$dir/kube-scheduler.pid"

  "$bin/kubelet" --kubeconfig "$dir/kubeconfig" --hostname-override videocall-node \
    --container-runtime remote --container-runtime-endpoint "unix://$sock" \
    --root-dir "$node/kubelet" --cert-dir "$node/kubelet/pki" --cgroup-driver cgroupfs \
    --pod-infra-container-image "$pause" --fail-swap-on=false --cgroups-per-qos=false \
    --enforce-node-allocatable= --eviction-hard= --image-gc-high-threshold 100 \
    --address 127.0.0.1 --port "$(free_port)" --read-only-port 0 --healthz-port 0 \
    --authentication-token-webhook=false --authorization-mode AlwaysAllow \
    --v 1 >"$dir/logs/kubelet.log" 2>&1 &
  echo $! >"$dir/kubelet.pid"
  local kubectl; kubectl="$("$root/scripts/k8s-tools.sh")/kubectl"
  node_ready() {
    "$kubectl" --kubeconfig "$dir/kubeconfig" get node videocall-node \
      -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -q True
  }
  wait_for "node videocall-node Ready" 90 node_ready || { tail -n 30 "$dir/logs/kubelet.log" >&2; exit 1; }
  echo videocall-node
}

stop() {
  local dir=$1
  for name in kubelet kube-scheduler containerd; do
    [ -f "$dir/$name.pid" ] || continue
    local pid; pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
  # Containers the kubelet left: their shims outlive containerd.
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $dir/node/" 2>/dev/null || true
  mountpoint -q "$dir/node/kubelet" 2>/dev/null && umount -R "$dir/node/kubelet" || true
  grep -o " $dir/node/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

case "${1:-}" in
  start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 start DIR | stop DIR" >&2; exit 2 ;;
esac
