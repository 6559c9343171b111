#!/usr/bin/env bash
# Builds podfleet's image from the unchanged Dockerfile without a Docker engine: buildah (root,
# chroot isolation, podfleet's own store: builder/image/buildah.sh) over a stand-in for the base
# image (builder/base_image.sh, cached), with the build context's .dockerignore applied, as
# `docker build` does. Package indexes come the way this machine's pip finds them (its local
# wheel directories and indexes bound read-only for the build: builder/image/pip_config.py;
# none of it enters the image); apt reaches Debian's mirror. The Dockerfile's own build-time
# smoke test runs as part of the build, so a broken image fails here.
#   bash builder/build_image.sh                # the full image  -> localhost/podfleet:local
#   bash builder/build_image.sh --slim         # builder/slim.Dockerfile -> localhost/podfleet-slim:local
#   --tag NAME       image name to tag
#   --context DIR    build context (default: the repository); its own Dockerfile is built
#   --no-cache       rebuild every layer (default: reuse unchanged layers from earlier builds)
#   -- ARGS...       passed to `buildah bud` (e.g. --build-arg TORCH_INDEX_URL=...)
# Then: bash builder/image/buildah.sh run --network none localhost/podfleet:local bash builder/smoke_test.sh
# Needs: buildah, debootstrap (Debian packages; builder/setup.sh --dev installs them), root.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
context="$(dirname "$here")"
dockerfile=Dockerfile
tag=""
cache=(--layers)
while [ "$#" -gt 0 ]; do
  case "$1" in
    --slim) dockerfile=builder/slim.Dockerfile ;;
    --tag) tag=$2; shift ;;
    --context) context=$(cd "$2" && pwd); shift ;;
    --no-cache) cache=(--layers --no-cache) ;;
    --) shift; break ;;
    *) echo "build_image.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$tag" ]; then
  if [ "$dockerfile" = Dockerfile ]; then tag=localhost/podfleet:local; else tag=localhost/podfleet-slim:local; fi
fi
if [ "$(id -u)" != 0 ]; then echo "build_image.sh: run as root (buildah, chroot isolation)" >&2; exit 1; fi

# One build at a time on this machine (a build takes both cores and GBs of disk; the tests' clean-up
# of dangling layers must not race a build). Waits up to an hour for another build to finish.
store_dir=$(dirname "${PODFLEET_BUILDAH_ROOT:-/var/lib/podfleet-image/storage}")
mkdir -p "$store_dir"
exec 9>"$store_dir/build.lock"
if ! flock -n 9; then
  echo "build_image.sh: waiting for another image build on this machine to finish" >&2
  flock -w 3600 9
fi
export PODFLEET_IMAGE_LOCKED=1  # base_image.sh: the lock is held already

bash "$here/base_image.sh" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t pip_mounts < <(python3 "$here/image/pip_config.py" "$work")

# TORCH_INDEX_URL (environment), if set, reaches the full image's ARG of that name, as it reaches
# builder/setup.sh on a host (e.g. a CPU-only index on machines without a local torch file).
build_args=()
if [ -n "${TORCH_INDEX_URL:-}" ] && grep -q '^ARG TORCH_INDEX_URL' "$context/$dockerfile"; then
  build_args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
fi

started=$(date +%s)
bash "$here/image/buildah.sh" bud --pull=never "${cache[@]}" --force-rm --network host \
  "${pip_mounts[@]}" "${build_args[@]}" -f "$context/$dockerfile" -t "$tag" "$@" "$context"
echo "build_image.sh: built $tag from $dockerfile in $(($(date +%s) - started)) s" >&2
