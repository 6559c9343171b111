"""Typed results of the endpoint API (RunPod's wire shapes, runpod-protocol.md §3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Health", "JobState", "JobStatus", "Policy", "StreamChunk"]


class JobStatus(StrEnum):
    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"
    UNKNOWN = "UNKNOWN"  # a status this client does not know (the API added one)

    @classmethod
    def parse(cls, value: Any) -> JobStatus:
        try:
            return cls(str(value).upper())
        except ValueError:
            return cls.UNKNOWN

    def is_terminal(self) -> bool:
        return self in (self.COMPLETED, self.FAILED, self.CANCELLED, self.TIMED_OUT)


class Policy(BaseModel):
    """Per-job execution policy; None leaves the endpoint's default (600 s, 24 h)."""

    model_config = ConfigDict(extra="forbid")
    execution_timeout_s: float | None = Field(None, gt=0)
    ttl_s: float | None = Field(None, gt=0)
    low_priority: bool | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {}
        if self.execution_timeout_s is not None:
            wire["executionTimeout"] = int(self.execution_timeout_s * 1000)
        if self.ttl_s is not None:
            wire["ttl"] = int(self.ttl_s * 1000)
        if self.low_priority is not None:
            wire["lowPriority"] = self.low_priority
        return wire


class JobState(BaseModel):
    """One job as /run, /runsync, /status, /cancel or /retry report it."""

    id: str
    status: JobStatus
    output: Any = None
    error: Any = None
    delay_time_ms: float | None = None
    execution_time_ms: float | None = None
    worker_id: str | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, body: dict[str, Any], job_id: str | None = None) -> JobState:
        return cls(
            id=str(body.get("id") or job_id or ""),
            status=JobStatus.parse(body.get("status")),
            output=body.get("output"),
            error=body.get("error"),
            delay_time_ms=body.get("delayTime"),
            execution_time_ms=body.get("executionTime"),
            worker_id=body.get("workerId"),
            raw=body,
        )

    @property
    def terminal(self) -> bool:
        return self.status.is_terminal()

    @property
    def progress(self) -> dict[str, Any] | None:
        """A running job's latest `progress_update` payload, if it published one as a dict."""
        if self.status == JobStatus.IN_PROGRESS and isinstance(self.output, dict):
            return self.output
        return None


class StreamChunk(BaseModel):
    """One chunk a generator handler yielded, as /stream returns it."""

    output: Any = None


class Health(BaseModel):
    """/health: job counts and worker counts (extra worker states kept as reported)."""

    jobs: dict[str, int] = Field(default_factory=dict)
    workers: dict[str, int] = Field(default_factory=dict)
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Health:
        def ints(section: Any) -> dict[str, int]:
            if not isinstance(section, dict):
                return {}
            return {k: int(v) for k, v in section.items() if isinstance(v, int | float)}

        return cls(jobs=ints(body.get("jobs")), workers=ints(body.get("workers")), raw=body)
