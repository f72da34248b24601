# One image per binary of the workspace:
#   docker build --build-arg BINARY=videocall-relay                     -t videocall/relay:0.1.0 .
#   docker build --build-arg BINARY=videocall-control-plane --build-arg WEB=1 -t videocall/control-plane:0.1.0 .
#   docker build --build-arg BINARY=videocall-operator                  -t videocall/operator:0.1.0 .
#   docker build --build-arg BINARY=videocall-gateway                   -t videocall/gateway:0.1.0 .
# The edge streamer for x86 nodes and Raspberry Pis (arm64), as one multi-arch image; the build
# stage runs on the build machine's architecture and cross-compiles for the other:
#   docker buildx build --platform linux/amd64,linux/arm64 --build-arg BINARY=videocall-streamer \
#     -t videocall/streamer:0.1.0 .
# Without Docker or a registry, scripts/images.sh builds the same images (same entrypoint, user
# and /srv/web) with buildah on a debootstrap base, the streamer for amd64 and arm64 under one
# manifest list; scripts/test.sh builds and runs them (arm64 under qemu-user-static).
# WEB=1 also builds the browser client into /srv/web, which the control plane serves
# (CONTROL_PLANE_WEB_DIR). The Helm chart and manifests/ expect these repository names (prefix
# them with your registry through the chart's image.registry).
FROM --platform=$BUILDPLATFORM rust:1.95-bookworm AS build
ARG BINARY
ARG WEB=0
ARG BUILDARCH
ARG TARGETARCH
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
# nasm: openh264's x86 assembly (the streamer's encoder is about 3x slower without it); cmake:
# libopus (the streamer's sound); libasound2-dev: its microphone. For an arm64 image on another
# machine: Debian's cross gcc, arm64 libasound and the rustup target (openh264 then builds its
# NEON assembly).
RUN apt-get update && apt-get install -y --no-install-recommends nasm cmake libasound2-dev \
 && if [ "$TARGETARCH" != "$BUILDARCH" ]; then \
      test "$TARGETARCH" = arm64 || { echo "cross builds go to arm64 only" >&2; exit 1; }; \
      dpkg --add-architecture arm64 && apt-get update \
      && apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
        libc6-dev-arm64-cross libasound2-dev:arm64 && rustup target add aarch64-unknown-linux-gnu; \
    fi
RUN test -n "$BINARY" \
 && if [ "$TARGETARCH" = "$BUILDARCH" ]; then \
      cargo build --release --locked --bin "$BINARY" \
      && install -m 0755 "target/release/$BINARY" /usr/local/bin/videocall-entrypoint; \
    else \
      CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
      CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
      CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++ \
      AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
      PKG_CONFIG_ALLOW_CROSS=1 \
      PKG_CONFIG_LIBDIR_aarch64_unknown_linux_gnu=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
      cargo build --release --locked --target aarch64-unknown-linux-gnu --bin "$BINARY" \
      && install -m 0755 "target/aarch64-unknown-linux-gnu/release/$BINARY" /usr/local/bin/videocall-entrypoint; \
    fi
RUN mkdir -p /srv/web \
 && if [ "$WEB" = 1 ]; then \
      apt-get update && apt-get install -y --no-install-recommends nodejs npm \
      && scripts/web-build.sh && cp -r web/dist/. /srv/web/; \
    fi

FROM debian:bookworm-slim
# libasound2: the streamer's microphone (ALSA); the other binaries do not use it.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libasound2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/videocall-entrypoint /usr/local/bin/videocall-entrypoint
COPY --from=build /srv/web /srv/web
# The chart and the operator run every container as this non-root user (fsGroup makes the
# control plane's SQLite volume writable).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/videocall-entrypoint"]
