"""The job envelope: the raw RunPod job dict, parsed once, here, into typed objects.

Nothing below this module touches `job["input"][...]`. Validation is strict (JSON semantics: a
string is not an int, "yes" is not a bool), unknown fields are rejected, and every error names the
field by its dotted path (`items.2.sources.0.url`) and says what was expected. Before the models
see it, the input is walked once (iteratively, linear in its size) for what JSON cannot carry or
the models would misreport: lone surrogates, NaN/Infinity, integers beyond 64 bits, nesting deeper
than `MAX_DEPTH`, non-string keys, non-JSON types. Values quoted in an error are bounded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from podfleet.pipeline.errors import InputError
from podfleet.pipeline.registry import get_pipeline
from podfleet.pipeline.stage import Pipeline
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "MAX_DEPTH",
    "SIBLING_PROTOCOL",
    "SUPPORTED_SIBLING_PROTOCOLS",
    "ChunkRef",
    "ItemsSource",
    "JobEnvelope",
    "ParsedJob",
    "SiblingInfo",
    "check_json_value",
    "format_validation_error",
    "job_id_of",
    "parse_job",
    "with_sibling_policy",
]

MAX_DEPTH = 32  # objects/arrays nested in a job's input; ours need 4
MAX_INT_BITS = 63
MAX_PART_CHARS = 64  # one field-path segment as quoted in an error
MAX_DETAIL_CHARS = 300  # one error's message
_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
# The sibling envelope's shape (docs/coordinator.md, "Rolling releases"). 1: before the chunk
# ledger (no `protocol` field); 2: `fanout_id`, the ledger claim, items by reference (`ref`).
SIBLING_PROTOCOL = 2
SUPPORTED_SIBLING_PROTOCOLS = frozenset({1, 2})
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


class ItemsSource(BaseModel):
    """Where a job's items are, instead of inline `items`: exactly one of `jsonl` (a JSON Lines
    file: a path under ITEMS_FROM_ROOTS, e.g. the network volume `/runpod-volume`, or an http(s)
    URL, checked like the scraper's) and `table` (a table of the job's database, DATABASE_URL,
    read in the order of its integer `key` column, one item per row in `column`)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    jsonl: str | None = Field(None, min_length=1, max_length=4096)
    table: str | None = Field(None, pattern=_IDENTIFIER)
    key: str = Field("id", pattern=_IDENTIFIER, description="table: integer column, the order.")
    column: str = Field("item", pattern=_IDENTIFIER, description="table: the item (JSON).")

    @model_validator(mode="after")
    def _one_kind(self) -> ItemsSource:
        if (self.jsonl is None) == (self.table is None):
            raise ValueError("expected exactly one of jsonl (a file or URL) and table")
        return self


