"""The Celery app: `celery -A imagegen_app.tasks worker -Q imagegen.high,imagegen`.

podfleet's tasks (podfleet.submit, .wait, .batch, .test_connection) do the RunPod part; add
your own tasks here (e.g. store the PNGs somewhere once a job completed).
"""

from __future__ import annotations

from podfleet.integrations.celery import create_celery_app

from imagegen_app.config import CONFIG, REDIS_URL

app = create_celery_app(CONFIG, broker_url=REDIS_URL, result_backend=REDIS_URL, name="imagegen")
