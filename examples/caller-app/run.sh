#!/usr/bin/env bash
# Starts the whole example on 127.0.0.1: Redis, the RunPod emulator with 2 workers running
# worker/handler.py, a Celery worker, Flower and the FastAPI app. Ctrl-C stops everything.
#   APP_PORT (8000), EMULATOR_PORT (8010), REDIS_PORT (6390), FLOWER_PORT (5555)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

APP_PORT=${APP_PORT:-8000}
EMULATOR_PORT=${EMULATOR_PORT:-8010}
REDIS_PORT=${REDIS_PORT:-6390}
FLOWER_PORT=${FLOWER_PORT:-5555}
FLOWER_AUTH=${FLOWER_AUTH:-admin:change-me}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM

redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no &
pids+=($!)
podfleet emulate --workers 2 --cwd worker --port "$EMULATOR_PORT" &
pids+=($!)

export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export RUNPOD_ENDPOINT_BASE_URL="http://127.0.0.1:$EMULATOR_PORT/v2"
export RUNPOD_ENDPOINT_ID=local-endpoint
export RUNPOD_API_KEY=emulator-no-key
export PUBLIC_URL="http://127.0.0.1:$APP_PORT/podfleet"  # webhooks come back here

celery -A imagegen_app.tasks worker -Q imagegen.high,imagegen -c 4 --loglevel INFO &
pids+=($!)
celery -A imagegen_app.tasks flower --address=127.0.0.1 --port="$FLOWER_PORT" \
  --basic-auth="$FLOWER_AUTH" &
pids+=($!)
uvicorn imagegen_app.main:app --host 127.0.0.1 --port "$APP_PORT" &
pids+=($!)

echo "app:    http://127.0.0.1:$APP_PORT/docs"
echo "flower: http://127.0.0.1:$FLOWER_PORT ($FLOWER_AUTH)"
wait
