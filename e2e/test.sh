#!/usr/bin/env bash
# `make test`: unit tests and e2e tests against one shared local control plane, started here
# and always stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(e2e/controlplane/build.sh)
export SWH_K8S_BIN="$bin"
export SWH_LOCAL_DIR="$PWD/target/swh-test"
cargo build --workspace --all-targets --locked
trap 'target/debug/swh-local --dir "$SWH_LOCAL_DIR" down' EXIT
target/debug/swh-local --dir "$SWH_LOCAL_DIR" up --bin-dir "$bin" --tag test --link 1 --pod-range 246 >/dev/null
export KUBECONFIG="$SWH_LOCAL_DIR/kubeconfig"
export PATH="$bin:$PWD/target/debug:$PATH"
cargo test --workspace --locked --no-fail-fast -- --test-threads=4
