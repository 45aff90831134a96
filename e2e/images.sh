#!/usr/bin/env bash
# Builds the container images of the project as docker-archive tarballs in target/images/,
# without Docker or buildah: each image is one reproducible layer made with tar, a config JSON
# and a manifest.json written by hand, checksummed with sha256sum. Import one with
#   ctr -a SOCK -n k8s.io images import target/images/swh-agent.tar
# (containerd names the image from manifest.json's RepoTags). Every name is under localhost/
# and no tag is `latest`, so the default pull policy is IfNotPresent and nothing is pulled.
#
#   localhost/swh-controller:dev  swh-controller.tar  \
#   localhost/swh-agent:dev       swh-agent.tar        | /usr/local/bin/<name> (a stripped copy of
#   localhost/swh-webhook:dev     swh-webhook.tar      | target/debug/<name>, target/release/<name>
#   localhost/swh-backend:dev     swh-backend.tar     /  with --release; swh-backend is always
#                                                        the debug test build), the libraries
#       ldd lists, the dynamic loader, /etc/ssl/certs/ca-certificates.crt, nsswitch.conf, passwd
#       and group with nonroot 65532, /tmp 1777; User 65532:65532, Entrypoint the binary
#       (the same paths, user and entrypoint as the Dockerfile's targets).
#   localhost/swh/pause:1         pause.tar     /pause = catatonit, Entrypoint /pause -P, 65535
#   localhost/swh/postgres:15     postgres.tar  Debian's PostgreSQL (the installed major
#       version; the tag is that version): postgres initdb pg_ctl pg_basebackup psql pg_isready
#       in /usr/lib/postgresql/<v>/bin, their libraries, /usr/lib/postgresql/<v>/lib (modules,
#       without the LLVM JIT), /usr/share/postgresql/<v>, /usr/share/zoneinfo, user postgres
#       65532 (home /var/lib/postgresql), /var/run/postgresql and /var/lib/postgresql owned by
#       it, static busybox with sh and a few applets in /bin; User 65532:65532, no entrypoint,
#       PATH=/usr/lib/postgresql/<v>/bin:/bin.
#   localhost/swh/busybox:1       busybox.tar   static busybox, one /bin symlink per applet,
#       /tmp 1777, PATH=/bin, Cmd /bin/sh.
#
# Usage: e2e/images.sh [--release] [--no-build] [--check]   (make images [RELEASE=1] [CHECK=1])
#   --release   cargo build --release the three swh binaries and use target/release/
#               (default: cargo build --workspace --bins, the same artifacts as `make build`)
#   --no-build  use the binaries already in target/ (no cargo build)
#   --check     then, as root (~20 s), run the images: from their unpacked layers (chroot as
#               their user, in a private mount namespace) every binary starts (--help),
#               busybox runs, PostgreSQL does initdb, starts on 127.0.0.1:55432, answers
#               `select 1` (host psql) and stops; and with containerd and ctr installed, a
#               throwaway containerd (own root, state and socket under temp dirs; stopped and
#               removed after) imports every archive, lists the names and runs swh-agent
#               --help and the postgres image's `id -u` and `postgres --version`.
# An image whose inputs did not change is not rebuilt (a stamp per archive). The Debian
# packages it needs (catatonit, busybox-static, binutils, postgresql, ca-certificates) are
# installed when absent if it runs as root; otherwise it stops and says what to install.
set -euo pipefail
umask 022
export LC_ALL=C

die() {
  echo "images: $*" >&2
  exit 1
}

SELF=$(realpath "$0")
cd "$(dirname "$SELF")/.."
ROOT=$PWD
OUT=${SWH_IMAGES_DIR:-$ROOT/target/images}
profile=debug
build=1
check=0
while [ $# -gt 0 ]; do
  case $1 in
    --release) profile=release ;;
    --no-build) build=0 ;;
    --check) check=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

# ---- inputs ------------------------------------------------------------------------------
CA=/etc/ssl/certs/ca-certificates.crt
CATATONIT=/usr/bin/catatonit
BUSYBOX=/usr/bin/busybox
is_static() { [ -x "$1" ] && ! ldd "$1" >/dev/null 2>&1; }
pg_version() {
  local d v=""
  for d in /usr/lib/postgresql/*/bin/postgres; do
    [ -x "$d" ] || continue
    d=${d%/bin/postgres}
    v=${d##*/}
  done
  echo "$v"
}

