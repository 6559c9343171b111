"""Deadlines as instants that travel to siblings, and the one typed job output."""

from __future__ import annotations

import time

import pytest
from podfleet.coordinator.chunks import chunk_job, sibling_input
from podfleet.coordinator.merge import MalformedOutput, parse_sibling_output
from podfleet.entry import handler
from podfleet.envelope import parse_job
from podfleet.output import JobOutput
from podfleet.pipeline.deadline import Deadline


def synthetic(n: int, duration_s: float = 0.0, **extra) -> dict:
    items = [{"id": f"it-{i:03d}", "duration_s": duration_s} for i in range(n)]
    return {"pipeline": "synthetic", "items": items, **extra}


SIBLING = {"parent_id": "p", "chunk": 0, "key": "p:0"}


def test_a_deadline_crosses_machines_as_epoch_seconds() -> None:
    deadline = Deadline.after(30)
    back = Deadline.at_epoch(deadline.epoch_s())
    assert abs(back.monotonic_s - deadline.monotonic_s) < 0.01
    assert 29 < deadline.remaining_s() <= 30
    assert deadline.remaining_s(5) == 5  # a stage budget shorter than what is left
    assert Deadline.after(-1).passed and Deadline.after(-1).remaining_s(5) == 0
    assert deadline.earliest(Deadline.after(10)).remaining_s() <= 10
    assert deadline.earliest(None) is deadline


def test_siblings_are_told_the_parent_deadline() -> None:
    parsed = parse_job({"id": "p", "input": synthetic(4, workers=2)})
    chunk = chunk_job(parsed, [2, 2])[0]
    deadline = Deadline.after(100)
    data = sibling_input(parsed, chunk, return_records=False, cleanup=False, deadline=deadline)
    assert data["sibling"]["deadline_at"] == pytest.approx(time.time() + 100, abs=1)
    sib = parse_job({"id": "s", "input": data})
    assert sib.envelope.sibling.deadline_at == data["sibling"]["deadline_at"]


async def test_a_sibling_never_runs_past_its_parent_deadline(clean_env) -> None:
    past = time.time() - 1
    job = synthetic(2, 0.5, mode="worker", sibling={**SIBLING, "deadline_at": past})
    t0 = time.monotonic()
    out = await handler({"id": "s1", "input": job})
    assert time.monotonic() - t0 < 0.5  # its items were not run
    assert out["succeeded"] == 0 and not out["ok"]
    assert {e["message"] for e in out["errors"]} == {"job deadline reached"}
    assert all(e["retryable"] for e in out["errors"])


async def test_an_older_coordinators_sibling_without_a_deadline_still_runs(clean_env) -> None:
    out = await handler({"id": "s2", "input": synthetic(2, mode="worker", sibling=SIBLING)})
    assert out["ok"] is True and out["succeeded"] == 2, out


async def test_the_output_a_worker_writes_is_what_a_coordinator_parses(clean_env) -> None:
    parsed = parse_job({"id": "p", "input": synthetic(3, workers=2)})
    chunk = chunk_job(parsed, [3])[0]
    out = await handler({"id": "w", "input": synthetic(3, mode="worker")})
    assert list(out)[:6] == ["ok", "date", "trigger", "cleanup", "workers", "duration_sec"]
    assert "records" not in out and "missing" not in out and "fanout" not in out
    parsed_back = parse_sibling_output(out, chunk, want_records=False)
    assert parsed_back.to_output() == out  # a round trip changes nothing


@pytest.mark.parametrize(
    ("output", "says"),
    [
        ([1, 2], "sibling output is no job output: output"),
        ({"errors": []}, "results: Field required"),
        ({"results": [None] * 3, "errors": [{"stage": "x"}]}, "errors.0.item_id"),
        ({"results": [None] * 2}, "2 results for 3 items"),
        ({"results": [None] * 3, "timings_s": {"scrape": "slow"}}, "timings_s.scrape"),
    ],
)
def test_a_malformed_sibling_output_is_a_failed_attempt_naming_the_field(output, says) -> None:
    parsed = parse_job({"id": "p", "input": synthetic(3, workers=2)})
    chunk = chunk_job(parsed, [3])[0]
    with pytest.raises(MalformedOutput, match=says):
        parse_sibling_output(output, chunk, want_records=False)
    with pytest.raises(MalformedOutput, match="returned no records"):
        parse_sibling_output({"results": [None] * 3}, chunk, want_records=True)
    assert JobOutput(results=[None]).to_output()["ok"] is False
