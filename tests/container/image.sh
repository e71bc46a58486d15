#!/bin/sh
# image.sh SRC TAG: builds moonwatch's container image from SRC/Dockerfile as TAG, on a Debian 12
# base made here (there is no image registry): `mmdebstrap --variant=minbase bookworm` once a
# month into $MOONWATCH_CACHE (default /var/cache/moonwatch, outside any build dir, so a clean
# clone reuses it), `podman import`ed as localhost/moonwatch-base:bookworm-YYYY-MM. podman's
# layer cache keeps the apt and compile layers while their inputs stay the same.
#
# Exit 0: built. Exit 77: the environment cannot do it (no podman, no mirror, the runtime
# refuses to start a container); the reason is the last line on stderr. Other: the build failed.
#
# This machine's podman needs `--runtime runc --cgroup-manager cgroupfs` (crun refuses the
# hybrid cgroup layout), explicit ulimits (the default 1048576 open files is above the hard
# limit: "error setting rlimit type 7: operation not permitted") and `--network host` for apt.
set -eu
src=$1
tag=$2
cache=${MOONWATCH_CACHE:-/var/cache/moonwatch}
skip() {
  echo "$*" >&2
  exit 77
}
for t in podman runc mmdebstrap flock; do
  command -v "$t" >/dev/null 2>&1 || skip "$t is not installed (tests/install-deps.sh podman runc mmdebstrap)"
done
[ "$(id -u)" = 0 ] || skip "the container test runs podman as root; run it as root"
mkdir -p "$cache"
# one build at a time (ctest -j, two checkouts): they share the cache and podman's store
exec 9>"$cache/container.lock"
flock 9

podman() {
  command podman --runtime runc --cgroup-manager cgroupfs "$@"
}
month=$(date -u +%Y-%m)
tar="$cache/debian12-minbase-$month.tar"
base="localhost/moonwatch-base:bookworm-$month"
if [ ! -s "$tar" ]; then
  echo "image.sh: making the Debian 12 base with mmdebstrap (once a month)" >&2
  # (mmdebstrap picks the output format from the name's extension: keep .tar last)
  part="$cache/partial-$month.tar"
  if ! mmdebstrap --variant=minbase --quiet bookworm "$part" >"$cache/mmdebstrap.log" 2>&1; then
    rm -rf "$part"
    tail -5 "$cache/mmdebstrap.log" >&2
    skip "mmdebstrap could not make the Debian 12 base (no Debian mirror reachable?): see $cache/mmdebstrap.log"
  fi
  mv "$part" "$tar"
  # older months' bases go
  find "$cache" -maxdepth 1 -name 'debian12-minbase-*.tar' ! -name "${tar##*/}" -delete
fi
if ! podman image exists "$base"; then
  podman import --quiet "$tar" "$base" >/dev/null
fi
if ! out=$(podman run --rm --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network host "$base" true 2>&1); then
  echo "$out" >&2
  skip "podman cannot run a container here: $(echo "$out" | tail -1)"
fi
podman build --quiet --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 --network host \
  --build-arg BASE="$base" --build-arg JOBS=2 -t "$tag" -f "$src/Dockerfile" "$src" >"$cache/build.log" 2>&1 || {
  tail -30 "$cache/build.log" >&2
  echo "image.sh: podman build failed (whole log: $cache/build.log)" >&2
  exit 1
}
# images left untagged by earlier builds (the layer cache of older sources) go after a day
podman image prune --force --filter until=24h >/dev/null 2>&1 || true
echo "$tag"
