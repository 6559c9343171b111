"""The Celery app the caller tests run in a real worker process (`celery -A` this module).

Configured from the JSON in PODFLEET_CALLER_TEST (written by tests/integration/caller/stack.py).
A key containing `block-after-submit` makes the submit task stop right after /run answered and
its job id was recorded (the `job_submitted` signal), until the test SIGKILLs the worker.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from podfleet.integrations import CallerConfig
from podfleet.integrations.celery import create_celery_app, job_submitted

SETUP = json.loads(os.environ["PODFLEET_CALLER_TEST"])
config = CallerConfig(**SETUP["config"])
app = create_celery_app(
    config,
    broker_url=SETUP["redis_url"],
    result_backend=SETUP["redis_url"],
    visibility_timeout_s=SETUP["visibility_timeout_s"],
    transport_options={"unacked_restore_interval": 1, "unacked_restore_throttle": 1},
)


@job_submitted.connect
def _block_after_submit(sender=None, key: str = "", job_id: str = "", **_: object) -> None:
    if "block-after-submit" in key:
        Path(SETUP["marker_dir"], key).write_text(job_id)
        time.sleep(300)  # the test kills this worker now
