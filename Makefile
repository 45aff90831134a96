# swh: ServiceWithHealthchecks for Kubernetes. `make demo` and `make test` are the two commands.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
LOCAL_DIR ?= target/swh-local
export SWH_LOCAL_DIR := $(abspath $(LOCAL_DIR))

.PHONY: help prereqs controlplane build up down demo test check-deps fmt lint

help:
	@echo "make demo   # local control plane + smoke check"
	@echo "make test   # unit + e2e tests against a real local control plane"
	@echo "make up / make down   # start / stop the local control plane"

prereqs:
	@bash e2e/prereqs.sh

controlplane: prereqs
	@e2e/controlplane/build.sh >/dev/null

build:
	cargo build --workspace --bins

up: prereqs build
	@bin=$$(e2e/controlplane/build.sh); \
	target/debug/swh-local up --bin-dir "$$bin"; \
	echo "kubectl (v1.37.2): $$bin/kubectl"

down:
	@if [ -x target/debug/swh-local ]; then target/debug/swh-local down; \
	else cargo run -q -p swh-e2e --bin swh-local -- down; fi

demo: up
	@bin=$$(e2e/controlplane/build.sh); export KUBECONFIG=$(SWH_LOCAL_DIR)/kubeconfig; \
	export PATH="$$bin:$(CURDIR)/target/debug:$$PATH"; \
	target/debug/swh-local demo; \
	echo; echo "$$ kubectl get swh -n my-ns"; kubectl get swh -n my-ns; \
	echo; echo "$$ kubectl get endpointslices -n my-ns -l endpointslice.kubernetes.io/managed-by=swh-agent.network.deckhouse.io"; \
	kubectl get endpointslices -n my-ns -l endpointslice.kubernetes.io/managed-by=swh-agent.network.deckhouse.io \
	  -o custom-columns='NAME:.metadata.name,SERVICE:.metadata.labels.kubernetes\.io/service-name,ADDRESSES:.endpoints[*].addresses[0],READY:.endpoints[*].conditions.ready'; \
	echo; echo "$$ kubectl swh status -A"; kubectl swh status -A; \
	echo; echo "$$ kubectl swh status -n my-ns postgres-write"; kubectl swh status -n my-ns postgres-write; \
	echo; echo "Everything keeps running: export KUBECONFIG=$(SWH_LOCAL_DIR)/kubeconfig; make down stops it."

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
