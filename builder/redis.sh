#!/usr/bin/env bash
# Starts a throwaway Redis (Debian's redis-server) on a free loopback port, for the caller-side
# tests (Celery broker, result backend, podfleet's submission ledger). No persistence. Prints the
# URL to use as PODFLEET_TEST_REDIS_URL, and nothing else, on stdout. Idempotent: a server this
# script started earlier and that still answers is reused.
#   PODFLEET_REDIS_DIR  where its pid, port and log files live (default: a per-user temp dir)
set -euo pipefail

exec 3>&1 1>&2

dir=${PODFLEET_REDIS_DIR:-${TMPDIR:-/tmp}/podfleet-redis-$(id -u)}
mkdir -p "$dir"

if ! command -v redis-server >/dev/null; then
  echo "redis.sh: redis-server not found (is the redis-server package installed? builder/setup.sh)"
  exit 1
fi

ping() { redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null | grep -q PONG; }

if [ -s "$dir/port" ] && [ -s "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null \
  && ping "$(cat "$dir/port")"; then
  echo "redis://127.0.0.1:$(cat "$dir/port")/0" >&3
  exit 0
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$port" --daemonize yes --save '' --appendonly no \
  --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" 3>&-
for _ in $(seq 1 50); do
  ping "$port" && break
  sleep 0.1
done
if ! ping "$port"; then
  echo "redis.sh: redis-server did not answer on 127.0.0.1:$port (see $dir/redis.log)"
  exit 1
fi
echo "$port" >"$dir/port"
echo "redis://127.0.0.1:$port/0" >&3
