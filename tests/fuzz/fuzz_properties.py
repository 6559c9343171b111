"""What every fuzzed call must satisfy, and the strategies the fuzz modules share."""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from hypothesis import strategies as st
from podfleet.envelope import JobEnvelope

__all__ = [
    "ENVELOPE_FIELDS",
    "approx_size",
    "assert_clean_output",
    "assert_names_field",
    "examples",
    "json_values",
    "time_bound_s",
    "timed",
    "weird_text",
]

ENVELOPE_FIELDS = set(JobEnvelope.model_fields)
SCALE = float(os.environ.get("PODFLEET_FUZZ_SCALE", "1"))  # multiplies every example count
BASE_S = 2.0  # per call, whatever its size (generous: two shared cores, GC, first imports)
PER_BYTE_S = 20e-6  # 50 kB/s: far slower than linear code, far faster than the old quadratic
_ODD = [
    "\ud800",
    "\udfff",
    "\x00",
    "\u00a0",
    " ",
    "\t",
    "\u2028",
    "\u200b",
    "é",
    "𝕏",
    "'",
    '"',
    ":",
    ".",
    "://",
    "@",
    "\\",
    "{}",
    "a://b:",
    "\ufeff",
]

weird_text = st.one_of(
    st.text(max_size=20),
    st.lists(st.sampled_from(_ODD), max_size=12).map("".join),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["a", "a://b:", " ", "é"]), st.integers(1_000, 60_000)
    ),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 3600, 3601, 1e308, -0.0, 2**63, 10**30]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, weird_text)


def examples(n: int) -> int:
    return max(10, int(n * SCALE))


def _deep(levels: int, kind: str) -> Any:
    value: Any = {}
    for _ in range(levels):
        value = {"x": value} if kind == "dict" else [value]
    return value


json_values = st.one_of(
    st.recursive(
        scalars,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(weird_text, c, max_size=3),
        max_leaves=8,
    ),
    st.builds(_deep, st.integers(20, 3_000), st.sampled_from(["dict", "list"])),
)


def approx_size(value: Any) -> int:
    """About how many bytes `value` is as JSON (iterative: it may be nested 3,000 deep)."""
    total, stack = 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v) + 2
        elif isinstance(v, dict):
            total += 2 + len(v)
            for k, x in v.items():
                total += len(str(k)) + 3
                stack.append(x)
        elif isinstance(v, list | tuple):
            total += 2 + len(v)
            stack.extend(v)
        else:
            total += 8
    return total


def time_bound_s(size: int) -> float:
    return BASE_S + PER_BYTE_S * size


def timed(fn, *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def assert_clean_output(out: Any) -> str:
    """A JSON object (no NaN, valid UTF-8) with no traceback; returns its JSON text."""
    assert isinstance(out, dict), type(out)
    text = json.dumps(out, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # raises on a lone surrogate
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    assert "internal error" not in str(out.get("error", "")), out["error"]
    return text


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _first_segment(field: str) -> str:
    quoted = _QUOTED.match(field)
    if quoted:
        return quoted.group()
    return field.split(".", 1)[0]


def assert_names_field(error: str, field: str, given: dict) -> None:
    """`error` (the output's) starts with `field`, a dotted path whose first segment is a field
    of the envelope, a key the input holds, or `input`/`job` itself; and says more than the name."""
    assert field, f"no field named: {error[:300]}"
    assert error.startswith(f"{field}: "), (field, error[:300])
    first = _first_segment(field)
    keys = {str(k) for k in given} | {ascii(str(k)) for k in given}
    known = ENVELOPE_FIELDS | keys | {"input", "job", "id"}
    cut = first.endswith("...'") and any(k.startswith(first[:-4]) for k in keys)  # a long key
    assert first in known or cut, (first, error[:300])
    assert len(error) > len(field) + 12, error
    assert len(error) < 2_000, f"{len(error)} chars"
