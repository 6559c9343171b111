"""This app's configuration, from the environment (your app, your variables)."""

from __future__ import annotations

import os

from podfleet.integrations import CallerConfig

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE = os.environ.get("CELERY_QUEUE", "imagegen")

CONFIG = CallerConfig(
    endpoint_id=os.environ.get("RUNPOD_ENDPOINT_ID", "local-endpoint"),
    base_url=os.environ.get("RUNPOD_ENDPOINT_BASE_URL", "https://api.runpod.ai/v2"),
    api_key=os.environ.get("RUNPOD_API_KEY") or None,
    redis_url=REDIS_URL,
    key_prefix=QUEUE,
    queue=QUEUE,
    high_priority_queue=f"{QUEUE}.high",
    # the seed's numbers: polls every 5 s, give up after 300 s, 3 retries, results for an hour
    poll_interval_s=5,
    wait_timeout_s=float(os.environ.get("WAIT_TIMEOUT_S", "300")),
    error_retries=3,
    result_expires_s=3600,
    # where RunPod can reach this app's webhook receiver (unset: polling only)
    webhook_base_url=os.environ.get("PUBLIC_URL") or None,
)
