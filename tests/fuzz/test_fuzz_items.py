"""Fuzzed items of each built-in pipeline. Flashpoints: the item model's validation only (a valid
flashpoint would scrape and embed); synthetic: through the handler, every item accounted for."""

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
from hypothesis import given, settings
from hypothesis import strategies as st
from podfleet.entry import handler
from podfleet.envelope import parse_job
from podfleet.pipeline.errors import InputError

urls = st.one_of(
    weird_text,
    st.builds(
        lambda s, h, p: f"{s}://{h}/{p}",
        st.sampled_from(["http", "https", "file", "chrome", "data", "ftp", ""]),
        weird_text,
        weird_text,
    ),
)
sources = st.one_of(
    st.fixed_dictionaries({}, optional={"url": urls, "html": weird_text}),
    st.fixed_dictionaries({"html": weird_text}, optional={"url": urls, "extra": json_values}),
    json_values,
)
flashpoints = st.fixed_dictionaries(
    {"id": st.one_of(weird_text, weird_text, json_values)},
    optional={
        "title": st.one_of(weird_text, weird_text, json_values),
        "sources": st.one_of(st.lists(sources, min_size=0, max_size=4), json_values),
        "colour": json_values,
    },
)
options = st.fixed_dictionaries(
    {},
    optional={
        "min_words": st.one_of(st.integers(-5, 50), json_values),
        "return_text": st.one_of(st.booleans(), json_values),
        "embed": st.one_of(st.booleans(), json_values),
    },
)


@settings(max_examples=examples(800))
@given(items=st.lists(flashpoints, min_size=1, max_size=4), opts=options)
def test_fuzzed_flashpoints_validate_or_name_the_field(items, opts, loop, quiet_logs) -> None:
    job = {"id": "fp", "input": {"items": items, "options": opts}}
    size = approx_size(job)
    try:
        parsed, elapsed_s = timed(parse_job, job)
    except InputError as exc:
        assert_names_field(str(exc), exc.field, job["input"])
        assert exc.field.startswith(("items", "options")), exc.field
        out, elapsed_s = timed(loop.run_until_complete, handler(job))
        assert out == {"error": str(exc)}
        assert_clean_output(out)
    else:
        for given_item, item in zip(items, parsed.items, strict=True):
            assert item.id == given_item["id"]  # exactly as given, whitespace and all
            assert item.title == given_item["title"].strip()
            for src in item.sources:
                assert src.url is not None or src.html is not None
                assert src.url is None or "://" in src.url
    assert elapsed_s < time_bound_s(size), f"{elapsed_s:.2f} s for ~{size} bytes"


synthetic = st.fixed_dictionaries(
    {"id": weird_text},
    optional={
        "duration_s": st.floats(0, 0.001),
        "busy": st.booleans(),
        "fail": st.sampled_from([None, "item", "retryable"]),
        "crash_attempts": st.just(0),
    },
)


def _unique_ids(items: list[dict[str, Any]]) -> bool:
    ids = [i["id"] for i in items]
    return len(set(ids)) == len(ids)


@settings(max_examples=examples(1000))
@given(items=st.lists(synthetic, min_size=1, max_size=8).filter(_unique_ids))
def test_fuzzed_synthetic_items_are_each_accounted_for(items, loop, quiet_logs) -> None:
    job = {"id": "syn", "input": {"pipeline": "synthetic", "mode": "worker", "items": items}}
    size = approx_size(job)
    out, elapsed_s = timed(loop.run_until_complete, handler(job))
    assert_clean_output(out)
    assert elapsed_s < time_bound_s(size) + sum(i.get("duration_s", 0) for i in items)
    if "error" in out:  # only input errors: an id too long, a lone surrogate, ...
        field = out["error"].split(": ", 1)[0]
        assert_names_field(out["error"], field, job["input"])
        assert field.startswith("items.")
        return
    assert out["items"] == len(items)
    errors = {e["item_id"]: e for e in out["errors"]}
    assert len(errors) == len(out["errors"])
    for item, result in zip(items, out["results"], strict=True):
        if item.get("fail"):
            assert result is None
            assert errors[item["id"]]["retryable"] is (item["fail"] == "retryable")
        else:
            assert result is not None and result["id"] == item["id"]  # exactly as given
            assert item["id"] not in errors
    assert out["ok"] is (not errors)
