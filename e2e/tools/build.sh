#!/usr/bin/env bash
# Builds helm (helm.sh/helm/v3 v3.21.4) and krew + validate-krew-manifest (sigs.k8s.io/krew
# v0.4.3) from the Go module proxy into a cache outside the clone, keyed by go.mod/go.sum/this
# script and the Go version. Prints the binary directory on stdout; a second run with the same
# key builds nothing. A module of its own (not ../controlplane): helm and krew bring other
# k8s.io versions than the control plane's v1.37.2 pins.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOTOOLCHAIN=local GOFLAGS="-trimpath -mod=mod" CGO_ENABLED=0 GOSUMDB="${GOSUMDB:-sum.golang.org}"
key=$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" <(go version) | sha256sum | cut -c1-16)
bin="${SWH_BIN_CACHE:-$HOME/.cache/swh}/tools-$key"
if [ -x "$bin/helm" ] && [ -x "$bin/krew" ] && [ -x "$bin/validate-krew-manifest" ]; then
  echo "$bin"; exit 0
fi
# One build at a time (test binaries may call this at once); the loser finds the cache.
mkdir -p "$(dirname "$bin")"
exec 9>"$bin.lock"
flock 9
if [ -x "$bin/helm" ] && [ -x "$bin/krew" ] && [ -x "$bin/validate-krew-manifest" ]; then
  echo "$bin"; exit 0
fi
tmp="$bin.partial.$$"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
cd "$here"
echo "building helm, krew, validate-krew-manifest into $bin" >&2
# helm's version string, and the Kubernetes version `helm template` and `helm lint` assume (the k8s.io modules' 1.36;
# without it helm assumes 1.20 and refuses the chart's kubeVersion >=1.33).
ldf="-s -w -X helm.sh/helm/v3/internal/version.version=v3.21.4 -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldf="$ldf -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=36"
done
go build -ldflags "$ldf" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm >&2
ldk="-s -w -X sigs.k8s.io/krew/internal/version.gitTag=v0.4.3"
go build -ldflags "$ldk" -o "$tmp/" sigs.k8s.io/krew/cmd/krew sigs.k8s.io/krew/cmd/validate-krew-manifest >&2
# kubectl finds krew as the plugin "kubectl-krew".
ln -s krew "$tmp/kubectl-krew"
rm -rf "$bin"; mv "$tmp" "$bin"; trap - EXIT
echo "tools built in $(( $(date +%s) - start ))s" >&2
ls -l "$bin" >&2
echo "$bin"
