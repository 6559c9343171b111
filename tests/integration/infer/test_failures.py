"""Failure handling with the failure fixture models (tests/fixtures/models) over the real MiniLM:
out-of-memory back-off, a window that never fits, CUDA faults, GPU_TIMEOUT, bad model names."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from podfleet.pipeline.config import InferConfig
from podfleet.pipeline.errors import FatalWorkerError, StageTimeout
from podfleet.pipeline.infer import UnknownModelError, embed_texts, encode_texts

pytestmark = pytest.mark.model

TEXTS = [
    f"Report {i}: " + "dock workers strike at container ports, ships wait offshore. " * (1 + i % 5)
    for i in range(40)
]


def model(name: str, **kw) -> InferConfig:
    return InferConfig(model_name=name, device="cpu", **kw)


async def test_oom_on_big_batches_ends_in_smaller_batches_and_same_vectors(minilm) -> None:
    from podfleet.pipeline.resources import WarmResources

    reference = encode_texts(minilm, TEXTS, 65536)
    assert reference.stats.largest_batch > 8  # without the fixture, batches are big

    resources = WarmResources()
    result = await embed_texts(TEXTS, model("oom_above_8", token_budget=65536), resources)
    fixture = resources.peek("model:oom_above_8")
    assert result.errors == {}
    assert result.stats.oom_retries >= 1
    assert result.stats.largest_batch <= 8
    assert max(fixture.calls) > 8  # it was asked for big batches, and said no
    # after the first out-of-memory the budget stays halved: few failed calls in all
    assert sum(1 for rows in fixture.calls if rows > 8) == result.stats.oom_retries
    for got, want in zip(result.vectors, reference.vectors, strict=True):
        assert np.abs(got - want).max() < 1e-5


async def test_a_window_that_never_fits_fails_only_its_text(minilm) -> None:
    from podfleet.pipeline.resources import WarmResources

    texts = [*TEXTS[:6], "this page is poison to the GPU", *TEXTS[6:12]]
    resources = WarmResources()
    result = await embed_texts(texts, model("oom_on_poison"), resources)
    assert set(result.errors) == {6}
    assert "out of memory" in result.errors[6]
    assert result.vectors[6] is None
    assert min(resources.peek("model:oom_on_poison").calls) == 1  # halved down to one row
    good = encode_texts(minilm, TEXTS[:12], 8192).vectors
    for got, want in zip(result.vectors[:6] + result.vectors[7:], good, strict=True):
        assert np.abs(got - want).max() < 1e-5


async def test_cuda_fault_is_fatal_and_drops_the_model() -> None:
    from podfleet.pipeline.resources import WarmResources

    resources = WarmResources()
    with pytest.raises(FatalWorkerError, match="CUDA fault"):
        await embed_texts(TEXTS[:3], model("cuda_fault"), resources)
    assert resources.refresh_requested is True
    assert resources.peek("model:cuda_fault") is None


async def test_gpu_timeout_fails_retryably_and_stops_the_model_thread() -> None:
    from podfleet.pipeline.resources import WarmResources

    resources = WarmResources()
    config = model("slow_batches", token_budget=64)  # one row per batch: 12 batches of 0.5 s
    with pytest.raises(StageTimeout, match="GPU_TIMEOUT") as caught:
        await embed_texts(TEXTS[:12], config, resources, timeout_s=0.8)
    assert caught.value.retryable is True
    fixture = resources.peek("model:slow_batches")
    await asyncio.sleep(1.2)  # the thread notices the cancel flag between batches
    calls = len(fixture.calls)
    await asyncio.sleep(0.7)
    assert len(fixture.calls) == calls < 12
    assert fixture.lock.acquire(timeout=10)  # the model is free for the next job
    fixture.lock.release()


async def test_unknown_model_names_the_setting() -> None:
    from podfleet.pipeline.resources import WarmResources

    with pytest.raises(UnknownModelError, match=r"MODEL_NAME.*all-MiniLM-L6-v2") as caught:
        await embed_texts(["x"], model("no-such-model"), WarmResources())
    assert caught.value.retryable is False


async def test_cancelling_the_job_stops_the_model_thread() -> None:
    """RunPod's job-stop (or the job deadline) cancels the task: the thread stops at the next batch
    instead of computing the rest (12 batches of 0.5 s) while holding the model."""
    from podfleet.pipeline.resources import WarmResources

    resources = WarmResources()
    config = model("slow_batches", token_budget=64)
    task = asyncio.create_task(embed_texts(TEXTS[:12], config, resources))
    await asyncio.sleep(0.8)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fixture = resources.peek("model:slow_batches")
    assert fixture.lock.acquire(timeout=10)
    fixture.lock.release()
    assert len(fixture.calls) < 12
