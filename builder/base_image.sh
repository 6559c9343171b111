#!/usr/bin/env bash
# A stand-in for the Dockerfiles' base image (their FROM, python:3.11.17-slim-bookworm), which
# cannot be pulled on machines without a registry: Debian 12 (bookworm) from Debian's own
# packages (debootstrap), with CPython 3.11 laid out as the official image has it: python,
# python3, pip and pip3 in /usr/local/bin, packages installed system-wide into
# /usr/local/lib/python3.11/site-packages (a venv at /usr/local over Debian's python3.11, so no
# PEP 668 refusal), setuptools 79.0.1 and wheel<0.46 preinstalled, the same ENV (PATH, LANG) and
# the same slim trimming (no apt lists, docs or man pages). It differs in the CPython patch
# release (Debian's 3.11.2 plus its security fixes, not 3.11.17): PYTHON_VERSION says which.
#
# The image is tagged with the FROM line's name in podfleet's buildah store
# (builder/image/buildah.sh) and cached there: it is rebuilt only when this script or the FROM
# line changes (the label org.podfleet.base-key holds their hash). About a minute to build.
#   bash builder/base_image.sh            # ensure it exists; prints its name
#   bash builder/base_image.sh --rebuild  # rebuild even if cached
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
buildah=(bash "$here/image/buildah.sh")
rebuild=0
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    *) echo "base_image.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

from=$(awk 'toupper($1) == "FROM" { print $2; exit }' "$root/Dockerfile")
# Docker's short names: python:TAG is docker.io/library/python:TAG, what buildah looks up.
case "$from" in
  */*) name=$from ;;
  *) name=docker.io/library/$from ;;
esac
key=$( (cat "${BASH_SOURCE[0]}"; echo "$name") | sha256sum | cut -c1-16)

# One image build at a time on this machine (builder/build_image.sh holds the same lock).
store_dir=$(dirname "${PODFLEET_BUILDAH_ROOT:-/var/lib/podfleet-image/storage}")
if [ -z "${PODFLEET_IMAGE_LOCKED:-}" ]; then
  mkdir -p "$store_dir"
  exec 9>"$store_dir/build.lock"
  flock -w 3600 9
fi

if [ "$rebuild" = 0 ]; then
  have=$("${buildah[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "org.podfleet.base-key"}}' "$name" 2>/dev/null || true)
  if [ "$have" = "$key" ]; then
    echo "$name"
    exit 0
  fi
fi

command -v debootstrap >/dev/null || { echo "base_image.sh: needs debootstrap (apt-get install debootstrap)" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/podfleet-base.XXXXXX)
ctr=""
cleanup() {
  if [ -n "$ctr" ]; then "${buildah[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
rootfs=$work/rootfs
debs=/var/cache/podfleet-image/debs  # debootstrap's downloads, kept for the next rebuild
mkdir -p "$debs"

echo "base_image.sh: debootstrap bookworm from $mirror" >&2
# python3.11-venv: the venv module and the pip/setuptools wheels it bootstraps from; it needs
# python3-distutils (the stdlib's distutils, which the official 3.11 image has too), which needs
# Debian's python3, so /usr/bin/python3 exists here (the official image has none; PATH puts
# /usr/local/bin first either way).
debootstrap --variant=minbase --cache-dir="$debs" \
  --include=ca-certificates,netbase,tzdata,python3.11,python3.11-venv,python3-distutils,python3-lib2to3,python3 \
  bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

# debian:bookworm-slim's sources (with security updates) and its trimming (debuerreotype's
# slimify: no docs, man pages or translations; apt keeps no package lists or caches).
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
DPKG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"

# pip inside finds packages where this machine's pip does (builder/image/pip_config.py).
mapfile -t pip_mounts < <(python3 "$here/image/pip_config.py" "$work/pip")

ctr=$("${buildah[@]}" from --pull=never scratch)
mnt=$("${buildah[@]}" mount "$ctr")
tar -C "$rootfs" -cf - . | tar -C "$mnt" -xpf -
rm -rf "$rootfs"
# The bind mounts' targets that buildah will create (empty files and directories): removed
# again after the run, so the image holds no trace of this machine's pip set-up.
created=()
for option in "${pip_mounts[@]}"; do
  target=${option#--volume=}
  target=${target#*:}
  target=${target%:ro}
  while [ "$target" != / ] && [ ! -e "$mnt$target" ]; do
    created+=("$target")
    target=$(dirname "$target")
  done
done
"${buildah[@]}" umount "$ctr" >/dev/null
echo "base_image.sh: security updates, CPython venv at /usr/local" >&2
"${buildah[@]}" run --network host "${pip_mounts[@]}" "$ctr" -- sh -euc '
  export DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1
  apt-get update -qq
  apt-get upgrade -y -qq >/dev/null
  rm -rf /var/lib/apt/lists/* /usr/share/doc/*/[!c]* /usr/share/man/* /usr/share/info/* \
    /usr/share/locale/* /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log
  python3.11 -m venv /usr/local
  rm -f /usr/local/bin/activate* /usr/local/bin/Activate.ps1
  /usr/local/bin/pip install --quiet --no-cache-dir --no-compile --disable-pip-version-check \
    --root-user-action=ignore "pip==24.0" "setuptools==79.0.1" "wheel<0.46"
  ln -s pip3 /usr/local/bin/pip 2>/dev/null || true
  find /usr/local -name "__pycache__" -type d -prune -exec rm -rf {} +
  python --version && pip --version
'

mnt=$("${buildah[@]}" mount "$ctr")
# Deepest first: a file or directory left empty by its bind mount, then its created parents.
for target in $(printf '%s\n' "${created[@]}" | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-); do
  if [ -d "$mnt$target" ]; then
    rmdir "$mnt$target" 2>/dev/null || true
  elif [ -e "$mnt$target" ] && [ ! -s "$mnt$target" ]; then
    rm -f "$mnt$target"
  fi
done
"${buildah[@]}" umount "$ctr" >/dev/null

py_version=$("${buildah[@]}" run "$ctr" -- /usr/local/bin/python -c 'import platform; print(platform.python_version())')
"${buildah[@]}" config \
  --env PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 \
  --env PYTHON_VERSION="$py_version" \
  --cmd '["python3"]' \
  --label org.podfleet.base-key="$key" \
  --label org.podfleet.stands-in-for="$from" \
  --label org.opencontainers.image.description="Stand-in for $from: Debian 12 + Debian's CPython $py_version" \
  "$ctr"
old_id=$("${buildah[@]}" inspect --type image --format '{{.FromImageID}}' "$name" 2>/dev/null || true)
"${buildah[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
ctr=""
# The previous base, now untagged: gone unless an image still builds on it.
if [ -n "$old_id" ]; then "${buildah[@]}" rmi "$old_id" >/dev/null 2>&1 || true; fi
echo "base_image.sh: built $name (CPython $py_version)" >&2
echo "$name"
