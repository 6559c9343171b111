"""Which model failures are which: out of memory (shrink the batch), CUDA fault (refresh the
worker), anything else (a bug or bad input: let it propagate).

Matched by class name and message so that this module imports no torch.
"""

from __future__ import annotations

from typing import Literal

from podfleet.pipeline.errors import FatalWorkerError, StageError

__all__ = ["UnknownModelError", "classify_failure", "fatal_from"]

FailureKind = Literal["oom", "cuda", "other"]

_CUDA_MARKERS = ("cuda", "cudnn", "cublas", "nccl", "device-side assert", "illegal memory access")


class UnknownModelError(StageError):
    """MODEL_NAME names no registered model (never retried: the setting is wrong)."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(
            f"unknown model {name!r} (MODEL_NAME); known: {', '.join(known)}",
            retryable=False,
            stage="embed",
        )
        self.name = name


def classify_failure(exc: BaseException) -> FailureKind:
    """`oom` for torch.cuda.OutOfMemoryError or any error saying "out of memory"; `cuda` for
    other CUDA/driver faults (the context is likely corrupt); `other` for the rest."""
    name = type(exc).__name__
    text = str(exc).lower()
    if name == "OutOfMemoryError" or "out of memory" in text:
        return "oom"
    module = type(exc).__module__ or ""
    if name == "AcceleratorError" or (
        (module.startswith("torch") or isinstance(exc, RuntimeError))
        and any(marker in text for marker in _CUDA_MARKERS)
    ):
        return "cuda"
    return "other"


def fatal_from(exc: BaseException, model_name: str) -> FatalWorkerError:
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return FatalWorkerError(
        f"model {model_name!r} hit a CUDA fault ({type(exc).__name__}: {first_line})"
    )
