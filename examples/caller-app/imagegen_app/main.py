"""The FastAPI app: `uvicorn imagegen_app.main:app` (docs at /docs).

/generate, /generate/batch and /images/{key} are this app's own shape; podfleet's generic routes
(status, cancel, health with queue stats, connection test, the webhook receiver) are under
/podfleet.
"""

from __future__ import annotations

import base64

from fastapi import FastAPI, HTTPException, Response
from podfleet.integrations.fastapi import CallerAPI
from podfleet.integrations.models import BatchRequest, BatchView, JobRequest, JobView
from pydantic import BaseModel, ConfigDict, Field

from imagegen_app.config import CONFIG
from imagegen_app.tasks import app as celery_app

api = CallerAPI(CONFIG, celery_app=celery_app, prefix="/podfleet")
app = FastAPI(title="imagegen", lifespan=api.lifespan)
app.include_router(api.router, prefix="/podfleet")


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompt: str = Field(min_length=1, max_length=2000)
    width: int = Field(64, ge=8, le=512)
    height: int = Field(64, ge=8, le=512)
    steps: int = Field(10, ge=1, le=200)
    seed: int = 0
    priority: str = Field("normal", pattern="^(normal|high)$")
    idempotency_key: str | None = None


class BatchImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: list[str] = Field(min_length=1, max_length=1000)
    width: int = Field(64, ge=8, le=512)
    height: int = Field(64, ge=8, le=512)
    steps: int = Field(10, ge=1, le=200)
    idempotency_key: str | None = None


def _input(prompt: str, width: int, height: int, steps: int, seed: int = 0) -> dict:
    return {"prompt": prompt, "width": width, "height": height, "steps": steps, "seed": seed}


@app.post("/generate", status_code=202, response_model=JobView)
async def generate(req: ImageRequest) -> JobView:
    """Queue one image; poll /images/{key} (or the returned status_url)."""
    job = JobRequest(
        input=_input(req.prompt, req.width, req.height, req.steps, req.seed),
        priority=req.priority,
        idempotency_key=req.idempotency_key,
    )
    return await api.submit_job(job)


@app.post("/generate/batch", status_code=202, response_model=BatchView)
async def generate_batch(req: BatchImageRequest) -> BatchView:
    size = (req.width, req.height, req.steps)
    inputs = [_input(p, *size, seed=i) for i, p in enumerate(req.prompts)]
    return await api.submit_batch(BatchRequest(inputs=inputs, idempotency_key=req.idempotency_key))


@app.get("/images/{key}.png", responses={200: {"content": {"image/png": {}}}})
async def image_png(key: str) -> Response:
    view = await api.job_status(key, refresh=False)
    if view.status != "COMPLETED":
        raise HTTPException(409, f"image {key} is not ready: {view.state} {view.status or ''}")
    return Response(base64.b64decode(view.output["image_png_base64"]), media_type="image/png")


@app.get("/images/{key}", response_model=JobView)
async def image(key: str) -> JobView:
    """The job; once COMPLETED, `output` has the PNG (base64) and /images/{key}.png serves it."""
    return await api.job_status(key, refresh=False)
