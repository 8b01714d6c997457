#!/usr/bin/env bash
# Fetch a Docker engine (dockerd, containerd, runc, docker-init) and busybox-static from Debian's archive and
# unpack them into a private directory, without installing anything on the host.
#
# Usage: scripts/swarm-engine.sh [CACHE_DIR]        (default: .cache/swarm-engine under the repository)
# Prints the unpacked root (CACHE_DIR/root) on stdout. Safe to run concurrently: a lock serialises the
# download, and an existing, complete unpack is reused (delete CACHE_DIR to refresh it).
#
# Why not `apt-get install docker.io`: it would add a docker group, an init script, iptables and a daemon
# on the host. The tests run dockerd from this directory inside private namespaces instead
# (sandbox/swarm_engine.py, ../shared/contracts/SWARM_LOCAL.md).
set -euo pipefail

PACKAGES=(docker.io containerd runc tini busybox-static)
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${1:-$repo/.cache/swarm-engine}"
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"
root="$cache/root"

exec 9>"$cache/.lock"
flock 9

if [ -x "$root/usr/sbin/dockerd" ] && [ -e "$root/.complete" ]; then
  echo "$root"
  exit 0
fi

work="$(mktemp -d "$cache/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cd "$work"
# _apt cannot write into a root-only directory; the warning about an unsandboxed download is harmless.
if ! apt-get download "${PACKAGES[@]}" >/dev/null 2>"$work/apt.err"; then
  echo "swarm-engine: apt-get download failed, refreshing the package lists once" >&2
  apt-get update -q >/dev/null || { echo "swarm-engine: apt-get update failed (need root and Debian's archive)" >&2; exit 1; }
  if ! apt-get download "${PACKAGES[@]}" >/dev/null 2>"$work/apt.err"; then
    cat "$work/apt.err" >&2
    echo "swarm-engine: could not download ${PACKAGES[*]} from Debian's archive" >&2
    exit 1
  fi
fi
mkdir unpacked
for deb in ./*.deb; do
  dpkg-deb -x "$deb" unpacked
done
# dockerd looks for docker-init (tini) on its PATH for `init: true` containers.
if [ ! -e unpacked/usr/bin/docker-init ] && [ -e unpacked/usr/bin/tini-static ]; then
  ln -s tini-static unpacked/usr/bin/docker-init
fi
ls ./*.deb | sed 's|^\./||' > unpacked/.packages
touch unpacked/.complete
rm -rf "$root"
mv unpacked "$root"
echo "$root"
