#!/usr/bin/env bash
# Lint everything CI lints. Run after builder/setup.sh --dev.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ruff check .
ruff format --check .
