"""Edge inputs of the job envelope: every error names its field and what was expected; ids come
back exactly as given; only a coordinator decides whether a sibling loads."""

from __future__ import annotations

import json

import pytest
from podfleet.entry import handler
from podfleet.envelope import MAX_DEPTH, check_json_value, parse_job, with_sibling_policy
from podfleet.pipeline.errors import InputError


def synthetic(*items: dict, **extra) -> dict:
    return {"id": "j", "input": {"pipeline": "synthetic", "items": list(items), **extra}}


def flashpoint(fp_id: str) -> dict:
    return {"id": fp_id, "title": "t", "sources": [{"html": "<p>x</p>"}]}


def deep(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    ("job", "field", "expected"),
    [
        (synthetic({"id": "\ud800"}), "items.0.id", "lone surrogate U+D800"),
        (synthetic({"id": "a", "duration_s": float("nan")}), "items.0.duration_s", "finite"),
        (synthetic({"id": "a", "duration_s": float("inf")}), "items.0.duration_s", "finite"),
        (synthetic({"id": "a"}, options=deep(200)), "options" + ".x" * (MAX_DEPTH - 1), "deeper"),
        (synthetic({"id": "a", "crash_attempts": 10**400}), "items.0.crash_attempts", "64 bits"),
        (synthetic({"id": "a"}, date=b"2026-01-01"), "date", "JSON value, got bytes"),
        (synthetic({"id": "a"}, options={1: 2}), "options", "string keys"),
        (synthetic({"id": "a", "\udfff": 1}), "items.0.'\\udfff'", "field name"),
        (synthetic({"id": "a"}, pipeline="p" * 100_000), "pipeline", "at most 200"),
        (synthetic({"id": "x" * 201}), "items.0.id", "at most 200"),
        (
            synthetic({"id": "a"}, sibling={"parent_id": "p", "chunk": 0, "key": "k"}),
            "sibling",
            "mode 'worker'",
        ),
    ],
)
def test_edge_input_errors_name_the_field(job: dict, field: str, expected: str) -> None:
    with pytest.raises(InputError) as info:
        parse_job(job)
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(f"{field}: invalid input: {field}: ")
    assert expected in str(info.value)
    assert len(str(info.value)) < 1000  # quoted input is bounded
    json.dumps(str(info.value), ensure_ascii=False).encode()  # the message itself is valid text


def test_an_unknown_long_field_is_quoted_short() -> None:
    with pytest.raises(InputError) as info:
        parse_job(synthetic({"id": "a", "k" * 50_000: 1}))
    assert info.value.field.startswith("items.0.'kkk") and len(str(info.value)) < 400
    assert "unknown field" in str(info.value)


def test_deep_nesting_within_the_limit_reaches_the_models() -> None:
    check_json_value(deep(MAX_DEPTH - 1))
    with pytest.raises(InputError, match=r"options.*unknown field"):
        parse_job(synthetic({"id": "a"}, options=deep(10)))


@pytest.mark.parametrize("fp_id", ["a\u00a0", " a", "a ", "\ta\n", " "])
def test_flashpoint_ids_come_back_exactly_as_given(fp_id: str) -> None:
    job = {"id": "j", "input": {"items": [flashpoint(fp_id), flashpoint("b")]}}
    parsed = parse_job(job)
    assert parsed.items[0].id == fp_id


def test_ids_differing_in_whitespace_are_different_items() -> None:
    job = {"id": "j", "input": {"items": [flashpoint("a"), flashpoint("a ")]}}
    assert [i.id for i in parse_job(job).items] == ["a", "a "]
    titled = {"id": "j", "input": {"items": [{**flashpoint("a"), "title": "  spaced  "}]}}
    assert parse_job(titled).items[0].title == "spaced"  # text fields are still stripped


async def test_synthetic_ids_round_trip_through_the_handler(clean_env) -> None:
    ids = ["a", "a ", "a\u00a0", "\u2003a"]
    out = await handler(synthetic(*({"id": i} for i in ids), mode="worker"))
    assert out["ok"] is True, out
    assert [r["id"] for r in out["results"]] == ids


def test_duplicate_ids_are_found_in_linear_time() -> None:
    items = [{"id": f"i{n}"} for n in range(20_000)] + [{"id": "i7"}]
    with pytest.raises(InputError, match="duplicate item id 'i7'"):
        parse_job(synthetic(*items))


SIBLING = {"parent_id": "p", "chunk": 0, "key": "p:0", "return_records": True}


async def test_a_client_cannot_make_a_sibling_skip_its_load(clean_env) -> None:
    """sibling.return_records from the input is not honoured: LOAD_MODE (the endpoint's) decides."""
    out = await handler(synthetic({"id": "a"}, mode="worker", sibling=SIBLING))
    assert out["ok"] is True, out
    assert "records" not in out  # it ran as a sibling that loads (LOAD_MODE=sibling)


async def test_a_sibling_returns_records_when_the_coordinator_loads(clean_env, monkeypatch):
    monkeypatch.setenv("LOAD_MODE", "coordinator")
    sibling = {**SIBLING, "return_records": False}
    out = await handler(synthetic({"id": "a"}, mode="worker", sibling=sibling))
    assert out["ok"] is True and "records" in out, out


def test_sibling_policy_leaves_other_jobs_alone() -> None:
    plain = parse_job(synthetic({"id": "a"}))
    assert with_sibling_policy(plain, "coordinator") is plain
    sib = parse_job(synthetic({"id": "a"}, mode="worker", sibling=SIBLING))
    assert with_sibling_policy(sib, "sibling").envelope.sibling.return_records is False
    assert with_sibling_policy(sib, "coordinator").envelope.sibling.return_records is True
