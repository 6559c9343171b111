#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster on loopback and creates the test role and database.
# Prints the URL to use as PODFLEET_TEST_DATABASE_URL, and nothing else, on stdout: every
# other message (pg_ctlcluster says "Removed stale pid file." on a fresh machine) goes to
# stderr, because callers capture stdout as the URL. Idempotent.
set -euo pipefail

exec 3>&1 1>&2

user=podfleet
password=${PODFLEET_TEST_DB_PASSWORD:-podfleet-test}
db=podfleet_test

as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else sudo -u postgres sh -c "$*"; fi
}

version=$(pg_lsclusters --no-header | awk 'NR==1 {print $1}')
cluster=$(pg_lsclusters --no-header | awk 'NR==1 {print $2}')
if [ -z "$version" ]; then
  echo "postgres.sh: no PostgreSQL cluster found (is the postgresql package installed?)" >&2
  exit 1
fi
port=$(pg_lsclusters --no-header | awk 'NR==1 {print $3}')
if ! pg_lsclusters --no-header | awk 'NR==1 {print $4}' | grep -q online; then
  pg_ctlcluster "$version" "$cluster" start 3>&-  # the server must not inherit the URL pipe
fi
for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 0.2
done
as_postgres "psql -qtA -p $port -c \"DO \\\$\\\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$user') THEN
    CREATE ROLE $user LOGIN PASSWORD '$password';
  ELSE
    ALTER ROLE $user LOGIN PASSWORD '$password';
  END IF;
END \\\$\\\$;\"" >/dev/null
if ! as_postgres "psql -qtA -p $port -lqt" | cut -d'|' -f1 | grep -qx "$db"; then
  as_postgres "createdb -p $port -O $user $db"
fi
echo "postgresql://$user:$password@127.0.0.1:$port/$db" >&3
