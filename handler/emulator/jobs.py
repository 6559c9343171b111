"""Job records of the emulated queue: statuses, the /run request body, what /status shows."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = ["FINAL", "JobRecord", "JobStatus", "Policy", "RunRequest", "ms"]


class JobStatus(StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    def is_final(self) -> bool:
        return self in FINAL


FINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMED_OUT})


class Policy(BaseModel):
    """RunPod's per-job policy (milliseconds, as on the wire)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    executionTimeout: int | None = Field(None, gt=0)
    ttl: int | None = Field(None, gt=0)
    lowPriority: bool = False


class RunRequest(BaseModel):
    """Body of /run and /runsync."""

    model_config = ConfigDict(extra="forbid")
    input: JsonValue
    webhook: str | None = None
    policy: Policy | None = None
    s3Config: dict[str, Any] | None = None  # accepted and ignored (no object store offline)


def ms(seconds: float) -> int:
    return round(seconds * 1000)


@dataclass
class JobRecord:
    id: str
    input: Any
    webhook: str | None
    execution_timeout_s: float
    ttl_s: float
    low_priority: bool
    sync: bool
    status: JobStatus = JobStatus.IN_QUEUE
    created_at: float = field(default_factory=time.monotonic)
    created_wall: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    worker_id: str | None = None
    attempts: int = 0  # times a worker took it
    retries: int = 0  # re-queues because its worker died or was lost
    output: Any = None
    has_output: bool = False
    error: Any = None
    progress: Any = None
    stream: list[Any] = field(default_factory=list)
    stream_cursor: int = 0
    ignored_posts: list[dict[str, Any]] = field(default_factory=list)
    parent_id: str | None = None  # a coordinator's job id, when this is one of its siblings
    chunk: int | None = None
    run_s: float = 0.0  # execution time of earlier attempts (re-queued after a worker died)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)

    @staticmethod
    def sibling_of(payload: Any) -> tuple[str | None, int | None]:
        """(parent job id, chunk) when the input is a podfleet sibling envelope."""
        sibling = payload.get("sibling") if isinstance(payload, dict) else None
        if not isinstance(sibling, dict) or not isinstance(sibling.get("parent_id"), str):
            return None, None
        chunk = sibling.get("chunk")
        return sibling["parent_id"], chunk if isinstance(chunk, int) else None

    def execution_s(self, now: float | None = None) -> float | None:
        """Running time so far (earlier attempts included); None before the first start."""
        if self.started_at is None:
            return self.run_s or None
        end = self.finished_at or (time.monotonic() if now is None else now)
        return self.run_s + max(0.0, end - self.started_at)

    def job_payload(self) -> dict[str, Any]:
        """What a worker receives from job-take."""
        return {"id": self.id, "input": self.input}

    def status_body(self) -> dict[str, Any]:
        """The /status reply (also the webhook body and the /runsync reply)."""
        body: dict[str, Any] = {"id": self.id, "status": str(self.status)}
        if self.started_at is not None:
            body["delayTime"] = ms(self.started_at - self.created_at)
            if self.finished_at is not None:
                body["executionTime"] = ms(self.finished_at - self.started_at)
            if self.worker_id:
                body["workerId"] = self.worker_id
        if self.status is JobStatus.IN_PROGRESS and self.progress is not None:
            body["output"] = self.progress
        elif self.status.is_final():
            if self.has_output:
                body["output"] = self.output
            if self.error is not None:
                body["error"] = self.error
        if self.retries:
            body["retries"] = self.retries
        return body

    def info(self) -> dict[str, Any]:
        """Everything, for tests and the Python API."""
        return {
            "id": self.id,
            "status": str(self.status),
            "worker_id": self.worker_id,
            "attempts": self.attempts,
            "retries": self.retries,
            "output": self.output if self.has_output else None,
            "error": self.error,
            "progress": self.progress,
            "stream": list(self.stream),
            "ignored_posts": list(self.ignored_posts),
            "low_priority": self.low_priority,
            "sync": self.sync,
            "parent_id": self.parent_id,
            "chunk": self.chunk,
            "created_at": self.created_wall,
            "delay_s": None if self.started_at is None else self.started_at - self.created_at,
            "execution_s": None
            if self.started_at is None or self.finished_at is None
            else self.finished_at - self.started_at,
        }

    def cancel_timer(self, name: str) -> None:
        handle = self.timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def cancel_timers(self) -> None:
        for name in list(self.timers):
            self.cancel_timer(name)
