"""The sibling side of the chunk ledger, in-process (`entry.handler`) over a real ledger: a fresh
SQLite file, then a real PostgreSQL schema (`database_url`). The synthetic pipeline does the
work; the ledger is the real `podfleet.pipeline.store.ledger.Ledger`, set up as a coordinator
would (open the fan-out, mark the attempt) before the siblings run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from podfleet.entry import handler
from podfleet.pipeline.store.ledger import CHUNKS_TABLE, ChunkRow, Ledger
from podfleet.settings import Settings
from sqlalchemy.engine import make_url

FID = "run:test-fanout"
NO_WORK = {"fail_job_attempts": 99}  # the synthetic work stage fails the whole job if it runs


def chunk_rows(positions: list[list[int]] | None = None, refs: list[dict] | None = None):
    def plan() -> list[ChunkRow]:
        n = len(positions if positions is not None else refs or [])
        return [
            ChunkRow(
                chunk=i,
                positions=positions[i] if positions is not None else None,
                ref=refs[i] if refs is not None else None,
                state="pending",
                attempt=0,
                sibling_ids=[],
                claimed_by=None,
                duplicates=0,
            )
            for i in range(n)
        ]

    return plan


def open_fanout(url: str, items: int, **plan_kw) -> Ledger:
    ledger = Ledger(url)
    ledger.open_fanout(
        FID, job_id="parent-1", fingerprint="fp-1", items=items, plan=chunk_rows(**plan_kw)
    )
    return ledger


def sibling_job(
    job_id: str, chunk: int, attempt: int, *, items=None, items_from=None, options=None, **extra
):
    sibling = {
        "parent_id": "parent-1",
        "chunk": chunk,
        "attempt": attempt,
        "key": f"parent-1:{chunk}",
        "protocol": 2,
        "fanout_id": FID,
        **extra,
    }
    inp: dict[str, Any] = {"mode": "worker", "pipeline": "synthetic", "sibling": sibling}
    if options:
        inp["options"] = options
    if items_from is not None:
        inp["items_from"] = items_from
    else:
        inp["items"] = items
    return {"id": job_id, "input": inp}


@pytest.fixture
def settings(database_url: str, clean_env: Path) -> Settings:
    return Settings(database_url=database_url, items_from_roots=[str(clean_env / "vol")])


async def test_a_duplicate_sibling_does_no_work_and_a_done_chunk_is_not_run_again(
    settings, database_url
):
    ledger = open_fanout(database_url, 2, positions=[[0, 1]])
    ledger.mark_attempts(FID, [(0, 1, "submitting")])
    ledger.record_siblings(FID, [(0, 1, "sib-a")])
    items = [{"id": "a", "duration_s": 1.5}, {"id": "b"}]
    # a /run retried after a 5xx: two jobs for the same attempt, running at once
    outs = await asyncio.gather(
        handler(sibling_job("sib-a", 0, 1, items=items), settings),
        handler(sibling_job("sib-b", 0, 1, items=items), settings),
    )
    skipped = [o for o in outs if o.get("skipped")]
    worked = [o for o in outs if not o.get("skipped")]
    assert len(skipped) == 1 and len(worked) == 1, outs
    dup, done = skipped[0], worked[0]
    holder = "sib-a" if outs[0] is done else "sib-b"
    assert dup["skipped"] == "duplicate" and dup["duplicate_of"] == holder
    assert dup["ok"] is True and dup["results"] == [] and dup["items"] == 0
    assert done["ok"] is True and [r["id"] for r in done["results"]] == ["a", "b"]
    # the granted sibling wrote its whole outcome, results included, before it returned
    stored = ledger.outcomes(FID, [0])[0]
    assert stored["results"] == done["results"] and stored["succeeded"] == 2
    assert ledger.summary(FID)["duplicates"] == 1

    # the chunk is done: a late third job of that attempt does nothing either (had it run its
    # work stage, `fail_job_attempts` would have failed the job)
    late = await handler(sibling_job("sib-c", 0, 1, items=items, options=NO_WORK), settings)
    assert late["skipped"] == "done" and late["results"] == [] and late["items"] == 0
    assert "error" not in late and ledger.summary(FID)["duplicates"] == 2


async def test_an_older_attempt_is_superseded_the_current_one_runs(settings, database_url):
    ledger = open_fanout(database_url, 2, positions=[[0], [1]])
    ledger.mark_attempts(FID, [(1, 1, "submitting")])
    ledger.mark_attempts(FID, [(1, 2, "submitting")])  # the coordinator retried chunk 1
    items = [{"id": "b"}]
    old = await handler(sibling_job("sib-old", 1, 1, items=items, options=NO_WORK), settings)
    assert old["skipped"] == "superseded" and old["results"] == [] and "error" not in old
    new = await handler(sibling_job("sib-new", 1, 2, items=items), settings)
    assert "skipped" not in new and new["results"] == [{"id": "b", "duration_s": 0.0}]
    assert ledger.outcomes(FID, [1])[1]["results"] == new["results"]
    assert ledger.outcomes(FID, [0]) == {}


def write_rows(path: Path, lines: list[str]) -> list[int]:
    """Write JSON Lines; the byte offset of each line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line.encode()) + 1
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return [*offsets, pos]


