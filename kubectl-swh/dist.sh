#!/usr/bin/env bash
# `make dist`: the kubectl plugin as krew installs it.
#
#   target/dist/kubectl-swh_<version>_linux_amd64.tar.gz   kubectl-swh, kubectl_complete-swh, LICENSE
#   target/dist/swh.yaml                                    krew manifest (from plugins/swh.yaml) with its sha256
#
# Options: --release (or RELEASE=1): a release build; default the debug build
# (`cargo build -p kubectl-swh`, nothing to do when it is up to date). --bin-dir DIR: take the
# two binaries from DIR, build nothing. --out DIR: write there instead of target/dist.
# DIST_URL: where the archive will be published (the manifest's uri; default a placeholder,
# install with `kubectl krew install --manifest=target/dist/swh.yaml --archive=<the archive>`).
# The archive is reproducible: same binaries and SOURCE_DATE_EPOCH (default: the last commit's
# time) give the same bytes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

release=${RELEASE:+1}
bin_dir=
out=target/dist
while [ $# -gt 0 ]; do
  case "$1" in
    --release) release=1 ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift ;;
    --out) out=${2:?--out needs a directory}; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "dist.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

version=$(awk '/^\[workspace\.package\]/ { s = 1; next } /^\[/ { s = 0 }
  s && /^version *=/ { gsub(/^version *= *"|".*$/, ""); print; exit }' Cargo.toml)
if ! [[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "dist.sh: no semantic version in Cargo.toml's [workspace.package] (found '$version')" >&2
  exit 1
fi

if [ -z "$bin_dir" ]; then
  if [ -n "$release" ]; then
    cargo build --release --locked -p kubectl-swh >&2
    bin_dir=target/release
  else
    cargo build --locked -p kubectl-swh >&2
    bin_dir=target/debug
  fi
fi
for b in kubectl-swh kubectl_complete-swh; do
  if [ ! -x "$bin_dir/$b" ]; then
    echo "dist.sh: $bin_dir/$b is missing (cargo build -p kubectl-swh)" >&2
    exit 1
  fi
done
# A stale binary would ship under the wrong version.
got=$("$bin_dir/kubectl-swh" --version)
if [ "$got" != "kubectl swh $version" ]; then
  echo "dist.sh: $bin_dir/kubectl-swh --version says '$got', Cargo.toml says $version; rebuild" >&2
  exit 1
fi

epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}
name="kubectl-swh_${version}_linux_amd64.tar.gz"
url=${DIST_URL:-https://example.invalid/swh/releases/download/v$version}
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$bin_dir/kubectl-swh" "$bin_dir/kubectl_complete-swh" "$stage/"
install -m 0644 LICENSE "$stage/LICENSE"
# Without debug info (a debug build's 180 MB become 45; the symbols stay).
if command -v strip >/dev/null; then
  strip --strip-debug "$stage/kubectl-swh" "$stage/kubectl_complete-swh"
fi
tar --sort=name --format=gnu --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -C "$stage" -cf - LICENSE kubectl-swh kubectl_complete-swh | gzip -n >"$stage/$name"
mv "$stage/$name" "$out/$name"
sha=$(sha256sum "$out/$name" | cut -d' ' -f1)

uri="${url%/}/$name"
uri=${uri//\\/\\\\}; uri=${uri//&/\\&}; uri=${uri//|/\\|}   # literal in sed's replacement
sed -e "s|{{VERSION}}|v$version|g" -e "s|{{URI}}|$uri|g" -e "s|{{SHA256}}|$sha|g" \
  plugins/swh.yaml >"$out/swh.yaml"
if grep -q '{{' "$out/swh.yaml"; then
  echo "dist.sh: a placeholder is left in $out/swh.yaml" >&2
  exit 1
fi
echo "$out/$name"
echo "$out/swh.yaml"
echo "install: kubectl krew install --manifest=$out/swh.yaml --archive=$out/$name" >&2
