# One image with the three in-cluster binaries (swh-controller, swh-agent, swh-webhook).
# Not built in CI: the development machines have no container runtime. Build it with
#   docker build -t swh:dev .
# and point the images in config/ at it (kustomize `images:`), e.g.
#   cd config/controller && kustomize edit set image swh-controller=swh:dev
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p swh-controller -p swh-agent -p swh-webhook

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/swh-controller /src/target/release/swh-agent /src/target/release/swh-webhook /usr/local/bin/
USER 65532:65532
