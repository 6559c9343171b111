"""The job envelope: strict parsing, errors that name the field."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from podfleet.envelope import parse_job
from podfleet.pipeline.errors import InputError


@pytest.fixture
def job(repo_root) -> dict:
    return json.loads((repo_root / "test_input.json").read_text())


def test_test_input_parses(job: dict) -> None:
    parsed = parse_job(job)
    assert parsed.pipeline.name == "flashpoints"
    assert len(parsed.items) >= 3
    assert all(len(item.sources) >= 2 for item in parsed.items)
    assert parsed.envelope.date == dt.date(2026, 11, 23)


def test_defaults() -> None:
    parsed = parse_job(
        {
            "id": "j",
            "input": {"items": [{"id": "a", "title": "t", "sources": [{"html": "<p>x</p>"}]}]},
        }
    )
    env = parsed.envelope
    assert env.mode == "auto" and env.pipeline == "flashpoints" and env.trigger == "manual"
    assert env.cleanup is False and env.workers is None
    assert env.date == dt.datetime.now(dt.UTC).date()


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda i: i.update(workers="3"), "workers", "valid integer"),
        (lambda i: i.update(workers=0), "workers", "greater than or equal to 1"),
        (lambda i: i.update(cleanup="yes"), "cleanup", "valid boolean"),
        (lambda i: i.update(colour="red"), "colour", "unknown field"),
        (lambda i: i.update(items=[]), "items", "at least one item"),
        (lambda i: i.update(date="2026-13-45"), "date", "YYYY-MM-DD"),
        (lambda i: i.update(trigger="cron"), "trigger", "'manual', 'schedule' or 'api'"),
        (lambda i: i.update(pipeline="nope"), "pipeline", "'nope'; known: flashpoints"),
        (
            lambda i: i["items"][1]["sources"][0].update(url="not-a-url"),
            "items.1.sources.0",
            "absolute",
        ),
        (
            lambda i: i["items"][2]["sources"].__setitem__(1, {}),
            "items.2.sources.1",
            "needs `url` or `html`",
        ),
        (lambda i: i["items"][0].pop("title"), "items.0.title", "field required"),
        (lambda i: i["items"][0].update(id=""), "items.0.id", "at least 1 character"),
        (lambda i: i.update(options={"min_words": "many"}), "options.min_words", "integer"),
        (lambda i: i["items"][1].update(id=i["items"][0]["id"]), "items", "duplicate item id"),
    ],
)
def test_bad_input_names_the_field(job: dict, mutate, field: str, expected: str) -> None:
    bad = copy.deepcopy(job)
    mutate(bad["input"])
    with pytest.raises(InputError) as info:
        parse_job(bad)
    assert info.value.field == field, str(info.value)
    assert field in str(info.value)
    assert expected in str(info.value)


def test_input_must_be_an_object() -> None:
    with pytest.raises(InputError, match="input: invalid input: expected an object, got list"):
        parse_job({"id": "x", "input": [1, 2]})
    with pytest.raises(InputError, match="got nothing"):
        parse_job({"id": "x"})


def test_sibling_envelope_is_typed() -> None:
    parsed = parse_job(
        {
            "id": "s",
            "input": {
                "mode": "worker",
                "pipeline": "synthetic",
                "items": [{"id": "a"}],
                "sibling": {"parent_id": "p", "chunk": 3, "attempt": 2, "key": "p:3"},
            },
        }
    )
    assert parsed.attempt == 2
    assert parsed.envelope.sibling.chunk == 3
