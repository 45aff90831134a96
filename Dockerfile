# Images for the three in-cluster binaries, one build target each:
#   docker build --target swh-controller -t swh-controller:dev .
#   docker build --target swh-agent      -t swh-agent:dev .
#   docker build --target swh-webhook    -t swh-webhook:dev .
# then point config/ at them (kustomize `images:`).
#
# The runtime is `scratch` with only what the binaries need, the same files `make images`
# (e2e/images.sh) puts in its images: the binary (stripped of debug info) at
# /usr/local/bin/<name>, the shared libraries ldd lists (libc, libm, libgcc_s) and the dynamic
# loader, /etc/ssl/certs/ca-certificates.crt, /etc/passwd and /etc/group with root and
# nonroot (65532, home /home/nonroot), /etc/nsswitch.conf, /tmp 1777; USER 65532:65532,
# ENTRYPOINT ["/usr/local/bin/<name>"]. No shell, like a distroless image.
#
# `make images` is the Docker-free way (the development machines have no Docker): it builds the
# same paths, user and entrypoint as docker-archive tarballs in target/images/ with tar and
# sha256sum (localhost/<name>:dev, importable with `ctr -n k8s.io images import`), from the
# debug binaries or, with RELEASE=1, the release ones.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p swh-controller -p swh-agent -p swh-webhook

# The runtime's files under /rootfs, the stripped binaries under /out.
FROM build AS files
RUN set -eu; r=/rootfs; bins="swh-controller swh-agent swh-webhook"; \
    mkdir -p "$r/etc/ssl/certs" "$r/home/nonroot" "$r/tmp" /out; \
    chmod 1777 "$r/tmp"; chown 65532:65532 "$r/home/nonroot"; \
    for b in $bins; do strip --strip-debug -o "/out/$b" "target/release/$b"; done; \
    for l in $(cd /out && ldd $bins | grep -oE '(^|[[:space:]])/[^ ]+' | sort -u); do \
      mkdir -p "$r$(dirname "$l")"; cp -L "$l" "$r$l"; \
    done; \
    cp -L /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"; \
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$r/etc/group"; \
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"

FROM scratch AS runtime
COPY --from=files /rootfs/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /
USER 65532:65532

FROM runtime AS swh-controller
COPY --from=files /out/swh-controller /usr/local/bin/swh-controller
ENTRYPOINT ["/usr/local/bin/swh-controller"]

FROM runtime AS swh-agent
COPY --from=files /out/swh-agent /usr/local/bin/swh-agent
ENTRYPOINT ["/usr/local/bin/swh-agent"]

FROM runtime AS swh-webhook
COPY --from=files /out/swh-webhook /usr/local/bin/swh-webhook
ENTRYPOINT ["/usr/local/bin/swh-webhook"]
