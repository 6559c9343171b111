"""The job envelope: the raw RunPod job dict, parsed once, here, into typed objects.

Nothing below this module touches `job["input"][...]`. Validation is strict (JSON semantics: a
string is not an int, "yes" is not a bool), unknown fields are rejected, and every error names the
field by its dotted path (`items.2.sources.0.url`) and says what was expected.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal

from podfleet.pipeline.errors import InputError
from podfleet.pipeline.registry import get_pipeline
from podfleet.pipeline.stage import Pipeline
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["JobEnvelope", "ParsedJob", "SiblingInfo", "format_validation_error", "parse_job"]


class SiblingInfo(BaseModel):
    """Set by a coordinator on the sibling jobs it submits."""

    model_config = ConfigDict(extra="forbid", strict=True)
    parent_id: str = Field(min_length=1)
    chunk: int = Field(ge=0)
    attempt: int = Field(0, ge=0)
    key: str = Field(min_length=1, description="Idempotency key: parent id + chunk index.")
    return_records: bool = Field(False, description="Return load records; do not load.")
    # Sent by coordinators before chunks were interleaved; still accepted (and ignored) so that
    # an old coordinator's siblings run on new workers during a rolling update.
    first_index: int | None = Field(None, ge=0, description="Ignored (older coordinators).")


class JobEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Literal["auto", "coordinator", "worker"] = "auto"
    pipeline: str = Field("flashpoints", min_length=1)
    items: list[dict[str, Any]] = Field(min_length=1)
    date: dt.date = Field(default_factory=lambda: dt.datetime.now(dt.UTC).date())
    trigger: Literal["manual", "schedule", "api"] = "manual"
    cleanup: bool = False
    workers: int | None = Field(None, ge=1, le=1000)
    options: dict[str, Any] = Field(default_factory=dict)
    sibling: SiblingInfo | None = None


@dataclass(frozen=True)
class ParsedJob:
    job_id: str
    envelope: JobEnvelope
    pipeline: Pipeline
    items: list[BaseModel]
    options: BaseModel

    @property
    def attempt(self) -> int:
        return self.envelope.sibling.attempt if self.envelope.sibling else 0


def _expected(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind in ("date_from_datetime_parsing", "date_parsing", "date_type"):
        return " (expected an ISO date, YYYY-MM-DD)"
    return ""


def format_validation_error(exc: ValidationError, prefix: str = "") -> InputError:
    """One InputError naming the first failing field, with up to two more listed."""
    parts = []
    first_field = ""
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        first_field = first_field or loc
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "field required"
        parts.append(f"{loc or '<input>'}: {msg}{_expected(err)}")
    more = exc.error_count() - len(parts)
    text = "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
    return InputError(first_field, f"invalid input: {text}")


def _validate(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    try:
        # JSON-mode validation: strict, yet ISO date strings are dates.
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise format_validation_error(exc, prefix) from None


def parse_job(job: Any) -> ParsedJob:
    """Turn a raw RunPod job into a ParsedJob, or raise InputError naming the field."""
    if not isinstance(job, dict):
        raise InputError("", f"invalid job: expected an object, got {type(job).__name__}")
    job_id = str(job.get("id") or "local")
    raw = job.get("input")
    if not isinstance(raw, dict):
        got = "nothing" if raw is None else type(raw).__name__
        raise InputError("input", f"invalid input: expected an object, got {got}")
    envelope: JobEnvelope = _validate(JobEnvelope, raw)
    pipeline = get_pipeline(envelope.pipeline)
    items = [
        _validate(pipeline.item_model, item, f"items.{i}") for i, item in enumerate(envelope.items)
    ]
    ids = [pipeline.item_id(item) for item in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError("items", f"invalid input: items: duplicate item id {dup!r}")
    options = _validate(pipeline.options_model, envelope.options, "options")
    return ParsedJob(job_id, envelope, pipeline, items, options)
