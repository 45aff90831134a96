# swh: ServiceWithHealthchecks for Kubernetes. `make demo` and `make test` are the two commands.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
LOCAL_DIR ?= target/swh-local
export SWH_LOCAL_DIR := $(abspath $(LOCAL_DIR))

.PHONY: help prereqs controlplane build images up down demo test check-deps fmt lint bench-webhook bench-agent bench-traffic dist

help:
	@echo "make demo   # a local cluster with two real nodes, swh installed from config/, the seed scenarios as pods"
	@echo "make test   # unit + e2e tests against real local clusters"
	@echo "make up / make down   # start / stop the process-mode cluster (make down stops either)"
	@echo "make images [RELEASE=1]   # the images as archives in target/images/"

prereqs:
	@bash e2e/prereqs.sh

controlplane: prereqs
	@e2e/controlplane/build.sh >/dev/null

build:
	cargo build --workspace --bins

# Images without Docker (docker-archive tarballs in target/images/) from the debug binaries,
# or from a release build with RELEASE=1; CHECK=1 then runs them (chroot as their user, and a
# throwaway containerd that imports them; root, ~20 s).
images: prereqs
	@bash e2e/images.sh $(if $(RELEASE),--release,) $(if $(CHECK),--check,)

up: prereqs build
	@bin=$$(e2e/controlplane/build.sh); \
	target/debug/swh-local up --bin-dir "$$bin"; \
	echo "kubectl (v1.37.2): $$bin/kubectl"

down:
	@if [ -x target/debug/swh-local ]; then target/debug/swh-local down; \
	else cargo run -q -p swh-e2e --bin swh-local -- down; fi

# The demo on real nodes: node-a and node-b (kubelet, containerd, kube-proxy), swh installed
# from config/ as pods, the Deckhouse seed scenarios as real pods, then one request through
# each ClusterIP from inside node-a.
demo: prereqs build images
	@bin=$$(e2e/controlplane/build.sh); export KUBECONFIG=$(SWH_LOCAL_DIR)/kubeconfig; \
	export PATH="$$bin:$(CURDIR)/target/debug:$$PATH"; start=$$(date +%s); \
	target/debug/swh-local up --bin-dir "$$bin" --real-nodes --images target/images >/dev/null; \
	target/debug/swh-local demo; \
	echo; echo "$$ kubectl get nodes -o wide"; kubectl get nodes -o wide; \
	echo; echo "$$ kubectl -n swh-system get pods -o wide"; kubectl -n swh-system get pods -o wide; \
	echo; echo "$$ kubectl -n my-ns get pods -o wide"; kubectl -n my-ns get pods -o wide; \
	echo; echo "$$ kubectl get endpointslices -n my-ns -l endpointslice.kubernetes.io/managed-by=swh-agent.network.deckhouse.io"; \
	kubectl get endpointslices -n my-ns -l endpointslice.kubernetes.io/managed-by=swh-agent.network.deckhouse.io \
	  -o custom-columns='NAME:.metadata.name,SERVICE:.metadata.labels.kubernetes\.io/service-name,ADDRESSES:.endpoints[*].addresses[0],READY:.endpoints[*].conditions.ready'; \
	echo; echo "$$ kubectl swh status -A"; kubectl swh status -A; \
	echo; target/debug/swh-local requests --node node-a; \
	echo; echo "demo ready in $$(( $$(date +%s) - start ))s. Try: target/debug/swh-local run --node node-a -- curl -s http://CLUSTER-IP/"; \
	echo "Everything keeps running: export KUBECONFIG=$(SWH_LOCAL_DIR)/kubeconfig; make down stops it."

# Fails when the ring crypto provider enters the dependency tree (one provider: aws-lc-rs).
check-deps:
	@if cargo tree --workspace -i ring -e normal,build 2>/dev/null | grep -q ring; then \
	  echo "ring is in the dependency tree:"; cargo tree --workspace -i ring; exit 1; fi
	@echo "check-deps: no ring in the dependency tree"

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets

test: prereqs check-deps
	@bash e2e/test.sh

# Webhook benchmark: a release swh-webhook pinned to core 0, driven over loopback TLS from
# core 1 at a steady rate and at saturation. Needs `make up` (for the PKI). Prints p50/p99,
# throughput and RSS.
bench-webhook:
	cargo build --release -p swh-webhook
	@pki=$(SWH_LOCAL_DIR)/pki; test -f $$pki/webhook.crt || { echo "run make up first"; exit 1; }; \
	d=$$(mktemp -d); \
	taskset -c 0 target/release/swh-webhook --listen 127.0.0.1:19443 --admin-listen 127.0.0.1:19444 \
	  --tls-cert-file $$pki/webhook.crt --tls-key-file $$pki/webhook.key --no-api >$$d/log 2>&1 & pid=$$!; \
	trap "kill $$pid; rm -rf $$d" EXIT; sleep 1; \
	taskset -c 1 target/release/swh-webhook-bench --url https://127.0.0.1:19443 --ca $$pki/ca.crt \
	  --rate 500 --duration 10 --concurrency 8 --pid $$pid

# Agent benchmark on a private cluster of its own: 2,000 pods × (TCP + HTTP) at 1 s on one
# node (agent CPU, RSS, probes/s, scheduling lag, raw connect floor) and detection latency over
# flips. Prints figures; see e2e/BENCHMARKS.md.
bench-agent: prereqs
	cargo build --release -p swh-agent -p swh-e2e
	cargo build -p swh-webhook -p swh-controller
	target/release/swh-bench-agent --k8s-bin-dir "$$(e2e/controlplane/build.sh)" --agent-bin target/release/swh-agent

# Traffic benchmark on a private real-node cluster: SWH_FLAPS (default 20) HTTP flips through a
# ClusterIP from inside node-a; prints per flip the slice delay, the last request to the failing
# pod after the slice change, failed requests, and kube-proxy's network-programming p50/p99.
bench-traffic: prereqs build images
	@bin=$$(e2e/controlplane/build.sh); d=$(CURDIR)/target/swh-bench-traffic; \
	trap "target/debug/swh-local --dir $$d down" EXIT; \
	target/debug/swh-local --dir $$d up --bin-dir "$$bin" --tag btraf --link 3 --pod-range 249 \
	  --service-range 97 --real-nodes --images target/images >/dev/null; \
	SWH_REAL_DIR=$$d SWH_FLAPS=$${SWH_FLAPS:-20} PATH="$$bin:$(CURDIR)/target/debug:$$PATH" \
	  cargo test -q -p swh-e2e --test real_nodes http_flap -- --nocapture

# The kubectl plugin for krew: target/dist/kubectl-swh_<version>_linux_amd64.tar.gz
# (kubectl-swh, kubectl_complete-swh, LICENSE; reproducible) and its manifest target/dist/swh.yaml
# (from plugins/swh.yaml, with the archive's sha256). The debug build, or RELEASE=1; DIST_URL=
# where the archive will be published.
dist:
	@bash kubectl-swh/dist.sh $(if $(RELEASE),--release,)