class ChunkRef(BaseModel):
    """The rows of an `ItemsSource` that one chunk holds: positions `start` ≤ p < `stop` in the
    source's order, and where they sit (so a sibling reads only its own rows)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    start: int = Field(ge=0)
    stop: int = Field(ge=1)
    offset: int | None = Field(None, ge=0, description="jsonl: byte offset of row `start`.")
    length: int | None = Field(None, ge=0, description="jsonl: bytes of rows start..stop.")
    key_from: int | None = Field(None, description="table: first key (inclusive).")
    key_to: int | None = Field(None, description="table: last key (inclusive).")

    @property
    def size(self) -> int:
        return self.stop - self.start


class SiblingInfo(BaseModel):
    """Set by a coordinator on the sibling jobs it submits."""

    model_config = ConfigDict(extra="forbid", strict=True)
    parent_id: str = Field(min_length=1)
    chunk: int = Field(ge=0)
    attempt: int = Field(0, ge=0)
    key: str = Field(min_length=1, description="Idempotency key: parent id + chunk index.")
    # Sent by coordinators, but a worker decides from its own LOAD_MODE (the endpoint's, which
    # its coordinator shares): `with_sibling_policy`. A client cannot make a sibling skip its load.
    return_records: bool = Field(False, description="Return load records; do not load.")
    # Sent by coordinators before chunks were interleaved; still accepted (and ignored) so that
    # an old coordinator's siblings run on new workers during a rolling update.
    first_index: int | None = Field(None, ge=0, description="Ignored (older coordinators).")
    # The parent job's deadline, wall-clock epoch seconds (machines' monotonic clocks differ): a
    # sibling never runs past it. Absent from older coordinators' siblings: they run on their
    # own REQUEST_TIMEOUT, as before.
    deadline_at: float | None = Field(None, description="The parent's deadline, epoch seconds.")
    # Protocol 2 on. Absent: 1 (an older coordinator). A worker refuses one it cannot honour.
    protocol: int = Field(1, ge=1, description="The sibling envelope's version.")
    fanout_id: str | None = Field(
        None, min_length=1, max_length=200, description="The chunk ledger's key (protocol 2)."
    )
    ref: ChunkRef | None = Field(None, description="This chunk's rows of `items_from`.")
    results_inline: bool = Field(
        True, description="Return per-item results in the output (else: in the ledger only)."
    )


class JobEnvelope(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    mode: Literal["auto", "coordinator", "worker"] = "auto"
    pipeline: str = Field("flashpoints", min_length=1, max_length=200)
    items: list[dict[str, Any]] = Field(default_factory=list)
    items_from: ItemsSource | None = None
    # Names one fan-out across submissions: a job with a run_key seen before resumes its ledger.
    run_key: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,200}$")
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
    item_ids: tuple[str, ...] = ()  # `pipeline.item_id` of each item, computed once (by default)

    def __post_init__(self) -> None:
        if len(self.item_ids) != len(self.items):
            ids = tuple(self.pipeline.item_id(item) for item in self.items)
            object.__setattr__(self, "item_ids", ids)

    @property
    def attempt(self) -> int:
        return self.envelope.sibling.attempt if self.envelope.sibling else 0


def _expected(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind in ("date_from_datetime_parsing", "date_parsing", "date_type"):
        return " (expected an ISO date, YYYY-MM-DD)"
    return ""


def _part(part: Any) -> str:
    """One segment of a field path, printable and bounded."""
    if isinstance(part, int):
        return str(part)
    text = str(part)
    if _PLAIN_KEY.fullmatch(text):
        return text
    quoted = ascii(text)
    return quoted if len(quoted) <= MAX_PART_CHARS else quoted[: MAX_PART_CHARS - 4] + "...'"


def _path(parts: tuple[Any, ...] | list[Any], prefix: str = "") -> str:
    return ".".join(p for p in (prefix, *(_part(x) for x in parts)) if p != "")


def _shorten(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def format_validation_error(exc: ValidationError, prefix: str = "") -> InputError:
    """One InputError naming the first failing field, with up to two more listed."""
    parts = []
    first_field = ""
    for err in exc.errors(include_url=False, include_input=False)[:3]:
        loc = _path(err["loc"], prefix)
        first_field = first_field or loc
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "field required"
        parts.append(f"{loc or 'input'}: {_shorten(msg)}{_expected(err)}")
    more = exc.error_count() - len(parts)
    text = "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
    return InputError(first_field or prefix or "input", f"invalid input: {text}")


def _bad(path: tuple[Any, ...], prefix: str, what: str) -> InputError:
    field = _path(path, prefix) or "input"
    return InputError(field, f"invalid input: {field}: {what}")


def _scalar_problem(value: Any) -> str | None:
    """What is wrong with a non-container value, or None if it is fine (or a container)."""
    kind = type(value)
    if kind is str:
        if value.isascii():
            return None
        if bad := _SURROGATE.search(value):
            return f"expected valid Unicode, got a lone surrogate U+{ord(bad.group()):04X}"
        return None
    if value is None or kind is bool or isinstance(value, dict | list | tuple):
        return None
    if isinstance(value, int):
        return None if value.bit_length() <= MAX_INT_BITS else "expected an integer within 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"expected a finite number, got {value}"
    if isinstance(value, str):  # a str subclass
        return _scalar_problem(str(value))
    return f"expected a JSON value, got {kind.__name__}"


def check_json_value(data: Any, prefix: str = "") -> None:
    """Raise InputError (naming the field) unless `data` is plain JSON our models can judge:
    str without lone surrogates, finite floats, ints within 64 bits, bool, None, str-keyed dicts
    and lists nested at most MAX_DEPTH deep. Iterative and linear in the size of `data`; only
    containers go on the stack (scalars are checked where they sit)."""
    if problem := _scalar_problem(data):
        raise _bad((), prefix, problem)
    if not isinstance(data, dict | list | tuple):
        return
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            raise _bad(path, prefix, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key in value:
                if type(key) is not str:
                    raise _bad(path, prefix, f"expected string keys, got {type(key).__name__}")
                if _SURROGATE.search(key):
                    raise _bad((*path, key), prefix, "expected a valid Unicode field name")
            pairs: Any = value.items()
        else:
            pairs = enumerate(value)
        containers = []
        for key, child in pairs:
            if problem := _scalar_problem(child):
                raise _bad((*path, key), prefix, problem)
            if isinstance(child, dict | list | tuple):
                containers.append((child, (*path, key)))
        stack.extend(reversed(containers))


def _validate(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    try:
        # JSON-mode validation: strict, yet ISO date strings are dates.
        return model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        raise format_validation_error(exc, prefix) from None


def job_id_of(job: Any) -> str:
    """The job's id for logs: RunPod's string id, "local" when there is none or it is odd (never
    str() of a container, which may be nested past the recursion limit)."""
    job_id = job.get("id") if isinstance(job, dict) else None
    if isinstance(job_id, int) and not isinstance(job_id, bool) and job_id.bit_length() <= 64:
        return str(job_id)
    return job_id if isinstance(job_id, str) and job_id else "local"


def parse_job(job: Any) -> ParsedJob:
    """Turn a raw RunPod job into a ParsedJob, or raise InputError naming the field."""
    if not isinstance(job, dict):
        raise InputError("job", f"invalid job: expected an object, got {type(job).__name__}")
    raw_id = job.get("id")
    if raw_id is not None and job_id_of(job) == "local" and raw_id not in ("", "local"):
        raise InputError("id", f"invalid job: id: expected a string, got {type(raw_id).__name__}")
    job_id = job_id_of(job)
    raw = job.get("input")
    if not isinstance(raw, dict):
        got = "nothing" if raw is None else type(raw).__name__
        raise InputError("input", f"invalid input: expected an object, got {got}")
    check_json_value(raw)
    envelope: JobEnvelope = _validate(JobEnvelope, raw)
    if envelope.sibling is not None and envelope.mode != "worker":
        raise InputError(
            "sibling",
            f"invalid input: sibling: set only by a coordinator on its mode 'worker' jobs, "
            f"got mode {envelope.mode!r}",
        )
    if envelope.items_from is None and not envelope.items:
        raise InputError("items", "invalid input: items: expected at least one item, or items_from")
    if envelope.items_from is not None and envelope.items:
        raise InputError("items", "invalid input: items: expected items or items_from, not both")
    sibling = envelope.sibling
    if sibling is not None and sibling.protocol not in SUPPORTED_SIBLING_PROTOCOLS:
        raise InputError(
            "sibling.protocol",
            f"invalid input: sibling.protocol: this worker speaks sibling protocols "
            f"{sorted(SUPPORTED_SIBLING_PROTOCOLS)}, got {sibling.protocol} (a rolling "
            f"release: the coordinator retries the chunk on another worker)",
        )
    ref = envelope.sibling.ref if envelope.sibling else None
    if ref is not None and (envelope.items_from is None or ref.stop <= ref.start):
        raise InputError(
            "sibling.ref", "invalid input: sibling.ref: expected rows start < stop of items_from"
        )
    pipeline = get_pipeline(envelope.pipeline)
    # Items by reference are read (and each validated, failing alone) where they run:
    # `podfleet.sources`; until then the job holds none.
    items = [
        _validate(pipeline.item_model, item, f"items.{i}") for i, item in enumerate(envelope.items)
    ]
    ids = tuple(pipeline.item_id(item) for item in items)
    counts = Counter(ids)
    if len(counts) != len(ids):
        dup = next(i for i in ids if counts[i] > 1)
        raise InputError(
            "items", f"invalid input: items: duplicate item id {_shorten(repr(dup), 100)}"
        )
    options = _validate(pipeline.options_model, envelope.options, "options")
    return ParsedJob(job_id, envelope, pipeline, items, options, ids)


def with_sibling_policy(parsed: ParsedJob, load_mode: str) -> ParsedJob:
    """The job as this worker runs it: a sibling returns its records instead of loading them
    exactly when the endpoint's LOAD_MODE (shared with its coordinator) says the coordinator
    loads, whatever its input says; a client cannot make a sibling skip its load."""
    sibling = parsed.envelope.sibling
    if sibling is None:
        return parsed
    wanted = load_mode == "coordinator"
    if sibling.return_records == wanted:
        return parsed
    env = parsed.envelope.model_copy(
        update={"sibling": sibling.model_copy(update={"return_records": wanted})}
    )
    return dataclasses.replace(parsed, envelope=env)
