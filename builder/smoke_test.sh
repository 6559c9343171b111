#!/usr/bin/env bash
# Smoke test: runs ./test_input.json through the handler exactly as the image's CMD does
# (`python -u handler.py`, RunPod's local mode) and fails unless it exits 0 and the job's output
# says ok. Run by the Dockerfile at build time (a broken image fails its build, not its first job),
# by the image workflow inside the built image, and by tests/integration/image on the host.
# DATABASE_URL defaults to a throwaway SQLite file so the smoke run leaves no rows behind.
#   bash builder/smoke_test.sh             # ./test_input.json, as the CMD reads it
#   bash builder/smoke_test.sh FILE.json   # another job, passed as `--test_input` (the slim
#                                          # image's job: builder/image/slim_test_input.json)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=${PYTHON:-python}
command -v "$python" >/dev/null 2>&1 || python=python3

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export DATABASE_URL=${DATABASE_URL:-sqlite:///$scratch/smoke.db}

input=${1:-test_input.json}
if [ ! -f "$input" ]; then
  echo "smoke_test.sh: no $input in $(pwd)" >&2
  exit 1
fi
args=()
if [ "$input" != test_input.json ]; then args=(--test_input "$(cat "$input")"); fi

status=0
"$python" -u handler.py "${args[@]}" >"$scratch/out.log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
  tail -n 40 "$scratch/out.log" | cut -c1-400 >&2
  echo "smoke_test.sh: FAILED: python -u handler.py exited $status" >&2
  exit 1
fi
# The SDK logs the final result as `Job result: {'output': {'ok': True, ...}}` ({'error': ...} first
# when the job failed).
result=$(grep -m1 -F 'Job result: ' "$scratch/out.log" || true)
if [[ "$result" != *"Job result: {'output': "* || "$result" != *"'ok': True"* ]]; then
  tail -n 40 "$scratch/out.log" | cut -c1-400 >&2
  echo "smoke_test.sh: FAILED: the job's output does not say ok" >&2
  exit 1
fi
echo "smoke_test.sh: ok ($input ran through python -u handler.py)"
