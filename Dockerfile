# One image per binary of the workspace:
#   docker build --build-arg BINARY=videocall-relay         -t videocall/relay:0.1.0 .
#   docker build --build-arg BINARY=videocall-control-plane -t videocall/control-plane:0.1.0 .
#   docker build --build-arg BINARY=videocall-operator      -t videocall/operator:0.1.0 .
# The Helm chart and manifests/ expect these repository names (prefix them with your registry
# through the chart's image.registry).
FROM rust:1.95-bookworm AS build
ARG BINARY
WORKDIR /src
COPY . .
RUN test -n "$BINARY" \
 && cargo build --release --locked --bin "$BINARY" \
 && install -m 0755 "target/release/$BINARY" /usr/local/bin/videocall-entrypoint

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/videocall-entrypoint /usr/local/bin/videocall-entrypoint
# The chart and the operator run every container as this non-root user (fsGroup makes the
# control plane's SQLite volume writable).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/videocall-entrypoint"]