async def test_items_by_reference_a_bad_row_fails_alone_results_in_the_ledger(
    settings, database_url, clean_env
):
    path = clean_env / "vol" / "items.jsonl"
    lines = [json.dumps({"id": f"it-{i}"}) for i in range(6)]
    lines[3] = json.dumps({"id": "it-3", "duration_s": "not-a-number"})
    offsets = write_rows(path, lines)
    refs = [
        {"start": 0, "stop": 2, "offset": 0, "length": offsets[2]},
        {"start": 2, "stop": 6, "offset": offsets[2], "length": offsets[6] - offsets[2]},
    ]
    ledger = open_fanout(database_url, 6, refs=refs)
    ledger.mark_attempts(FID, [(1, 1, "submitting")])
    job = sibling_job(
        "sib-1", 1, 1, items_from={"jsonl": str(path)}, ref=refs[1], results_inline=False
    )
    out = await handler(job, settings)
    assert out["ok"] is False and out["items"] == 4 and out["succeeded"] == 3
    assert out["results"] == []
    assert out["results_at"] == {
        "ledger": CHUNKS_TABLE,
        "fanout_id": FID,
        "database": make_url(database_url).render_as_string(hide_password=True),
    }
    password = make_url(database_url).password
    if password:
        assert password not in json.dumps(out)
    [err] = out["errors"]
    assert err["item_id"] == "#3" and err["stage"] == "input" and not err["retryable"]
    assert "items_from row 3" in err["message"] and "duration_s" in err["message"]
    assert "not-a-number" not in err["message"]
    # the ledger has every slot of the chunk, in row order, the bad row's empty
    stored = ledger.outcomes(FID, [1])[1]
    assert [r and r["id"] for r in stored["results"]] == ["it-2", None, "it-4", "it-5"]
    assert stored["errors"] == out["errors"]


async def test_worker_mode_items_from_reads_the_whole_file_inline(settings, clean_env):
    path = clean_env / "vol" / "items.jsonl"
    lines = [json.dumps({"id": f"it-{i}"}) for i in range(5)]
    lines[1] = "[1, 2]"
    write_rows(path, lines)
    out = await handler(
        {"id": "local", "input": {"pipeline": "synthetic", "items_from": {"jsonl": str(path)}}},
        settings,
    )
    assert [r and r["id"] for r in out["results"]] == ["it-0", None, "it-2", "it-3", "it-4"]
    assert [e["item_id"] for e in out["errors"]] == ["#1"]
    assert out["items"] == 5 and out["succeeded"] == 4 and "results_at" not in out


async def test_fanout_ledger_off_the_sibling_runs_unclaimed(settings, database_url):
    ledger = open_fanout(database_url, 1, positions=[[0]])
    ledger.mark_attempts(FID, [(0, 1, "submitting")])
    ledger.record_outcomes(FID, [(0, 1, "done", {"results": [], "ok": True})])
    off = settings.model_copy(update={"fanout_ledger": False})
    out = await handler(sibling_job("sib-x", 0, 1, items=[{"id": "a"}]), off)
    assert "skipped" not in out and [r["id"] for r in out["results"]] == ["a"]
    on = await handler(sibling_job("sib-y", 0, 1, items=[{"id": "a"}]), settings)
    assert on["skipped"] == "done"


