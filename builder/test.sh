#!/usr/bin/env bash
# The test command (README and .ci/run): sets up what the tests need, starts PostgreSQL, runs pytest.
# Extra arguments go to pytest, e.g. `bash builder/test.sh tests/unit -x`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$(dirname "$here")"
bash "$here/setup.sh" --dev
PODFLEET_TEST_DATABASE_URL="$(bash "$here/postgres.sh")"
export PODFLEET_TEST_DATABASE_URL
PODFLEET_TEST_REDIS_URL="$(bash "$here/redis.sh")"  # Celery broker, ledger (tests/integration/caller)
export PODFLEET_TEST_REDIS_URL
export PODFLEET_REQUIRE_POSTGRES=1  # a skipped PostgreSQL test fails the run
export PODFLEET_REQUIRE_CHROMIUM=1
# tests/integration/image: buildah, debootstrap, root and namespaces (a VM or a privileged
# container); a machine that cannot may set PODFLEET_REQUIRE_IMAGE=0 to skip them.
export PODFLEET_REQUIRE_IMAGE=${PODFLEET_REQUIRE_IMAGE:-1}
exec python3 -m pytest "$@"
