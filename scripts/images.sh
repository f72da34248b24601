#!/usr/bin/env bash
# The images of the Dockerfile, built without an image registry and run.
#
#   scripts/images.sh build    release binaries + a Debian base made by debootstrap → buildah images
#   scripts/images.sh test     each image answers --help; the servers answer their health endpoints
#   scripts/images.sh bases    only the debootstrap root filesystems (amd64 and arm64), cached
#
# The streamer is built for amd64 and arm64 (a Raspberry Pi): its arm64 binary is cross-built
# (scripts/aarch64.sh build release), laid on an arm64 debootstrap base, and both images are
# put under one manifest list, videocall/streamer:<tag>-multiarch (what `docker buildx build
# --platform linux/amd64,linux/arm64` makes of the Dockerfile). qemu-user-static, registered
# with binfmt_misc here, runs the arm64 debootstrap and the arm64 image's tests.
#
# No registry is reachable here and none is needed: the base root filesystem is made by
# `debootstrap --variant=minbase` from the machine's own Debian mirror (bookworm, with
# ca-certificates and libasound2: what the Dockerfile's debian:bookworm-slim stage installs), cached in
# ~/.cache/videocall-images. Each image is that base plus one binary as
# /usr/local/bin/videocall-entrypoint, run as 65532:65532, exactly the Dockerfile's layout; the
# control plane's also carries the browser client in /srv/web (scripts/web-build.sh first).
# Containers run with Debian's podman and runc (crun refuses this machine's hybrid cgroups).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
target_dir="${CARGO_TARGET_DIR:-$root/target}"
cache="${VIDEOCALL_IMAGES_DIR:-$HOME/.cache/videocall-images}"
tag=$(awk -F'"' '/^appVersion:/ { print $2 }' "$root/charts/videocall/Chart.yaml")
suite=bookworm
# What the Dockerfile's runtime stage installs: ca-certificates; libasound2 (the streamer's
# microphone). The tag names the cached root filesystem, so a changed list makes a new one.
base_packages=ca-certificates,libasound2
base_packages_tag=certs-asound
arch=$(dpkg --print-architecture)
# image name → binary
images=(relay:videocall-relay control-plane:videocall-control-plane operator:videocall-operator gateway:videocall-gateway
  streamer:videocall-streamer)
# Limits no higher than this shell's: the machine does not let containers raise them.
podman_run=(podman --runtime runc run --network host --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)"
  --ulimit "nproc=4096:4096")

# The first Debian mirror the machine's apt sources name (no host name lives in this repo).
mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || { log "no Debian mirror in the apt sources"; exit 1; }
  echo "$uri"
}

