"""The one place where foreign exceptions (httpx, Playwright, CUDA, SQLAlchemy, ...) become ours.

Matched by class name and module so that this module imports none of those libraries.
"""

from __future__ import annotations

import asyncio

from podfleet.pipeline.errors import FatalWorkerError, PodfleetError, StageError, StageTimeout

__all__ = ["translate"]

_RETRYABLE_NAMES = {
    # network and transient database trouble
    "ConnectError",
    "ReadTimeout",
    "ConnectTimeout",
    "RemoteProtocolError",
    "PoolTimeout",
    "OperationalError",
    "DisconnectionError",
    "TimeoutError",
    "ConnectionError",
    "ConnectionResetError",
    "BrokenPipeError",
}


def _qualname(exc: BaseException) -> str:
    cls = type(exc)
    return f"{cls.__module__}.{cls.__name__}"


def translate(exc: BaseException, stage: str | None = None) -> PodfleetError:
    """Map any exception to our tree; the message never carries a traceback."""
    if isinstance(exc, PodfleetError):
        if isinstance(exc, StageError) and exc.stage is None:
            exc.stage = stage
        return exc
    name = type(exc).__name__
    qualname = _qualname(exc)
    text = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else name
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return StageTimeout(f"timed out: {text}", stage=stage)
    if name == "OutOfMemoryError" and "torch" in qualname:
        return StageError(f"out of GPU memory: {text}", retryable=True, stage=stage)
    if "torch" in qualname or ("cuda" in text.lower() and "error" in text.lower()):
        return FatalWorkerError(f"{name}: {text}")
    if "playwright" in qualname and name == "TimeoutError":
        return StageTimeout(f"timed out: {text}", stage=stage)
    if "playwright" in qualname and ("Target closed" in text or "has been closed" in text):
        return StageError(f"browser closed: {text}", retryable=True, stage=stage)
    retryable = name in _RETRYABLE_NAMES or isinstance(exc, ConnectionError | OSError)
    return StageError(f"{name}: {text}", retryable=retryable, stage=stage)
