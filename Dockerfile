# Images for the three in-cluster binaries, one build target each:
#   docker build --target swh-controller -t swh-controller:dev .
#   docker build --target swh-agent      -t swh-agent:dev .
#   docker build --target swh-webhook    -t swh-webhook:dev .
# then point config/ at them (kustomize `images:`). Not built in CI: the development machines
# have no container runtime.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p swh-controller -p swh-agent -p swh-webhook

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532

FROM runtime AS swh-controller
COPY --from=build /src/target/release/swh-controller /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/swh-controller"]

FROM runtime AS swh-agent
COPY --from=build /src/target/release/swh-agent /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/swh-agent"]

FROM runtime AS swh-webhook
COPY --from=build /src/target/release/swh-webhook /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/swh-webhook"]