missing() {
  need=()
  is_static "$CATATONIT" || need+=(catatonit)
  is_static "$BUSYBOX" || need+=(busybox-static)
  command -v strip >/dev/null || need+=(binutils)
  [ -n "$(pg_version)" ] || need+=(postgresql)
  [ -f "$CA" ] || need+=(ca-certificates)
  for c in tar sha256sum ldd awk; do
    command -v "$c" >/dev/null || die "$c not found (coreutils, tar, libc-bin, mawk)"
  done
}
missing
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "images: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || true
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 || true
  missing
fi
for p in "${need[@]}"; do
  case $p in
    catatonit) die "catatonit not installed (static $CATATONIT): apt-get install catatonit" ;;
    busybox-static) die "no static busybox at $BUSYBOX: apt-get install busybox-static" ;;
    binutils) die "strip not found: apt-get install binutils" ;;
    postgresql) die "PostgreSQL not installed (/usr/lib/postgresql/*/bin/postgres): apt-get install postgresql" ;;
    ca-certificates) die "$CA missing: apt-get install ca-certificates" ;;
  esac
done
PGV=$(pg_version)
PG=/usr/lib/postgresql/$PGV

if [ "$build" = 1 ]; then
  if [ "$profile" = release ]; then
    cargo build --release -p swh-controller -p swh-agent -p swh-webhook
    cargo build -p swh-e2e --bin swh-backend
  else
    cargo build --workspace --bins
  fi
fi
for b in swh-controller swh-agent swh-webhook; do
  [ -x "target/$profile/$b" ] || die "target/$profile/$b missing: cargo build$([ "$profile" = release ] && echo ' --release') -p $b"
done
[ -x target/debug/swh-backend ] || die "target/debug/swh-backend missing: cargo build -p swh-e2e --bin swh-backend"

case $(uname -m) in
  x86_64) ARCH=amd64 ;;
  aarch64) ARCH=arm64 ;;
  *) ARCH=$(uname -m) ;;
esac

mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/.work.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SELF_SUM=$(sha256sum "$SELF" | cut -d' ' -f1)

