#!/usr/bin/env bash
# `make test`: unit tests and e2e tests against two local clusters, started here and always
# stopped on exit: a process-mode cluster (the components as host processes, fake Nodes; the
# fast tests) and a real-node cluster (node-a and node-b with kubelet, containerd and
# kube-proxy; the components installed from config/ as pods from locally built images; the
# traffic tests in e2e/tests/real_nodes.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(e2e/controlplane/build.sh)
export SWH_K8S_BIN="$bin"
# helm, krew and validate-krew-manifest for the chart and plugin tests (cached like the above).
SWH_TOOLS_BIN=$(bash e2e/tools/build.sh)
export SWH_TOOLS_BIN
export SWH_LOCAL_DIR="$PWD/target/swh-test"
export SWH_REAL_DIR="$PWD/target/swh-test-real"
cargo build --workspace --all-targets --locked
# Images from the debug binaries just built (no release build in CI).
bash e2e/images.sh --no-build
down() {
  target/debug/swh-local --dir "$SWH_REAL_DIR" down || true
  target/debug/swh-local --dir "$SWH_LOCAL_DIR" down || true
}
trap down EXIT
target/debug/swh-local --dir "$SWH_LOCAL_DIR" up --bin-dir "$bin" --tag test --link 1 --pod-range 246 >/dev/null
target/debug/swh-local --dir "$SWH_REAL_DIR" up --bin-dir "$bin" --tag rtest --link 2 --pod-range 247 \
  --service-range 98 --real-nodes --images target/images >/dev/null
export KUBECONFIG="$SWH_LOCAL_DIR/kubeconfig"
export PATH="$bin:$PWD/target/debug:$PATH"
cargo test --workspace --locked --no-fail-fast -- --test-threads=4
