#!/usr/bin/env bash
# A node for the test cluster of scripts/kube.sh (best effort): containerd (Debian), kubelet and
# kube-scheduler (v1.20.2, `scripts/kube.sh build-node`), so pods from the images of
# scripts/images.sh run.
#
#   scripts/node.sh start DIR    DIR holds a cluster started by `scripts/kube.sh start DIR`
#   scripts/node.sh check DIR    pods of the images on it: Ready by their probes, gone on delete
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
  # This machine withholds CAP_SYS_RESOURCE: scores below containerd's own cannot be set.
  restrict_oom_score_adj = true
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
  base=$(podman images --format '{{.Repository}}:{{.Tag}}' | grep -m1 "^localhost/videocall/base:.*-$(dpkg --print-architecture)\$") \
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

stop_pid() { # DIR NAME
  [ -f "$1/$2.pid" ] || return 0
  local pid; pid=$(cat "$1/$2.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1/$2.pid"
}

stop() {
  local dir=$1 sock="$1/node/containerd/containerd.sock"
  stop_pid "$dir" kubelet
  stop_pid "$dir" kube-scheduler
  # Every container the kubelet started (sandboxes included), before their runtime goes.
  if [ -S "$sock" ]; then
    for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill --signal SIGKILL "$task" >/dev/null 2>&1 || true
    done
    for _ in $(seq 1 50); do
      [ -z "$(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null | head -n1)" ] && break
      for task in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
        ctr --address "$sock" -n k8s.io tasks delete "$task" >/dev/null 2>&1 || true
      done
      sleep 0.1
    done
  fi
  stop_pid "$dir" containerd
  # Shims outlive containerd.
  pkill -f "containerd-shim-runc-v2 -namespace k8s.io -id .* -address $dir/node/" 2>/dev/null || true
  mountpoint -q "$dir/node/kubelet" 2>/dev/null && umount -R "$dir/node/kubelet" || true
  { grep -o " $dir/node/[^ ]*" /proc/mounts || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# Pods of the project's images on the node, as the chart runs them (probes of the same kinds,
# the images' own user), on loopback ports: each must become Ready, and go when deleted
# within its grace period (SIGTERM reaches the binary).
check() {
  local dir; dir=$(cd "$1" && pwd)
  local kubectl; kubectl="$("$root/scripts/k8s-tools.sh")/kubectl"
  local k=("$kubectl" --kubeconfig "$dir/kubeconfig" -n default)
  local passed=0 failed=0
  local relay_admin cp_port gw_admin
  relay_admin=$(free_port); cp_port=$(free_port); gw_admin=$(free_port)
  "${k[@]}" apply -f - >/dev/null <<PODS
apiVersion: v1
kind: Pod
metadata: {name: relay}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 20
  containers:
    - name: relay
      image: localhost/videocall/relay:$tag
      imagePullPolicy: Never
      args: [--relay-id, relays-0, --webtransport-addr, "127.0.0.1:$(free_port)", --websocket-addr,
             "127.0.0.1:$(free_port)", --admin-addr, "127.0.0.1:$relay_admin", --self-signed-names, localhost]
      readinessProbe: {httpGet: {host: 127.0.0.1, port: $relay_admin, path: /readyz}, periodSeconds: 1}
      livenessProbe: {httpGet: {host: 127.0.0.1, port: $relay_admin, path: /healthz}, periodSeconds: 5}
---
apiVersion: v1
kind: Pod
metadata: {name: control-plane}
spec:
  hostNetwork: true
  terminationGracePeriodSeconds: 20
  securityContext: {runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532}
  volumes: [{name: data, emptyDir: {}}]
  containers:
    - name: control-plane
      image: localhost/videocall/control-plane:$tag
      imagePullPolicy: Never
      env:
        - {name: CONTROL_PLANE_ADDR, value: "127.0.0.1:$cp_port"}
        - {name: DATABASE_URL, value: "sqlite:///data/control-plane.db?mode=rwc"}
        - {name: CONTROL_PLANE_WEB_DIR, value: /srv/web}
        - {name: CONTROL_PLANE_ADMIN_PASSWORD, value: node-check-password}
      volumeMounts: [{name: data, mountPath: /data}]
      readinessProbe: {tcpSocket: {host: 127.0.0.1, port: $cp_port}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: gateway}
spec:
  hostNetwork: true
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 20
  containers:
    - name: gateway
      image: localhost/videocall/gateway:$tag
      imagePullPolicy: Never
      args: [--quic-addr, "127.0.0.1:$(free_port)", --http-addr, "127.0.0.1:$(free_port)",
             --admin-addr, "127.0.0.1:$gw_admin", --control-plane-addr, "127.0.0.1:$cp_port",
             --relay, "0=127.0.0.1:1/127.0.0.1:1"]
      readinessProbe: {httpGet: {host: 127.0.0.1, port: $gw_admin, path: /readyz}, periodSeconds: 1}
PODS
  for pod in relay control-plane gateway; do
    if "${k[@]}" wait --for=condition=Ready "pod/$pod" --timeout=90s >/dev/null 2>&1; then
      passed=$((passed + 1)); echo "ok   node: the $pod image runs as a pod and passes its readiness probe"
    else
      failed=$((failed + 1)); echo "FAIL node: $pod not Ready"
      "${k[@]}" describe pod "$pod" | tail -n 15 >&2
    fi
  done
  local started=$SECONDS
  "${k[@]}" delete pod relay control-plane gateway --wait=true --timeout=60s >/dev/null 2>&1 || true
  if [ $((SECONDS - started)) -lt 20 ]; then
    passed=$((passed + 1)); echo "ok   node: the pods stop on SIGTERM ($((SECONDS - started)) s)"
  else
    failed=$((failed + 1)); echo "FAIL node: deleting the pods took $((SECONDS - started)) s"
  fi
  echo "node: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

case "${1:-}" in
  start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
  stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  check) [ -n "${2:-}" ] || { echo "usage: $0 check DIR" >&2; exit 2; }; check "$2" ;;
  *) echo "usage: $0 start DIR | check DIR | stop DIR" >&2; exit 2 ;;
esac
