#!/usr/bin/env bash
# Installs what podfleet needs on a Debian 12 host or image: system packages, then pinned Python
# packages, then podfleet itself (editable, for the `podfleet` command). Idempotent: a second run
# only checks. Used by the README's set-up command, by builder/test.sh and .ci/run, and by the
# Dockerfile, so every CI run exercises the image recipe.
#   --dev       also install test, lint and benchmark tools (builder/requirements-dev.txt)
#   --no-system skip apt (the Dockerfile installs system packages in their own layer)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
dev=0
system=1
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --no-system) system=0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

# chromium: the browser Playwright drives (launched by path; `playwright install` cannot download
# here). postgresql: the server the PostgreSQL tests use. shellcheck: lints these scripts.
system_packages=(chromium fonts-liberation postgresql ca-certificates)
if [ "$dev" = 1 ]; then system_packages+=(shellcheck); fi

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
fi

python=${PYTHON:-python3}
pip=("$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)
# torch first and alone: an unpinned resolver run could pull a multi-GB CUDA build.
"${pip[@]}" "$(grep -E '^torch==' "$here/requirements.txt")"
"${pip[@]}" -r "$here/requirements.txt"
if [ "$dev" = 1 ]; then "${pip[@]}" -r "$here/requirements-dev.txt"; fi
"${pip[@]}" --no-deps --no-build-isolation -e "$root"
echo "setup.sh: ready ($("$python" --version), $(command -v chromium || echo 'no chromium'))"
