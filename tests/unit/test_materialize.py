"""Items by reference where they run (`podfleet.materialize`): rows read from a real JSON Lines
file, each validated by the pipeline's item model; a bad row fails alone, named by its position
and field, and `splice` gives back one slot per row in row order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from podfleet.envelope import parse_job
from podfleet.materialize import INPUT_STAGE, materialize, materialize_rows, splice
from podfleet.pipeline.errors import InputError
from podfleet.pipeline.runner import PipelineRun
from podfleet.settings import Settings
from podfleet.worker import materialize as worker_materialize

SECRET = "s3cr3t-row-content"  # a value that must never appear in an error


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def by_ref_job(path: Path, **sibling) -> dict:
    inp: dict = {"mode": "worker", "pipeline": "synthetic", "items_from": {"jsonl": str(path)}}
    if sibling:
        inp["sibling"] = {"parent_id": "p", "chunk": 0, "key": "p:0", "protocol": 2, **sibling}
    return {"id": "job-1", "input": inp}


@pytest.fixture
def settings(clean_env: Path) -> Settings:
    return Settings(items_from_roots=[str(clean_env / "vol")])


def row(i: int, **extra) -> str:
    return json.dumps({"id": f"it-{i}", **extra})


async def test_bad_rows_fail_alone_named_by_position_and_field(settings, clean_env):
    path = write_jsonl(
        clean_env / "vol" / "items.jsonl",
        [
            row(0),
            row(1, duration_s=SECRET),  # wrong type: a string is not a number (strict)
            row(2),
            json.dumps([SECRET]),  # not an object
            row(4, colour=SECRET),  # unknown field
            row(0),  # the same id as row 0: the later one fails
            row(6, duration_s=0.0),
        ],
    )
    job, errors, positions = await materialize(parse_job(by_ref_job(path)), settings)
    assert positions == list(range(7))
    assert [i.id for i in job.items] == ["it-0", "it-2", "it-6"]
    assert job.item_ids == ("it-0", "it-2", "it-6")
    by_id = {e.item_id: e for e in errors}
    assert sorted(by_id) == ["#1", "#3", "#4", "#5"]
    for pos, err in by_id.items():
        assert err.stage == INPUT_STAGE
        assert err.retryable is False
        assert f"items_from row {pos[1:]}" in err.message
        assert SECRET not in err.message
    assert "duration_s" in by_id["#1"].message
    assert "colour" in by_id["#4"].message and "unknown field" in by_id["#4"].message
    assert "object" in by_id["#3"].message
    assert "duplicate item id" in by_id["#5"].message and "row 0" in by_id["#5"].message


async def test_splice_gives_one_slot_per_row_in_row_order(settings, clean_env):
    path = write_jsonl(
        clean_env / "vol" / "items.jsonl", [row(0), "{not json", row(2), row(3, fail="x")]
    )
    rows = await materialize_rows(parse_job(by_ref_job(path)), settings)
    assert rows.kept == [True, False, True, False]
    # what the pipeline returns for the two valid items (one slot each, in order)
    run = PipelineRun([{"id": "it-0"}, {"id": "it-2"}], [], [None, None])
    spliced = splice(run, rows)
    assert spliced.results == [{"id": "it-0"}, None, {"id": "it-2"}, None]
    assert len(spliced.records) == rows.rows == 4
    assert [e.item_id for e in spliced.errors] == ["#1", "#3"]
    assert "fail" in spliced.errors[1].message


async def test_a_sibling_reads_only_its_ref(settings, clean_env):
    lines = [row(i) for i in range(6)]
    path = write_jsonl(clean_env / "vol" / "items.jsonl", lines)
    offset = sum(len(line) + 1 for line in lines[:2])
    length = sum(len(line) + 1 for line in lines[2:5])
    ref = {"start": 2, "stop": 5, "offset": offset, "length": length}
    job, errors, positions = await materialize(
        parse_job(by_ref_job(path, fanout_id="f1", ref=ref)), settings
    )
    assert positions == [2, 3, 4]
    assert [i.id for i in job.items] == ["it-2", "it-3", "it-4"]
    assert errors == []


async def test_inline_items_pass_through_unchanged(settings):
    parsed = parse_job(
        {"input": {"mode": "worker", "pipeline": "synthetic", "items": [{"id": "a"}, {"id": "b"}]}}
    )
    rows = await materialize_rows(parsed, settings)
    assert rows.job is parsed and rows.errors == [] and rows.positions == [0, 1]
    run = PipelineRun([{"id": "a"}, None], [], [None, None])
    assert splice(run, rows) is run
    assert worker_materialize is materialize


async def test_a_path_outside_the_roots_fails_the_job(settings, clean_env):
    path = write_jsonl(clean_env / "elsewhere" / "items.jsonl", [row(0)])
    with pytest.raises(InputError) as exc:
        await materialize(parse_job(by_ref_job(path)), settings)
    assert "items_from" in str(exc.value)
