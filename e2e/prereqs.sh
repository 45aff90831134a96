#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh machine (Debian, as root), and nothing
# when it is already there: iproute2 for the pod network, PostgreSQL server binaries, and for
# the real nodes containerd + runc, the CNI plugins, nftables (kube-proxy), socat (API relays),
# and what the images are made of (catatonit, static busybox, binutils for strip).
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
command -v runuser >/dev/null || need+=(util-linux)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] \
  || need+=(containernetworking-plugins)
command -v nft >/dev/null || need+=(nftables)
command -v socat >/dev/null || need+=(socat)
command -v nsenter >/dev/null || need+=(util-linux)
command -v catatonit >/dev/null || need+=(catatonit)
[ -x /usr/bin/busybox ] && ! ldd /usr/bin/busybox >/dev/null 2>&1 || need+=(busybox-static)
command -v strip >/dev/null || need+=(binutils)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
{ command -v prometheus >/dev/null && command -v promtool >/dev/null; } || need+=(prometheus)
command -v go >/dev/null || { echo "prereqs: Go is required to build the control plane" >&2; exit 1; }
command -v cargo >/dev/null || { echo "prereqs: Rust (cargo) is required" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
  echo "prereqs: run as root (the pod network uses network namespaces)" >&2; exit 1
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "prereqs: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
# Debian's postgresql package may start a cluster of its own; the tests start their own servers.
if command -v pg_lsclusters >/dev/null; then
  pg_lsclusters -h 2>/dev/null | awk '$4=="online"{print $1, $2}' | while read -r v c; do
    pg_ctlcluster "$v" "$c" stop >&2 || true
  done
fi
# Debian's prometheus package may start a server of its own; the tests start their own.
if [ -x /etc/init.d/prometheus ] && pgrep -x prometheus >/dev/null 2>&1; then
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus >&2 || true
  else
    /etc/init.d/prometheus stop >&2 || true
  fi
fi
