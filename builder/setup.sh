#!/usr/bin/env bash
# Installs what podfleet needs on a Debian 12 host or image: system packages, then pinned Python
# packages, then podfleet itself (editable, for the `podfleet` command). Idempotent: a second run
# only checks. Used by the README's set-up command, by builder/test.sh and .ci/run, and by the
# Dockerfile, so every CI run exercises the image recipe.
#   --dev         also install test, lint and benchmark tools (builder/requirements-dev.txt)
#   --no-system   skip apt (the Dockerfile installs system packages in their own layer)
#   --system-only only apt (the Dockerfile's first layer)
#   --no-project  skip the editable install of podfleet itself (the Dockerfile's requirements
#                 layer, built before the code is copied in)
#   --image       the image's system packages: no PostgreSQL server (tests only; the image talks
#                 to the database at DATABASE_URL) and apt's lists removed after installing
# TORCH_INDEX_URL (environment), if set, is the index torch alone is installed from (e.g. a CPU-only
# index for CI runners that have no local torch file); unset = the default index, where torch for
# Linux x86_64 is the CUDA build (what the image wants).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
dev=0
system=1
python_packages=1
project=1
image=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --no-system) system=0 ;;
    --system-only) python_packages=0 project=0 ;;
    --no-project) project=0 ;;
    --image) image=1 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# chromium: the browser Playwright drives (launched by path; `playwright install` cannot download
# here). postgresql: the server the PostgreSQL tests use. shellcheck: lints these scripts.
system_packages=(chromium fonts-liberation ca-certificates)
if [ "$image" = 0 ]; then system_packages+=(postgresql); fi
if [ "$dev" = 1 ]; then system_packages+=(shellcheck redis-server); fi  # redis: caller tests
# buildah, debootstrap: tests/integration/image builds and runs the images without a Docker
# engine (builder/build_image.sh, builder/base_image.sh)
if [ "$dev" = 1 ]; then system_packages+=(buildah debootstrap); fi
# python3-venv: tests/integration/wheel installs the built wheel into fresh venvs; Debian's own
# python3 lacks ensurepip without it (python.org builds and the CI image have it)
if [ "$dev" = 1 ] && ! "${PYTHON:-python3}" -c "import ensurepip" 2>/dev/null; then
  system_packages+=(python3-venv)
fi

if [ "$system" = 1 ]; then
  missing=()
  for pkg in "${system_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    sudo_cmd=()
    if [ "$(id -u)" != 0 ]; then sudo_cmd=(sudo); fi
    echo "setup.sh: installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
  if [ "$image" = 1 ]; then rm -rf /var/lib/apt/lists/*; fi
fi

python=${PYTHON:-python3}
pip=("$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
if [ "$python_packages" = 1 ]; then
  # torch first and alone: an unpinned resolver run could pull a multi-GB CUDA build.
  torch_index=()
  if [ -n "${TORCH_INDEX_URL:-}" ]; then torch_index=(--index-url "$TORCH_INDEX_URL"); fi
  "${pip[@]}" "${torch_index[@]}" "$(grep -E '^torch==' "$here/requirements.txt")"
  "${pip[@]}" -r "$here/requirements.txt"
  if [ "$dev" = 1 ]; then "${pip[@]}" -r "$here/requirements-dev.txt"; fi
fi
if [ "$project" = 1 ]; then "${pip[@]}" --no-deps --no-build-isolation -e "$root"; fi
echo "setup.sh: ready ($("$python" --version), $(command -v chromium || echo 'no chromium'))"
