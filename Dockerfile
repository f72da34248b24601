# One image per binary of the workspace:
#   docker build --build-arg BINARY=videocall-relay                     -t videocall/relay:0.1.0 .
#   docker build --build-arg BINARY=videocall-control-plane --build-arg WEB=1 -t videocall/control-plane:0.1.0 .
#   docker build --build-arg BINARY=videocall-operator                  -t videocall/operator:0.1.0 .
#   docker build --build-arg BINARY=videocall-gateway                   -t videocall/gateway:0.1.0 .
# Without Docker or a registry, scripts/images.sh builds the same images (same entrypoint, user
# and /srv/web) with buildah on a debootstrap base; scripts/test.sh builds and runs them.
# WEB=1 also builds the browser client into /srv/web, which the control plane serves
# (CONTROL_PLANE_WEB_DIR). The Helm chart and manifests/ expect these repository names (prefix
# them with your registry through the chart's image.registry).
FROM rust:1.95-bookworm AS build
ARG BINARY
ARG WEB=0
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
RUN test -n "$BINARY" \
 && cargo build --release --locked --bin "$BINARY" \
 && install -m 0755 "target/release/$BINARY" /usr/local/bin/videocall-entrypoint
RUN mkdir -p /srv/web \
 && if [ "$WEB" = 1 ]; then \
      apt-get update && apt-get install -y --no-install-recommends nodejs npm \
      && scripts/web-build.sh && cp -r web/dist/. /srv/web/; \
    fi

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/videocall-entrypoint /usr/local/bin/videocall-entrypoint
COPY --from=build /srv/web /srv/web
# The chart and the operator run every container as this non-root user (fsGroup makes the
# control plane's SQLite volume writable).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/videocall-entrypoint"]
