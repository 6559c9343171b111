"""Fuzzed job envelopes through the real handler: no exception escapes, no traceback in the
output, every input error names its field, every call returns within a size-proportional bound."""

from __future__ import annotations

from typing import Any

from fuzz_properties import (
    approx_size,
    assert_clean_output,
    assert_names_field,
    examples,
    json_values,
    time_bound_s,
    timed,
    weird_text,
)
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from podfleet.entry import handler
from podfleet.envelope import parse_job
from podfleet.pipeline.errors import InputError


def or_junk(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(strategy, strategy, json_values)


# Synthetic items that cannot hang or kill the test process when valid: no long sleeps, no
# crash_attempts > 0 (the guard below also drops any that slip through).
safe_duration = st.one_of(
    st.floats(0, 0.002), st.sampled_from([-1, 3601, "0.1", float("nan"), float("inf"), None])
)
synthetic_items = st.fixed_dictionaries(
    {"id": or_junk(weird_text)},
    optional={
        "duration_s": safe_duration,
        "busy": or_junk(st.booleans()),
        "fail": or_junk(st.sampled_from(["item", "retryable", None, "job"])),
        "crash_attempts": st.sampled_from([0, -1, "1", 1.5, None, True]),
    },
)
sources = st.fixed_dictionaries(
    {}, optional={"url": or_junk(weird_text), "html": or_junk(weird_text), "x": json_values}
)
flashpoint_items = st.fixed_dictionaries(
    {"id": or_junk(weird_text)},
    optional={"title": or_junk(weird_text), "sources": or_junk(st.lists(sources, max_size=3))},
)
FIELDS = {
    "mode": or_junk(st.sampled_from(["auto", "coordinator", "worker", "fan"])),
    "pipeline": or_junk(st.sampled_from(["synthetic", "flashpoints", "nope", ""])),
    "items": or_junk(st.lists(st.one_of(synthetic_items, flashpoint_items), max_size=4)),
    "date": or_junk(st.sampled_from(["2026-01-01", "2026-13-45", "", "2026-01-01T00:00:00"])),
    "trigger": or_junk(st.sampled_from(["manual", "schedule", "api", "cron"])),
    "cleanup": or_junk(st.booleans()),
    "workers": or_junk(st.integers(-2, 2000)),
    "options": or_junk(
        st.dictionaries(
            st.sampled_from(["fail_job_attempts", "min_words", "embed", "return_text"]),
            st.sampled_from([0, -1, "1", None, True]),
            max_size=2,
        )
    ),
    "sibling": or_junk(
        st.fixed_dictionaries(
            {"parent_id": weird_text, "chunk": st.integers(-1, 3), "key": weird_text},
            optional={"attempt": st.integers(-1, 3), "return_records": json_values},
        )
    ),
}
inputs = st.builds(
    lambda known, extra: {**known, **extra},
    st.fixed_dictionaries({}, optional=FIELDS),
    st.one_of(st.just({}), st.just({}), st.dictionaries(weird_text, json_values, max_size=2)),
)
jobs = st.one_of(
    st.fixed_dictionaries({"input": inputs}, optional={"id": or_junk(weird_text)}),
    st.fixed_dictionaries({}, optional={"id": json_values, "input": json_values}),
    json_values,
)


def runnable(parsed: Any) -> bool:
    """Valid jobs the fuzz may run: synthetic, quick, never killing the process."""
    if parsed.pipeline.name != "synthetic" or parsed.options.fail_job_attempts > 0:
        return False
    return all(i.crash_attempts == 0 and i.duration_s <= 0.01 for i in parsed.items)


@settings(max_examples=examples(1200))
@given(job=jobs)
def test_fuzzed_envelopes(job: Any, loop, quiet_logs) -> None:
    try:
        parsed = parse_job(job)
        expected: InputError | None = None
    except InputError as exc:
        expected = exc
    else:
        assume(runnable(parsed))
    out, elapsed_s = timed(loop.run_until_complete, handler(job))
    assert_clean_output(out)
    size = approx_size(job)
    assert elapsed_s < time_bound_s(size), f"{elapsed_s:.2f} s for ~{size} bytes"
    given_input = job.get("input") if isinstance(job, dict) else None
    given_input = given_input if isinstance(given_input, dict) else {}
    if expected is not None:
        assert out == {"error": str(expected)}
        assert_names_field(out["error"], expected.field, given_input)
    elif "error" in out:  # valid input that a mode forbids (coordinator without endpoint)
        assert_names_field(out["error"], out["error"].split(": ", 1)[0], given_input)
    else:
        ids = [parsed.pipeline.item_id(i) for i in parsed.items]
        assert [r["id"] if r else None for r in out["results"]] == [
            i if r else None for i, r in zip(ids, out["results"], strict=True)
        ]
        failed = {e["item_id"] for e in out["errors"]}
        pairs = zip(ids, out["results"], strict=True)
        assert all((r is not None) != (i in failed) for i, r in pairs)