async def test_an_unreachable_ledger_runs_anyway_and_keeps_results_inline(clean_env):
    dead = Settings(database_url="postgresql://u:pw-secret@127.0.0.1:1/nodb", db_retry_s=0.1)
    job = sibling_job("sib-z", 0, 1, items=[{"id": "a"}, {"id": "b"}], results_inline=False)
    out = await handler(job, dead)
    assert out["ok"] is True and [r["id"] for r in out["results"]] == ["a", "b"]
    assert "pw-secret" not in json.dumps(out)


async def test_a_protocol_this_worker_does_not_speak_is_a_clear_error(clean_env):
    job = sibling_job("sib-p", 0, 1, items=[{"id": "a"}])
    job["input"]["sibling"]["protocol"] = 3
    out = await handler(job, Settings())
    assert set(out) == {"error"}
    assert "sibling.protocol" in out["error"] and "3" in out["error"]


async def test_load_mode_coordinator_refuses_items_from_siblings(clean_env):
    path = clean_env / "vol" / "items.jsonl"
    write_rows(path, [json.dumps({"id": "a"})])
    s = Settings(load_mode="coordinator", items_from_roots=[str(clean_env / "vol")])
    ref = {"start": 0, "stop": 1, "offset": 0, "length": path.stat().st_size}
    job = sibling_job("sib-l", 0, 1, items_from={"jsonl": str(path)}, ref=ref)
    out = await handler(job, s)  # refused before any ledger or file is touched
    assert set(out) == {"error"}
    assert out["error"].startswith("items_from") and "LOAD_MODE=sibling" in out["error"]
    # a worker-mode job of its own loads its rows itself: fine
    alone = {"id": "local", "input": {"mode": "worker", "pipeline": "synthetic"}}
    alone["input"]["items_from"] = {"jsonl": str(path)}
    assert (await handler(alone, s))["results"] == [{"id": "a", "duration_s": 0.0}]


def test_handler_py_test_input_reads_a_local_json_lines_file(repo_root, tmp_path):
    """`python handler.py --test_input` (the real SDK's local mode) over a JSON Lines file."""
    import os
    import subprocess
    import sys

    path = tmp_path / "vol" / "items.jsonl"
    write_rows(
        path, [json.dumps({"id": "it-0"}), json.dumps({"id": 1}), json.dumps({"id": "it-2"})]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env |= {"DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "ITEMS_FROM_ROOTS": str(path.parent)}
    job = {"input": {"pipeline": "synthetic", "items_from": {"jsonl": str(path)}}}
    proc = subprocess.run(
        [sys.executable, "handler.py", "--test_input", json.dumps(job)],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-3000:]
    assert "read 3 rows of items_from: 2 items, 1 rows failed validation" in text
    assert "items_from row 1 (line 2): id:" in text and "it-2" in text


async def test_items_from_a_table_a_bad_row_fails_alone(settings, database_url):
    from podfleet.pipeline.store.db import get_engine
    from sqlalchemy import Column, Integer, MetaData, Table, Text

    engine = get_engine(database_url)  # the job's database, as the worker will open it
    meta = MetaData()
    table = Table("todo", meta, Column("id", Integer), Column("item", Text))
    meta.create_all(engine)
    values = ['{"id": "k-10"}', '{"id": "k-20", "fail": "never"}', '{"id": "k-30"}']
    rows = [{"id": k, "item": v} for k, v in zip((10, 20, 30), values, strict=True)]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    ref = {"start": 0, "stop": 3, "key_from": 10, "key_to": 30}
    ledger = open_fanout(database_url, 3, refs=[ref])
    ledger.mark_attempts(FID, [(0, 1, "submitting")])
    out = await handler(sibling_job("sib-t", 0, 1, items_from={"table": "todo"}, ref=ref), settings)
    assert [r and r["id"] for r in out["results"]] == ["k-10", None, "k-30"]
    [err] = out["errors"]
    assert err["item_id"] == "#1" and err["message"].startswith("items_from row 1: fail:")
    assert "never" not in err["message"]
    assert ledger.outcomes(FID, [0])[0]["results"] == out["results"]
