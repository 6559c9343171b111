"""A worker process for the concurrency tests: waits for the start signal, runs one job through
`podfleet.entry.handler` (DATABASE_URL from the environment, fresh database), prints the output.

    python -m tests.integration.store.run_job JOB_JSON_FILE START_FILE
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from podfleet.entry import handler

import tests.integration.store.helpers  # noqa: F401  (registers the inline pipeline)


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text())
    start = Path(sys.argv[2])
    (start.parent / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not start.exists() and time.monotonic() < deadline:
        time.sleep(0.005)  # every process is imported and ready: first use at the same moment
    out = asyncio.run(handler(job))
    print("OUTPUT " + json.dumps(out))


if __name__ == "__main__":
    main()
