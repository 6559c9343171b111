#!/usr/bin/env bash
# Type-check handler/ and pipeline/ with mypy (config: pyproject.toml [tool.mypy]).
# mypy cannot follow setuptools' package-dir mapping (handler/ is `podfleet`, pipeline/ is
# `podfleet.pipeline`), so it checks a view of the tree built from symlinks in a temp dir.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
view="$(mktemp -d)"
trap 'rm -rf "$view"' EXIT
mkdir "$view/podfleet"
for entry in "$repo"/handler/*; do
  name="$(basename "$entry")"
  [ "$name" = "__pycache__" ] && continue
  ln -s "$entry" "$view/podfleet/$name"
done
ln -s "$repo/pipeline" "$view/podfleet/pipeline"
cd "$view"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/podfleet-mypy"  # outside the tree, kept between runs
mypy --config-file "$repo/pyproject.toml" --cache-dir "$cache" -p podfleet "$@"