# Runs arm64 binaries (debootstrap's second stage, the arm64 image) through qemu-user-static.
register_qemu_binfmt() {
  need_apt qemu-user-static
  local binfmt=/proc/sys/fs/binfmt_misc
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  [ -e "$binfmt/qemu-aarch64" ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register"
}

# The root filesystem tarball of the base for an architecture, made once and cached.
base_tarball() { # architecture
  local arch=$1
  local tarball="$cache/$suite-minbase-$base_packages_tag-$arch.tar"
  if [ ! -f "$tarball" ]; then
    log "debootstrap $suite ($arch, minbase + $base_packages)"
    local rootfs; rootfs=$(mktemp -d)
    debootstrap --variant=minbase --include="$base_packages" --arch "$arch" "$suite" "$rootfs" "$(mirror)" \
      >"$cache/debootstrap-$arch.log" 2>&1 || { tail -n 20 "$cache/debootstrap-$arch.log" >&2; exit 1; }
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    tar -C "$rootfs" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf "$rootfs"
  fi
  echo "$tarball"
}

base_image() { # [architecture]: the host's by default
  local arch=${1:-$arch}
  local name="localhost/videocall/base:$suite-$base_packages_tag-$arch"
  if podman image exists "$name"; then echo "$name"; return; fi
  local tarball; tarball=$(base_tarball "$arch")
  local ctr; ctr=$(buildah from --arch "$arch" scratch)
  buildah add --quiet "$ctr" "$tarball" / >/dev/null
  buildah config --arch "$arch" --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
  buildah commit --quiet "$ctr" "$name" >/dev/null
  buildah rm "$ctr" >/dev/null
  echo "$name"
}

# Both bases' root filesystems (scripts/test.sh makes them beside its first steps).
bases() {
  need_apt debootstrap
  mkdir -p "$cache"
  register_qemu_binfmt
  base_tarball "$arch" >/dev/null
  base_tarball arm64 >/dev/null
}

# The architectures a manifest list holds, sorted, on one line.
manifest_architectures() { # list
  buildah manifest inspect "$1" | grep -o '"architecture": *"[a-z0-9]*"' | tr -d ' "' | cut -d: -f2 | sort | xargs
}

# An image of $binary on $base, as the Dockerfile lays it out.
image_of() { # name, binary path, base, tag, [web dir]
  local name=$1 binary=$2 base=$3 image_tag=$4 web=${5:-}
  local ctr; ctr=$(buildah from --pull-never "$base")
  buildah copy --quiet --chmod 0755 "$ctr" "$binary" /usr/local/bin/videocall-entrypoint >/dev/null
  # /srv/web: the browser client for the control plane, empty elsewhere (as in the Dockerfile).
  if [ -n "$web" ]; then
    buildah copy --quiet "$ctr" "$web" /srv/web >/dev/null
  else
    local empty; empty=$(mktemp -d)
    buildah copy --quiet "$ctr" "$empty" /srv/web >/dev/null
    rmdir "$empty"
  fi
  buildah config --user 65532:65532 --entrypoint '["/usr/local/bin/videocall-entrypoint"]' --cmd '' \
    --label "org.opencontainers.image.title=videocall-$name" \
    --label "org.opencontainers.image.version=$tag" "$ctr"
  buildah commit --quiet --rm "$ctr" "localhost/videocall/$name:$image_tag" >/dev/null
  log "built videocall/$name:$image_tag ($(podman image inspect --format '{{.Architecture}}, {{.Size}} bytes' "localhost/videocall/$name:$image_tag"))"
}

build() {
  need_apt buildah podman runc debootstrap
  mkdir -p "$cache"
  # One cargo invocation per binary, as the Dockerfile builds them: each binary gets only its
  # own crates' features (built together, another crate's rustls provider would hide a missing one).
  for image in "${images[@]}"; do
    (cd "$root" && cargo build --release --locked --bin "${image#*:}")
  done
  [ -f "$root/web/dist/index.html" ] || "$root/scripts/web-build.sh"
  local base; base=$(base_image)
  for image in "${images[@]}"; do
    local name="${image%%:*}" binary="${image#*:}" web=""
    [ "$name" = control-plane ] && web="$root/web/dist"
    image_of "$name" "$target_dir/release/$binary" "$base" "$tag" "$web"
  done
  # The streamer for arm64, and both streamers under one manifest list.
  register_qemu_binfmt
  CARGO_TARGET_DIR="$target_dir" "$root/scripts/aarch64.sh" build release
  image_of streamer "$target_dir/aarch64-unknown-linux-gnu/release/videocall-streamer" \
    "$(base_image arm64)" "$tag-arm64"
  local list="localhost/videocall/streamer:$tag-multiarch"
  buildah manifest rm "$list" >/dev/null 2>&1 || true
  buildah manifest create "$list" >/dev/null
  buildah manifest add "$list" "containers-storage:localhost/videocall/streamer:$tag" >/dev/null
  buildah manifest add "$list" "containers-storage:localhost/videocall/streamer:$tag-arm64" >/dev/null
  log "built $list ($(manifest_architectures "$list"))"
  # The images these replaced.
  podman image prune --force >/dev/null 2>&1 || true
}

passed=0
failed=0
check() { # description, command...
  local what=$1; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $what"; else failed=$((failed + 1)); echo "FAIL $what"; fi
}

answers_help() { # image, expected text
  local help
  help=$("${podman_run[@]}" --rm "localhost/videocall/$1:$tag" --help 2>&1) || return 1
  grep -q "$2" <<<"$help"
}

# Runs a server image in the background as the image's own user; prints its container id. The
# container is kept after it exits, for its log, until stops_on_sigterm removes it.
# Stops a server's container as Kubernetes would (SIGTERM, then SIGKILL after 8 s): the binary,
# PID 1 in its container, must exit by itself. Prints its log when anything failed before.
stops_on_sigterm() { # container id; uses $ok of the caller
  [ "$ok" = 1 ] || podman logs "$1" >&2 || true
  local started=$SECONDS stopped=0
  podman stop --time 8 "$1" >/dev/null 2>&1 || true
  [ $((SECONDS - started)) -lt 8 ] && stopped=1
  [ $stopped = 1 ] || log "$1 ignored SIGTERM"
  podman rm -f "$1" >/dev/null 2>&1 || true
  [ $stopped = 1 ]
}

serve() { # image, args...
  local image=$1; shift
  "${podman_run[@]}" -d "localhost/videocall/$image:$tag" "$@"
}

relay_serves() {
  local admin ws id ok=1
  admin=$(free_port); ws=$(free_port)
  id=$(serve relay --relay-id relays-0 --webtransport-addr "127.0.0.1:$(free_port)" \
    --websocket-addr "127.0.0.1:$ws" --admin-addr "127.0.0.1:$admin" --self-signed-names localhost)
  wait_for "relay /healthz" 30 curl -sf "http://127.0.0.1:$admin/healthz" || ok=0
  local metrics
  [ $ok = 1 ] && { metrics=$(curl -sf "http://127.0.0.1:$admin/metrics") && grep -q videocall_relay_participants <<<"$metrics" || ok=0; }
  stops_on_sigterm "$id" || ok=0
  [ $ok = 1 ]
}

control_plane_serves() {
  local port id ok=1
  port=$(free_port)
  # SQLite in the image's writable layer; the page comes from /srv/web.
  id=$(serve control-plane --grpc-addr "127.0.0.1:$port" --database-url "sqlite:///tmp/cp.db?mode=rwc" \
    --web-dir /srv/web --bootstrap-admin-password "image-test-password")
  # grpc.health.v1 over grpc-web: an empty request frame; SERVING is field 1 = 1 (08 01).
  health() {
    local answer
    answer=$(printf '\0\0\0\0\0' | curl -sf -X POST -H 'content-type: application/grpc-web+proto' \
      --data-binary @- "http://127.0.0.1:$port/grpc.health.v1.Health/Check" | od -An -tx1 | tr -d ' \n') || return 1
    [[ "$answer" == 00000000020801* ]]
  }
  wait_for "control plane health (grpc-web)" 30 health || ok=0
  local page
  [ $ok = 1 ] && { page=$(curl -sf "http://127.0.0.1:$port/meeting/guest/demo") && grep -qi "<html" <<<"$page" || ok=0; }
  stops_on_sigterm "$id" || ok=0
  [ $ok = 1 ]
}

# The streamer, in its image: the admin port serves /metrics while it retries an unreachable
# control plane, and SIGTERM stops it at once.
streamer_serves() { # image tag, [podman run options]
  local image_tag=$1 admin id ok=1; shift
  admin=$(free_port)
  id=$("${podman_run[@]}" -d "$@" "localhost/videocall/streamer:$image_tag" stream \
    --control-plane-url http://127.0.0.1:1 --meeting-id shelf --user-id pi --resolution 320x240 \
    --admin-addr "127.0.0.1:$admin")
  local metrics
  wait_for "streamer /metrics" 60 curl -sf "http://127.0.0.1:$admin/metrics" || ok=0
  [ $ok = 1 ] && { metrics=$(curl -sf "http://127.0.0.1:$admin/metrics") && grep -q videocall_streamer_frames_sent_total <<<"$metrics" || ok=0; }
  stops_on_sigterm "$id" || ok=0
  [ $ok = 1 ]
}

streamer_is_multiarch() {
  local architectures
  architectures=$(manifest_architectures "localhost/videocall/streamer:$tag-multiarch")
  [ "$architectures" = "amd64 arm64" ] || { log "manifest list: $architectures"; return 1; }
  [ "$(podman image inspect --format '{{.Architecture}}' "localhost/videocall/streamer:$tag-arm64")" = arm64 ]
}

arm64_streamer_answers() { # expected text
  local help
  help=$("${podman_run[@]}" --rm --arch arm64 "localhost/videocall/streamer:$tag-arm64" --help 2>&1) || return 1
  grep -q "$1" <<<"$help"
}

gateway_serves() {
  local admin id ok=1
  admin=$(free_port)
  id=$(serve gateway --quic-addr "127.0.0.1:$(free_port)" --http-addr "127.0.0.1:$(free_port)" \
    --admin-addr "127.0.0.1:$admin" --control-plane-addr 127.0.0.1:1 --relay 0=127.0.0.1:1/127.0.0.1:1)
  wait_for "gateway /healthz" 30 curl -sf "http://127.0.0.1:$admin/healthz" || ok=0
  stops_on_sigterm "$id" || ok=0
  [ $ok = 1 ]
}

# The operator needs an API server: with $KUBECONFIG_FOR_IMAGE (a real one, over HTTPS) and
# $KUBECTL it must connect from inside the container, take its Lease and serve /healthz.
operator_serves() {
  local port id ok=1 dir holder=""
  port=$(free_port)
  dir=$(dirname "$KUBECONFIG_FOR_IMAGE")
  id=$("${podman_run[@]}" -d -v "$dir:$dir:ro" -e "KUBECONFIG=$KUBECONFIG_FOR_IMAGE" \
    "localhost/videocall/operator:$tag" run --control-plane-url http://127.0.0.1:1 \
    --control-plane-api-key vk_x:y --metrics-addr "127.0.0.1:$port" \
    --lease-namespace default --identity image-test)
  wait_for "operator /healthz" 60 curl -sf "http://127.0.0.1:$port/healthz" || ok=0
  lease_held() {
    holder=$("$KUBECTL" --kubeconfig "$KUBECONFIG_FOR_IMAGE" get lease videocall-operator -n default \
      -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null)
    [ "$holder" = image-test ]
  }
  [ $ok = 1 ] && { wait_for "the operator's Lease" 60 lease_held || ok=0; }
  stops_on_sigterm "$id" || ok=0
  [ $ok = 1 ]
}

test_images() {
  check "relay image: --help" answers_help relay "media relay"
  check "control-plane image: --help" answers_help control-plane "control plane"
  check "operator image: --help" answers_help operator "operator"
  check "gateway image: --help" answers_help gateway "Routes QUIC datagrams"
  check "streamer image: --help" answers_help streamer "Edge streamer"
  check "streamer images: one manifest list for amd64 and arm64" streamer_is_multiarch
  register_qemu_binfmt
  check "arm64 streamer image (qemu): --help" arm64_streamer_answers "Edge streamer"
  check "relay image: /healthz and /metrics; stops on SIGTERM" relay_serves
  check "control-plane image: grpc.health.v1 SERVING, the browser client's page; stops on SIGTERM" control_plane_serves
  check "gateway image: /healthz; stops on SIGTERM" gateway_serves
  check "streamer image: /metrics while it retries; stops on SIGTERM" streamer_serves "$tag"
  check "arm64 streamer image (qemu): /metrics while it retries; stops on SIGTERM" streamer_serves "$tag-arm64" --arch arm64
  if [ -n "${KUBECONFIG_FOR_IMAGE:-}" ] && [ -n "${KUBECTL:-}" ]; then
    check "operator image: takes its Lease on a real API server over HTTPS, /healthz; stops on SIGTERM" operator_serves
  else
    echo "skip operator image against an API server (set KUBECONFIG_FOR_IMAGE and KUBECTL)"
  fi
  echo "images: $passed passed, $failed failed"
  [ "$failed" = 0 ]
}

case "${1:-}" in
  bases) bases ;;
  build) build ;;
  test) test_images ;;
  *) echo "usage: $0 bases | build | test" >&2; exit 2 ;;
esac