# ---- helpers -----------------------------------------------------------------------------
# A JSON string (the values here are paths and names: only \ and " need escaping).
js() {
  local s=${1//\\/\\\\}
  printf '"%s"' "${s//\"/\\\"}"
}
# A JSON array of strings.
ja() {
  local out="" x
  for x in "$@"; do out+="${out:+,}$(js "$x")"; done
  printf '[%s]' "$out"
}

# Copies FILE... to the same paths under ROOTFS, following symlinks.
copy_to() {
  local r=$1 f
  shift
  for f in "$@"; do
    mkdir -p "$r$(dirname "$f")"
    cp -L "$f" "$r$f"
  done
}

# The shared libraries (and the dynamic loader) ldd lists for FILE..., one per line.
libs_of() {
  local f out
  for f in "$@"; do
    out=$(ldd "$f" 2>&1) || continue # a static binary
    if grep -q 'not found' <<<"$out"; then
      die "$f needs a library that is not installed: $(grep 'not found' <<<"$out" | tr -s ' \t' ' ')"
    fi
    { grep -oE '(^|[[:space:]])/[^ ]+' <<<"$out" || true; } | tr -d ' \t'
  done | sort -u
}

# passwd/group/nsswitch for user NAME (uid/gid 65532, home HOME).
etc_files() {
  local r=$1 name=$2 home=$3 shell=${4:-/sbin/nologin}
  mkdir -p "$r/etc"
  printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:65532:65532:%s:%s:%s\n' \
    "$name" "$name" "$home" "$shell" >"$r/etc/passwd"
  printf 'root:x:0:\n%s:x:65532:\n' "$name" >"$r/etc/group"
  printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
}

tmp_dir() {
  mkdir -p "$1/tmp"
  chmod 1777 "$1/tmp"
}

# Stamp of an image's inputs: this script, the packages installed, and each FILE's path,
# size and mtime (directories: every file under them).
stamp() {
  {
    echo "$SELF_SUM $profile $ARCH"
    stat -L -c '%n %s %Y' /var/lib/dpkg/status 2>/dev/null || true
    local f
    for f in "$@"; do
      if [ -d "$f" ]; then find "$f" -type f -printf '%p %s %T@\n' | sort; else stat -L -c '%n %s %Y' "$f"; fi
    done
  } | sha256sum | cut -d' ' -f1
}

# Whether target/images/FILE is up to date for the stamp of its INPUTS.
fresh() {
  local file=$1
  shift
  STAMP=$(stamp "$@")
  [ -f "$OUT/$file" ] && [ "$(cat "$OUT/.$file.stamp" 2>/dev/null)" = "$STAMP" ]
}

# image FILE TAG ROOTFS USER ENTRYPOINT CMD PATH [OWNED...]
#   ENTRYPOINT, CMD: JSON arrays or "" (unset); OWNED: empty directories of ROOTFS owned by
#   65532:65532 (everything else is root:root). Writes $OUT/FILE and its stamp ($STAMP).
image() {
  local file=$1 tag=$2 r=$3 user=$4 entry=$5 cmd=$6 path=$7
  shift 7
  local d="$WORK/${file%.tar}" tarflags=(--sort=name --mtime=@0 --numeric-owner --format=gnu)
  mkdir -p "$d/arc"
  # The layer: members without a ./ prefix, names sorted, times 0, owners numeric.
  local top=() ex=() p
  mapfile -t top < <(cd "$r" && ls -A)
  for p in "$@"; do ex+=(--exclude="$p"); done
  tar -C "$r" "${tarflags[@]}" --owner=0 --group=0 --anchored "${ex[@]}" -cf "$d/layer.tar" "${top[@]}"
  if [ $# -gt 0 ]; then
    tar -C "$r" "${tarflags[@]}" --owner=65532 --group=65532 --no-recursion -rf "$d/layer.tar" "$@"
  fi
  local diff config csum
  diff=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
  config='{"architecture":'$(js "$ARCH")',"os":"linux","created":"1970-01-01T00:00:00Z","config":{'
  config+='"User":'$(js "$user")',"Env":'$(ja "PATH=$path")
  [ -n "$entry" ] && config+=',"Entrypoint":'$entry
  [ -n "$cmd" ] && config+=',"Cmd":'$cmd
  config+=',"WorkingDir":"/","Labels":{"org.opencontainers.image.title":'$(js "$tag")'}},'
  config+='"rootfs":{"type":"layers","diff_ids":["sha256:'$diff'"]},'
  config+='"history":[{"created":"1970-01-01T00:00:00Z","created_by":"e2e/images.sh"}]}'
  printf '%s' "$config" >"$d/config.json"
  csum=$(sha256sum "$d/config.json" | cut -d' ' -f1)
  mv "$d/config.json" "$d/arc/$csum.json"
  mkdir -p "$d/arc/$diff"
  mv "$d/layer.tar" "$d/arc/$diff/layer.tar"
  printf '[{"Config":"%s.json","RepoTags":[%s],"Layers":["%s/layer.tar"]}]' \
    "$csum" "$(js "$tag")" "$diff" >"$d/arc/manifest.json"
  tar -C "$d/arc" "${tarflags[@]}" --owner=0 --group=0 -cf "$d/$file" manifest.json "$csum.json" "$diff"
  mv "$d/$file" "$OUT/$file"
  echo "$STAMP" >"$OUT/.$file.stamp"
  rm -rf "$d" "$r"
}

built=()
report() { built+=("$1 $2"); }

# ---- the swh images ----------------------------------------------------------------------
swh_image() {
  local name=$1 bin=$2 file=$1.tar
  if ! fresh "$file" "$bin" "$CA"; then
    local r="$WORK/$name.rootfs"
    mkdir -p "$r/usr/local/bin" "$r/etc/ssl/certs"
    strip --strip-debug -o "$r/usr/local/bin/$name" "$bin"
    libs_of "$bin" >"$WORK/$name.libs"
    mapfile -t libs <"$WORK/$name.libs"
    copy_to "$r" "${libs[@]}"
    cp -L "$CA" "$r$CA"
    etc_files "$r" nonroot /home/nonroot
    mkdir -p "$r/home/nonroot"
    tmp_dir "$r"
    image "$file" "localhost/$name:dev" "$r" 65532:65532 "$(ja "/usr/local/bin/$name")" "" \
      /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin home/nonroot
  fi
  report "localhost/$name:dev" "$file"
}
for b in swh-controller swh-agent swh-webhook; do swh_image "$b" "target/$profile/$b"; done
swh_image swh-backend target/debug/swh-backend

# ---- pause -------------------------------------------------------------------------------
if ! fresh pause.tar "$CATATONIT"; then
  r="$WORK/pause.rootfs"
  mkdir -p "$r"
  cp -L "$CATATONIT" "$r/pause"
  image pause.tar localhost/swh/pause:1 "$r" 65535:65535 '["/pause","-P"]' "" \
    /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fi
report localhost/swh/pause:1 pause.tar

# ---- busybox -----------------------------------------------------------------------------
if ! fresh busybox.tar "$BUSYBOX"; then
  r="$WORK/busybox.rootfs"
  mkdir -p "$r/bin"
  cp -L "$BUSYBOX" "$r/bin/busybox"
  while read -r a; do
    [ -n "$a" ] && [ "$a" != busybox ] && ln -sf busybox "$r/bin/$a"
  done < <("$BUSYBOX" --list)
  etc_files "$r" nonroot /home/nonroot /bin/sh
  tmp_dir "$r"
  image busybox.tar localhost/swh/busybox:1 "$r" "" "" '["/bin/sh"]' /bin
fi
report localhost/swh/busybox:1 busybox.tar

# ---- postgres ----------------------------------------------------------------------------
PG_BINS=(postgres initdb pg_ctl pg_basebackup psql pg_isready)
# What the pod scripts (initdb / pg_basebackup, primary or replica) run besides PostgreSQL.
PG_APPLETS=(sh mkdir cat sleep ls rm chmod echo env test '[' id cp mv touch printf grep sed
  hostname cut tr wc head tail kill true false basename dirname)
pg_inputs=()
for b in "${PG_BINS[@]}"; do
  [ -x "$PG/bin/$b" ] || die "$PG/bin/$b missing: apt-get install postgresql-$PGV"
  pg_inputs+=("$PG/bin/$b")
done
[ -d "/usr/share/postgresql/$PGV" ] || die "/usr/share/postgresql/$PGV missing: apt-get install postgresql-$PGV"
if ! fresh postgres.tar "${pg_inputs[@]}" "$PG/lib" "/usr/share/postgresql/$PGV" \
  /usr/share/zoneinfo "$BUSYBOX"; then
  r="$WORK/postgres.rootfs"
  mkdir -p "$r$PG/bin" "$r$PG/lib" "$r/usr/share/postgresql" "$r/bin" \
    "$r/var/run/postgresql" "$r/var/lib/postgresql"
  cp -L "${pg_inputs[@]}" "$r$PG/bin/"
  # The modules, without the LLVM JIT (libLLVM alone is ~100 MiB; jit is then unavailable,
  # which PostgreSQL handles: jit_provider's library is missing, so JIT stays off).
  (cd "$PG/lib" && find . -name 'llvmjit*' -prune -o -path ./bitcode -prune -o \( -type f -o -type l \) -print) |
    while read -r f; do
      mkdir -p "$r$PG/lib/$(dirname "$f")"
      cp -L "$PG/lib/$f" "$r$PG/lib/$f"
    done
  cp -rL "/usr/share/postgresql/$PGV" "$r/usr/share/postgresql/"
  rm -rf "$r/usr/share/postgresql/$PGV/man"
  # Time zones (Debian builds PostgreSQL against the system's tzdata); symlinks kept, not the
  # host's localtime.
  if [ -d /usr/share/zoneinfo ]; then
    cp -a /usr/share/zoneinfo "$r/usr/share/"
    rm -f "$r/usr/share/zoneinfo/localtime"
  fi
  mapfile -t mods < <(find "$r$PG/lib" -name '*.so' -printf "$PG/lib/%P\n")
  libs_of "${pg_inputs[@]}" "${mods[@]}" >"$WORK/postgres.libs"
  mapfile -t libs <"$WORK/postgres.libs"
  copy_to "$r" "${libs[@]}"
  cp -L "$BUSYBOX" "$r/bin/busybox"
  for a in "${PG_APPLETS[@]}"; do ln -sf busybox "$r/bin/$a"; done
  etc_files "$r" postgres /var/lib/postgresql /bin/sh
  mkdir -p "$r/etc/ssl/certs"
  cp -L "$CA" "$r$CA"
  tmp_dir "$r"
  image postgres.tar "localhost/swh/postgres:$PGV" "$r" 65532:65532 "" "" "$PG/bin:/bin" \
    var/lib/postgresql var/run/postgresql
fi
report "localhost/swh/postgres:$PGV" postgres.tar

# ---- summary -----------------------------------------------------------------------------
total=0
for e in "${built[@]}"; do
  tag=${e% *}
  file=${e#* }
  size=$(stat -c %s "$OUT/$file")
  total=$((total + size))
  awk -v t="$tag" -v f="${OUT#"$ROOT"/}/$file" -v s="$size" 'BEGIN { printf "%-30s %8.1f MiB  %s\n", t, s / 1048576, f }'
done
awk -v s="$total" 'BEGIN { printf "%-30s %8.1f MiB\n", "total", s / 1048576 }'

[ "$check" = 1 ] || exit 0

# ---- --check -----------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "--check needs root (chroot, mount namespace)"
command -v unshare >/dev/null || die "unshare not found: apt-get install util-linux"
CHK="$WORK/check"
# unpack FILE: the image's rootfs under $CHK/FILE, and its config JSON on stdout.
unpack() {
  local a="$CHK/${1%.tar}" layer
  mkdir -p "$a/rootfs"
  tar -C "$a" -xf "$OUT/$1"
  layer=$(grep -oE '"Layers":\["[^"]+"' "$a/manifest.json" | cut -d'"' -f4)
  tar -C "$a/rootfs" --numeric-owner -xf "$a/$layer"
  cat "$a/$(grep -oE '"Config":"[^"]+"' "$a/manifest.json" | cut -d'"' -f4)"
}
# inimage FILE SCRIPT: runs bash SCRIPT with $R = the image's rootfs, in a private mount
# namespace with /dev (null, zero, random, urandom, shm) mounted under $R as a runtime would;
# the mounts go with the namespace.
inimage() {
  R="$CHK/${1%.tar}/rootfs" unshare --mount --propagation private --fork bash -euo pipefail -c '
    mount -t tmpfs -o mode=755,size=1m tmpfs "$R/dev" 2>/dev/null ||
      { mkdir -p "$R/dev"; mount -t tmpfs -o mode=755,size=1m tmpfs "$R/dev"; }
    for n in null zero random urandom; do touch "$R/dev/$n"; mount --bind "/dev/$n" "$R/dev/$n"; done
    mkdir -p "$R/dev/shm"; mount -t tmpfs -o mode=1777,size=64m shm "$R/dev/shm"
    '"$2"
}
fail() { die "check: $*"; }
for b in swh-controller swh-agent swh-webhook swh-backend; do
  unpack "$b.tar" | grep -q '"Entrypoint":\["/usr/local/bin/'"$b"'"\]' || fail "$b: entrypoint"
  out=$(inimage "$b.tar" "chroot --userspec=65532:65532 \"\$R\" /usr/local/bin/$b --help") ||
    fail "$b --help as 65532 in its image: $out"
  grep -qi usage <<<"$out" || fail "$b --help printed no usage: $out"
  echo "check: $b --help runs as 65532:65532 in localhost/$b:dev"
done
unpack busybox.tar >/dev/null
out=$(inimage busybox.tar 'chroot --userspec=65532:65532 "$R" /bin/sh -c "echo ok; id -u; ls / >/dev/null"') ||
  fail "busybox: $out"
[ "$out" = "ok
65532" ] || fail "busybox sh: $out"
echo "check: busybox sh runs"
unpack pause.tar | grep -q '"Entrypoint":\["/pause","-P"\]' || fail "pause: entrypoint"
[ -x "$CHK/pause/rootfs/pause" ] || fail "pause: /pause"
unpack postgres.tar >/dev/null
PGPORT_CHECK=55432
if (exec 3<>"/dev/tcp/127.0.0.1/$PGPORT_CHECK") 2>/dev/null; then
  fail "127.0.0.1:$PGPORT_CHECK is in use"
fi
out=$(inimage postgres.tar '
  c() { chroot --userspec=65532:65532 "$R" /bin/env -i PATH='"$PG/bin:/bin"' "$@"; }
  c sh -c "initdb -D /tmp/d -U postgres --auth=trust >/tmp/initdb.log 2>&1" || { cat "$R/tmp/initdb.log"; exit 1; }
  (exec chroot --userspec=65532:65532 "$R" /bin/env -i PATH='"$PG/bin:/bin"' \
    postgres -D /tmp/d -k /tmp -c listen_addresses=127.0.0.1 -p '"$PGPORT_CHECK"') >"$R/tmp/pg.log" 2>&1 &
  pg=$!
  trap "kill -INT $pg 2>/dev/null; wait $pg || true" EXIT
  for i in $(seq 100); do
    c pg_isready -q -h 127.0.0.1 -p '"$PGPORT_CHECK"' && break
    kill -0 $pg 2>/dev/null || { cat "$R/tmp/pg.log"; exit 1; }
    sleep 0.1
  done
  if command -v psql >/dev/null; then psql=psql; else psql="c psql"; fi
  $psql -X -At -h 127.0.0.1 -p '"$PGPORT_CHECK"' -U postgres -c "select 1"
  c sh -c "touch /var/run/postgresql/x /var/lib/postgresql/x"
  [ -f "$R/tmp/d/PG_VERSION" ]
') || fail "postgres: $out"
[ "$(tail -1 <<<"$out")" = 1 ] || fail "postgres select 1: $out"
echo "check: PostgreSQL $PGV initdb, start, select 1 and stop as 65532:65532 in localhost/swh/postgres:$PGV"

if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
  echo "check: no containerd/ctr: import not checked (apt-get install containerd)"
  exit 0
fi
CT=$(mktemp -d /tmp/swh-images-ctr.XXXXXX)
CS=/run/swh-images-ctr-$$
mkdir -p "$CS"
ctr_pid=""
ctr_cleanup() {
  if [ -n "$ctr_pid" ]; then
    kill "$ctr_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ctr_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  local m
  for m in $(grep -oE " ($CT|$CS)[^ ]*" /proc/mounts | sort -r || true); do umount -l "$m" || true; done
  rm -rf "$CT" "$CS" "$WORK"
}
trap ctr_cleanup EXIT
cat >"$CT/config.toml" <<EOF
version = 2
root = "$CT/root"
state = "$CS/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
  "io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CS/c.sock"
[ttrpc]
  address = "$CS/c.sock.ttrpc"
[debug]
  address = "$CS/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$CT/opt"
EOF
containerd --config "$CT/config.toml" >"$CT/containerd.log" 2>&1 </dev/null &
ctr_pid=$!
C=(ctr -a "$CS/c.sock" -n k8s.io --connect-timeout 5s)
for _ in $(seq 100); do
  [ -S "$CS/c.sock" ] && "${C[@]}" version >/dev/null 2>&1 && break
  kill -0 "$ctr_pid" 2>/dev/null || break
  sleep 0.1
done
"${C[@]}" version >/dev/null 2>&1 || fail "containerd did not start: $(tail -3 "$CT/containerd.log")"
for e in "${built[@]}"; do
  out=$("${C[@]}" images import "$OUT/${e#* }" 2>&1) || fail "ctr import ${e#* }: $out"
done
names=$("${C[@]}" images ls -q)
for e in "${built[@]}"; do
  grep -qxF "${e% *}" <<<"$names" || fail "ctr images ls lacks ${e% *}: $names"
done
echo "check: containerd imported every archive: $(tr '\n' ' ' <<<"$names")"
R=(--rm --runc-root "$CS/runc")
out=$(timeout 60 "${C[@]}" run "${R[@]}" localhost/swh-agent:dev "swh-images-agent-$$" \
  /usr/local/bin/swh-agent --help 2>&1) || fail "ctr run swh-agent --help: $out"
grep -q Usage <<<"$out" || fail "ctr run swh-agent --help: $out"
out=$(timeout 60 "${C[@]}" run "${R[@]}" "localhost/swh/postgres:$PGV" "swh-images-pg-$$" \
  sh -c 'id -u; postgres --version' 2>&1) || fail "ctr run postgres: $out"
[ "$(head -1 <<<"$out")" = 65532 ] || fail "ctr run postgres id: $out"
echo "check: ctr run: swh-agent --help; postgres image as uid $(head -1 <<<"$out"): $(tail -1 <<<"$out")"
