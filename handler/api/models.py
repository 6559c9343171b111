"""Typed results of the endpoint API (RunPod's wire shapes, runpod-protocol.md §3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EndpointWorker",
    "Health",
    "JobState",
    "JobStatus",
    "Policy",
    "StreamChunk",
    "WorkerStatus",
    "WorkersListing",
]


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


class WorkerStatus(StrEnum):
    """A worker's state in RunPod's REST v2 listing (`WorkerStatus`)."""

    RUNNING = "RUNNING"
    IDLE = "IDLE"
    INITIALIZING = "INITIALIZING"
    THROTTLED = "THROTTLED"
    UNHEALTHY = "UNHEALTHY"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: Any) -> WorkerStatus:
        try:
            return cls(str(value).upper())
        except ValueError:
            return cls.UNKNOWN


class EndpointWorker(BaseModel):
    """One entry of GET /v2/serverless/{id}/workers (`Worker`). `restarts`, `last_exit` and
    `jobs` are the emulator's additions; a real endpoint leaves them None."""

    id: str
    status: WorkerStatus
    is_stale: bool = False
    version: int | None = None
    gpu_count: int = 0
    image: str | None = None
    uptime_s: float | None = None
    gpu_type_id: str | None = None
    data_center_id: str | None = None
    started_at: str | None = None
    restarts: int | None = None
    last_exit: str | None = None
    jobs: list[str] | None = None

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> EndpointWorker:
        jobs = body.get("jobs")
        return cls(
            id=str(body.get("id") or ""),
            status=WorkerStatus.parse(body.get("status")),
            is_stale=bool(body.get("isStale")),
            version=body.get("version"),
            gpu_count=int(body.get("gpuCount") or 0),
            image=body.get("image"),
            uptime_s=body.get("uptimeSeconds"),
            gpu_type_id=body.get("gpuTypeId"),
            data_center_id=body.get("dataCenterId"),
            started_at=body.get("startedAt"),
            restarts=body.get("restarts"),
            last_exit=body.get("lastExit"),
            jobs=[str(j) for j in jobs] if isinstance(jobs, list) else None,
        )


class WorkersListing(BaseModel):
    """RunPod's `ListEndpointWorkersResponse`: the active workers and counts by status."""

    workers: list[EndpointWorker] = Field(default_factory=list)
    summary: dict[str, int] = Field(default_factory=dict)
    endpoint_version: int | None = None
    raw: dict[str, Any] = Field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> WorkersListing:
        rows = body.get("workers")
        workers = (
            [EndpointWorker.from_wire(w) for w in rows if isinstance(w, dict)]
            if isinstance(rows, list)
            else []
        )
        summary = body.get("summary")
        counts = (
            {k: int(v) for k, v in summary.items() if isinstance(v, int | float)}
            if isinstance(summary, dict)
            else {}
        )
        return cls(
            workers=workers,
            summary=counts,
            endpoint_version=body.get("endpointVersion"),
            raw=body,
        )

    def by_status(self, status: WorkerStatus) -> list[EndpointWorker]:
        return [w for w in self.workers if w.status == status]

    @property
    def stale(self) -> list[EndpointWorker]:
        return [w for w in self.workers if w.is_stale]
