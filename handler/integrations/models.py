"""Request and response models of the FastAPI integration (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from podfleet.api import Policy
from podfleet.integrations.config import KEY_PATTERN
from podfleet.integrations.ledger import Record
from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

__all__ = [
    "BatchRequest",
    "BatchView",
    "CheckView",
    "ConnectionView",
    "HealthView",
    "JobRequest",
    "JobView",
    "WebhookReceipt",
]

Priority = Literal["normal", "high"]


def _not_empty(value: Any, field: str) -> Any:
    if value is None or value == {} or value == [] or value == "":
        raise ValueError(f"{field}: must not be empty (RunPod never dispatches an empty input)")
    return value


class JobRequest(BaseModel):
    """One job: `input` is what the endpoint's handler sees as job["input"]."""

    model_config = ConfigDict(extra="forbid")
    input: JsonValue = Field(description="The job's input (a JSON object for podfleet handlers).")
    policy: Policy | None = Field(None, description="executionTimeout/ttl/lowPriority.")
    priority: Priority = Field("normal", description="Celery: high goes to the priority queue.")
    idempotency_key: str | None = Field(
        None,
        pattern=KEY_PATTERN,
        description="Same key, same job: a repeated request never submits again. Default: new.",
    )

    @field_validator("input")
    @classmethod
    def _input(cls, value: Any) -> Any:
        return _not_empty(value, "input")


class BatchRequest(BaseModel):
    """Many jobs, one per input; item i gets the key `{idempotency_key}:{i}`."""

    model_config = ConfigDict(extra="forbid")
    inputs: list[JsonValue] = Field(min_length=1, max_length=100_000)
    policy: Policy | None = None
    priority: Priority = "normal"
    idempotency_key: str | None = Field(None, pattern=KEY_PATTERN)

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, values: list[Any]) -> list[Any]:
        for i, value in enumerate(values):
            _not_empty(value, f"inputs[{i}]")
        return values


class JobView(BaseModel):
    """A key's job as the ledger (and, for running jobs, the endpoint) knows it."""

    key: str
    state: str = Field(
        description="queued, pending, submitted, final, ambiguous, rejected or cancelled."
    )
    job_id: str | None = Field(None, description="The RunPod job id, once /run answered.")
    status: str | None = Field(None, description="RunPod status (IN_QUEUE ... COMPLETED).")
    output: Any = None
    error: Any = None
    progress: Any = None
    delay_time_ms: float | None = None
    execution_time_ms: float | None = None
    worker_id: str | None = None
    attempts: int = Field(0, description="/run requests sent for this key.")
    duplicates: list[str] = Field(
        default_factory=list, description="Other job ids seen for this key (should be empty)."
    )
    status_url: str
    cancel_url: str

    @classmethod
    def from_record(cls, rec: Record, prefix: str) -> JobView:
        result = rec.result or {}
        return cls(
            key=rec.key,
            state=rec.state,
            job_id=rec.job_id,
            status=rec.status,
            output=result.get("output"),
            error=result.get("error") if rec.state == "final" else rec.error,
            progress=result.get("progress"),
            delay_time_ms=result.get("delay_time_ms"),
            execution_time_ms=result.get("execution_time_ms"),
            worker_id=result.get("worker_id"),
            attempts=rec.attempts,
            duplicates=rec.duplicates,
            status_url=f"{prefix}/jobs/{rec.key}",
            cancel_url=f"{prefix}/jobs/{rec.key}/cancel",
        )

    @property
    def done(self) -> bool:
        return self.state in ("final", "ambiguous", "rejected", "cancelled")


class BatchView(BaseModel):
    key: str
    total: int
    states: dict[str, int] = Field(description="How many items are in each state.")
    jobs: list[JobView]


class CheckView(BaseModel):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class ConnectionView(BaseModel):
    """The connection test: the endpoint, the ledger's Redis, and Celery when used."""

    ok: bool
    endpoint: CheckView
    ledger: CheckView
    celery: CheckView | None = None


class HealthView(BaseModel):
    """The endpoint's /health and, when Celery is used, its queue lengths."""

    ok: bool
    endpoint: dict[str, Any] | None = Field(None, description="{jobs: {...}, workers: {...}}")
    endpoint_error: str | None = None
    celery_queues: dict[str, int] | None = None
    celery_error: str | None = None


class WebhookReceipt(BaseModel):
    key: str
    recorded: str = Field(description="ok, already, duplicate or ignored (not final).")
