#!/usr/bin/env bash
# The streamer for a Raspberry Pi (aarch64), cross-built and tested here under qemu-aarch64.
#
#   scripts/aarch64.sh test            cross-build; unit and CLI tests under qemu; the aarch64
#                                      binary streams into an x86 platform (platform/tests/streamer.rs)
#   scripts/aarch64.sh build [PROFILE] the aarch64 videocall-streamer (default: release)
#   scripts/aarch64.sh bench [ARGS]    streamer-bench (release) under qemu-aarch64: an indication only
#
# Debian's cross gcc links and builds openh264's C++ and its NEON assembly (the check below
# fails when the binary lacks the assembly) and libopus (cmake); libasound comes from Debian's
# arm64 packages; `qemu-user` runs the results.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

target=aarch64-unknown-linux-gnu
sysroot=/usr/aarch64-linux-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
# The cross sysroot's C library first: Debian's arm64 libc6 (pulled in by libasound2:arm64)
# sits in /lib/aarch64-linux-gnu, which the loader would search before the sysroot's /lib, and
# the sysroot's loader with another build's libc spins at start. (Under -L, the guest's /lib is
# the sysroot's.) libasound itself is found in /lib/aarch64-linux-gnu.
qemu="qemu-aarch64 -L $sysroot -E LD_LIBRARY_PATH=/lib"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$qemu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# libasound (the microphone) from Debian's arm64 packages, installed beside the host's (multiarch).
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig
# For binaries a test spawns (testkit::command).
export VIDEOCALL_TEST_RUNNER="$qemu"

setup() {
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding Debian's arm64 packages (multiarch), for libasound2-dev:arm64"
    dpkg --add-architecture arm64
  fi
  need_apt gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user cmake \
    libasound2-dev:arm64
  if command -v rustup >/dev/null 2>&1; then
    rustup target add "$target" >/dev/null 2>&1
  fi
}

# The binary must carry openh264's AArch64 NEON routines, not only its C fallbacks.
check_neon() {
  local binary=$1 count
  count=$(aarch64-linux-gnu-nm "$binary" | grep -c '_AArch64_neon$' || true)
  if [ "$count" -lt 50 ]; then
    log "$binary has $count openh264 NEON routines: the ARM assembly was not built"
    exit 1
  fi
  log "$binary: $count openh264 NEON routines"
}

case "${1:-test}" in
  test)
    setup
    echo "== aarch64: cargo test -p videocall-streamer (under qemu-aarch64)"
    # Release: the same build then makes the arm64 image (scripts/images.sh), and the tests
    # run faster under qemu.
    cargo test --locked --target "$target" --release -p videocall-streamer
    binary="$CARGO_TARGET_DIR/$target/release/videocall-streamer"
    check_neon "$binary"
    echo "== aarch64: the aarch64 streamer into an x86 platform (platform/tests/streamer.rs)"
    VIDEOCALL_STREAMER_BIN="$binary" cargo test --locked -p videocall-platform --test streamer
    ;;
  build)
    setup
    profile=${2:-release}
    cargo build --locked --target "$target" --profile "$profile" -p videocall-streamer --bin videocall-streamer
    dir=$profile; [ "$profile" = dev ] && dir=debug
    check_neon "$CARGO_TARGET_DIR/$target/$dir/videocall-streamer"
    ;;
  bench)
    setup
    shift
    cargo build --locked --release --target "$target" -p videocall-streamer --bin streamer-bench
    $qemu "$CARGO_TARGET_DIR/$target/release/streamer-bench" "$@"
    ;;
  *)
    echo "usage: $0 test|build [PROFILE]|bench [ARGS]" >&2
    exit 2
    ;;
esac
