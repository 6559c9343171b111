"""The FastAPI app the caller tests serve with a real uvicorn (`uvicorn --factory` this module).

PODFLEET_CALLER_MODE=celery submits through the Celery app of celery_app.py; direct submits from
the app's own process. Its webhooks point at itself (PODFLEET_CALLER_WEBHOOK_BASE).
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from podfleet.integrations.fastapi import create_app


def create() -> FastAPI:
    from tests.integration.caller.celery_app import app as celery_app
    from tests.integration.caller.celery_app import config

    celery = celery_app if os.environ.get("PODFLEET_CALLER_MODE") == "celery" else None
    own = config.model_copy(update={"webhook_base_url": os.environ["PODFLEET_CALLER_WEBHOOK_BASE"]})
    return create_app(own, celery_app=celery)
