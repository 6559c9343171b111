"""The error tree shared by every stage. The edge (handler/) translates it into output.

- `InputError`: the caller sent something wrong; never retried; names the field.
- `StageError`: one item (or source) failed in a stage; `retryable`: may trying again help.
- `JobFailure`: the job as a whole failed (ends FAILED); a coordinator may retry it.
- `FatalWorkerError`: the process is broken (browser keeps crashing, CUDA fault); the worker must
  be refreshed. It aborts the job instead of failing items one by one.
"""

from __future__ import annotations

__all__ = [
    "FatalWorkerError",
    "InputError",
    "JobFailure",
    "PodfleetError",
    "StageError",
    "StageTimeout",
]


class PodfleetError(Exception):
    """Base of every error this project raises on purpose."""


class InputError(PodfleetError):
    """Bad input. `field` is a dotted path such as `items.2.sources.0.url`."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class StageError(PodfleetError):
    """A stage failed for one item or source."""

    def __init__(self, message: str, *, retryable: bool = False, stage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.stage = stage


class StageTimeout(StageError):
    """A stage ran out of its time budget."""

    def __init__(self, message: str, *, stage: str | None = None) -> None:
        super().__init__(message, retryable=True, stage=stage)


class JobFailure(PodfleetError):
    """The whole job failed (not one item); the caller may retry the job elsewhere."""


class FatalWorkerError(PodfleetError):
    """The worker process is unfit for more work and asks to be refreshed."""
