"""The warm model: loaded lazily, once per worker process, on the best device, and the one async
entry point the stages use (`embed_texts`), which runs the model in a thread under GPU_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import threading
import time

from loguru import logger
from podfleet.pipeline.config import InferConfig
from podfleet.pipeline.errors import FatalWorkerError, PodfleetError, StageTimeout
from podfleet.pipeline.infer.batching import EncodeCancelled, EncodeResult, encode_texts
from podfleet.pipeline.infer.encoder import Encoder
from podfleet.pipeline.infer.registry import get_model
from podfleet.pipeline.resources import WarmResources

__all__ = [
    "embed_texts",
    "get_encoder",
    "resolve_device",
    "resolve_precision",
    "resource_name",
    "token_budget_for",
    "warm_up",
]

# Tokens per batch when INFER_TOKEN_BUDGET is 0. CPU (bench/bench_infer.py, docs/inference.md):
# with 1 torch thread, by CPU time, 1-2k was best and 4-8k cost 13-15% more; with 2 threads on the
# shared build machine wall figures were inconclusive. So 2k per thread (bigger operations for
# more threads to split), within [2k, 16k]. CUDA: big batches keep the GPU busy (not measured
# here: no GPU on this machine); fp16 MiniLM at 16k tokens needs well under 1 GB of activations.
CPU_TOKENS_PER_THREAD = 2048
CUDA_TOKEN_BUDGET = 16384


def resolve_device(requested: str) -> str:
    """auto → cuda when torch sees a GPU, else cpu. Asking for cuda without one is fatal."""
    import torch

    has_cuda = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if has_cuda else "cpu"
    if requested.startswith("cuda") and not has_cuda:
        raise FatalWorkerError("INFER_DEVICE is 'cuda' but torch sees no CUDA device")
    return requested


def resolve_precision(requested: str, device: str) -> str:
    if requested == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    return requested


def token_budget_for(config: InferConfig, device: str) -> int:
    if config.token_budget > 0:
        return config.token_budget
    if device.startswith("cuda"):
        return CUDA_TOKEN_BUDGET
    import torch

    return min(16384, max(2048, CPU_TOKENS_PER_THREAD * torch.get_num_threads()))


def resource_name(config: InferConfig) -> str:
    return f"model:{config.model_name}"


def _load(config: InferConfig) -> Encoder:
    spec = get_model(config.model_name)  # unknown name: UnknownModelError, before torch loads
    t0 = time.perf_counter()
    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    try:
        encoder = spec.load(device)
        if precision != "fp32":
            encoder.set_precision(precision)
    except PodfleetError:
        raise
    except Exception as exc:  # missing files, corrupt weights, driver trouble: the host is unfit
        raise FatalWorkerError(
            f"model {config.model_name!r} failed to load on {device}: {type(exc).__name__}: {exc}"
        ) from exc
    logger.info(
        "model {} loaded on {} ({}) in {:.2f}s ({} dims, {} tokens)",
        config.model_name,
        device,
        precision,
        time.perf_counter() - t0,
        encoder.dim,
        encoder.max_seq_length,
    )
    return encoder


async def get_encoder(config: InferConfig, resources: WarmResources) -> Encoder:
    """The process's model for `config.model_name`, loaded in a thread on first use."""
    get_model(config.model_name)  # fail fast on a bad name without a thread
    return await resources.get(resource_name(config), lambda: asyncio.to_thread(_load, config))


async def embed_texts(
    texts: list[str],
    config: InferConfig,
    resources: WarmResources,
    *,
    timeout_s: float | None = None,
) -> EncodeResult:
    """Embed every text in one batched pass (see batching.py), loading the model if needed.

    Raises StageTimeout when `timeout_s` (default: GPU_TIMEOUT, config.timeout_s) runs out, and
    FatalWorkerError on a CUDA fault after dropping the model (a refreshed worker, or the next
    job, loads a fresh one). On any early exit (timeout, job deadline, RunPod cancellation) the
    model thread is told to stop at the next batch.
    """
    budget_s = config.timeout_s if timeout_s is None else timeout_s
    cancel = threading.Event()
    try:
        async with asyncio.timeout(budget_s):
            encoder = await get_encoder(config, resources)
            budget = token_budget_for(config, encoder.device)
            return await asyncio.to_thread(encode_texts, encoder, texts, budget, cancel=cancel)
    except TimeoutError:
        cancel.set()
        raise StageTimeout(
            f"inference did not finish within {budget_s:g}s (GPU_TIMEOUT) for {len(texts)} texts",
            stage="embed",
        ) from None
    except EncodeCancelled:  # pragma: no cover - only after a timeout, handled above
        raise StageTimeout("inference cancelled", stage="embed") from None
    except FatalWorkerError:
        resources.refresh_requested = True
        await resources.discard(resource_name(config))
        raise
    finally:
        # Also on the job's deadline or a RunPod cancellation (CancelledError): the thread cannot
        # be killed, but it stops at the next batch and frees the model for the next job.
        cancel.set()


async def warm_up(config: InferConfig, resources: WarmResources) -> EncodeResult:
    """Load the model into `resources` and encode one sentence (fitness check, image bake)."""
    result = await embed_texts(["podfleet warm-up sentence."], config, resources)
    vector = result.vectors[0]
    if vector is None or not vector.any():
        raise FatalWorkerError(f"model {config.model_name!r} produced no embedding at warm-up")
    return result
