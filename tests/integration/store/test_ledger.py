"""The chunk ledger (pipeline/store/ledger.py) on a real SQLite file and real PostgreSQL: open,
resume and conflict; claims raced by real processes; done / superseded / duplicate refusals;
first done wins; batched writes of 1,100 chunks; results in input order; the 0003 -> 0004
upgrade of a populated database; `podfleet db results|errors` (JSON Lines, no password)."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic import command
from podfleet.pipeline.store.db import engine_for
from podfleet.pipeline.store.ledger import ChunkRow, Ledger, LedgerConflict
from podfleet.pipeline.store.ledger_read import STREAM_BATCH
from podfleet.pipeline.store.migrate import alembic_config, current_revision, head_revision
from podfleet.pipeline.store.migrate import upgrade as upgrade_db
from podfleet.pipeline.store.schema import runs
from sqlalchemy import event, inspect, make_url, select

FP = "f" * 64
ITEMS = 100_000
CHUNKS = 1_100


def outcome(positions: range | list[int], *, tag: str = "r", errors: int = 0) -> dict[str, Any]:
    """A chunk outcome as a sibling writes it (JobOutput.to_output() shape, results inline)."""
    results = [{"pos": p, "tag": tag} for p in positions]
    errs = [
        {"item_id": f"#{p}", "stage": "extract", "message": "bad", "retryable": False}
        for p in list(positions)[:errors]
    ]
    return {"ok": not errs, "items": len(results), "results": results, "errors": errs}


def ref_plan(items: int = ITEMS, chunks: int = CHUNKS) -> list[ChunkRow]:
    """Contiguous ranges covering 0..items-1, as a coordinator cuts items_from."""
    cut = [i * items // chunks for i in range(chunks + 1)]
    return [ChunkRow(chunk=i, ref={"start": cut[i], "stop": cut[i + 1]}) for i in range(chunks)]


def test_open_resume_and_conflict(database_url) -> None:
    ledger = Ledger(database_url)
    plan = [ChunkRow(chunk=0, positions=[0, 1]), ChunkRow(chunk=1, positions=[2])]
    rows, resumed = ledger.open_fanout("run:k", job_id="job-1", fingerprint=FP, items=3,
                                       plan=lambda: plan)  # fmt: skip
    assert (rows, resumed) == (plan, False)
    ledger.mark_attempts("run:k", [(0, 1, "submitting")])
    ledger.record_siblings("run:k", [(0, 1, "sib-a")])
    ledger.record_outcomes("run:k", [(0, 1, "done", outcome([0, 1]))])

    def never() -> list[ChunkRow]:
        raise AssertionError("a known fan-out's plan is read back, not made again")

    again, resumed = ledger.open_fanout(
        "run:k", job_id="job-2", fingerprint=FP, items=3, plan=never
    )
    assert resumed is True
    assert [(r.chunk, r.positions, r.state, r.attempt, r.sibling_ids) for r in again] == [
        (0, [0, 1], "done", 1, ["sib-a"]),
        (1, [2], "pending", 0, []),
    ]
    assert ledger.fanout("run:k")["job_id"] == "job-2"
    with pytest.raises(LedgerConflict, match="another input"):
        ledger.open_fanout("run:k", job_id="job-3", fingerprint="0" * 64, items=3, plan=never)
    assert ledger.fanout("run:k")["job_id"] == "job-2"  # the refused open changed nothing
    assert ledger.outcomes("run:k", [0, 1]) == {0: outcome([0, 1])}
    ledger.close_fanout("run:k", "closed", {"ok": True})
    assert ledger.fanout("run:k")["state"] == "closed"
    assert ledger.fanout("nope") is None


def test_claim_reasons_and_first_done_wins(database_url) -> None:
    ledger = Ledger(database_url)
    ledger.open_fanout("f", job_id="c", fingerprint=FP, items=4, plan=lambda: [
        ChunkRow(chunk=0, positions=[0, 1]), ChunkRow(chunk=1, positions=[2, 3])])  # fmt: skip
    ledger.mark_attempts("f", [(0, 1, "submitting"), (1, 1, "submitting")])
    assert ledger.claim("f", 0, 1, "a").granted
    assert ledger.claim("f", 0, 1, "a").granted  # the holder asking again (its job re-delivered)
    dup = ledger.claim("f", 0, 1, "b")
    assert (dup.granted, dup.reason, dup.holder) == (False, "duplicate", "a")
    assert ledger.claim("f", 0, 0, "old").reason == "superseded"
    assert ledger.claim("f", 7, 1, "x").reason == "unknown"

    # a coordinator bumped the attempt, its mark_attempts write lost the race to the sibling
    assert ledger.claim("f", 0, 2, "c2").granted
    ledger.mark_attempts("f", [(0, 2, "submitting")])  # same attempt: the claim stays
    assert ledger.claim("f", 0, 2, "d").holder == "c2"
    assert ledger.claim("f", 0, 1, "a").reason == "superseded"
    ledger.record_siblings("f", [(0, 1, "a"), (0, 2, "c2"), (0, 2, "c2")])
    [row0, _] = ledger.rows("f")
    assert (row0.state, row0.attempt, row0.sibling_ids, row0.claimed_by) == (
        "submitted", 2, ["a", "c2"], "c2")  # fmt: skip

    assert ledger.finish("f", 0, 2, "c2", outcome([0, 1], tag="first")) is True
    assert ledger.finish("f", 0, 2, "d", outcome([0, 1], tag="second")) is False
    ledger.record_outcomes("f", [(0, 2, "failed", {"results": [], "errors": []})])
    ledger.mark_attempts("f", [(0, 3, "submitting")])  # a done row is never re-opened
    assert ledger.outcomes("f", [0])[0]["results"][0]["tag"] == "first"
    done = ledger.claim("f", 0, 2, "e")
    assert (done.reason, done.holder) == ("done", "c2")
    row0 = ledger.rows("f")[0]
    assert (row0.state, row0.attempt) == ("done", 2)
    assert row0.duplicates == 5  # b, old, d, a, e; the unknown chunk counts nowhere

    # a new attempt clears the previous attempt's claim; an older one changes nothing; failed
    # rows are finished too
    assert ledger.claim("f", 1, 1, "p").granted
    ledger.mark_attempts("f", [(1, 0, "local")])
    assert (ledger.rows("f")[1].attempt, ledger.rows("f")[1].claimed_by) == (1, "p")
    ledger.mark_attempts("f", [(1, 2, "local")])
    assert ledger.rows("f")[1].claimed_by is None
    ledger.record_outcomes("f", [(1, 2, "failed", {"results": [None, None], "errors": []})])
    assert ledger.claim("f", 1, 2, "q").reason == "done"
    assert ledger.summary("f") == {
        "chunks": 2,
        "states": {"done": 1, "failed": 1},
        "attempts": 4,
        "siblings": 2,
        "duplicates": 6,
    }


def test_concurrent_opens_create_one_plan(database_url) -> None:
    ledger = Ledger(database_url)
    ledger.fanout("warm-up")
    n = 4
    barrier = threading.Barrier(n)
    made: list[int] = []

    def plan() -> list[ChunkRow]:
        made.append(1)
        return ref_plan(items=50, chunks=5)

    def open_it(i: int) -> tuple[list[ChunkRow], bool]:
        barrier.wait(timeout=60)
        return Ledger(database_url).open_fanout("o", job_id=f"c{i}", fingerprint=FP, items=50,
                                                plan=plan)  # fmt: skip

    with ThreadPoolExecutor(n) as pool:
        got = list(pool.map(open_it, range(n)))
    assert len(made) == 1 and sorted(resumed for _, resumed in got) == [False] + [True] * (n - 1)
    assert all(rows == ref_plan(items=50, chunks=5) for rows, _ in got)


def _race(url: str, fid: str, job_id: str, barrier: Any, results: Any) -> None:
    """One process of the race: claim (0, attempt 1), then all finish at once."""
    ledger = Ledger(url)
    ledger.fanout(fid)  # engine up and migrated before the start
    barrier.wait(timeout=120)
    claim = ledger.claim(fid, 0, 1, job_id)
    barrier.wait(timeout=120)
    won = ledger.finish(fid, 0, 1, job_id, outcome([0], tag=job_id))
    results.put((job_id, claim.granted, claim.reason, claim.holder, won))


def test_claims_raced_by_processes(database_url) -> None:
    n = 5
    ledger = Ledger(database_url)
    ledger.open_fanout("race", job_id="c", fingerprint=FP, items=1,
                       plan=lambda: [ChunkRow(chunk=0, positions=[0])])  # fmt: skip
    ledger.mark_attempts("race", [(0, 1, "submitting")])
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(database_url, "race", f"sib-{i}", barrier, results))
        for i in range(n)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    granted = [g for g in got if g[1]]
    assert len(granted) == 1, got
    holder = granted[0][0]
    assert sorted((g[2], g[3]) for g in got if not g[1]) == [("duplicate", holder)] * (n - 1)
    winners = [g[0] for g in got if g[4]]
    assert len(winners) == 1, got  # first done wins, whoever it is
    [row] = ledger.rows("race")
    assert (row.claimed_by, row.duplicates, row.state) == (holder, n - 1, "done")
    assert ledger.outcomes("race", [0])[0]["results"][0]["tag"] == winners[0]


class Statements:
    """Transactions begun and statements sent on an engine, by kind."""

    def __init__(self, engine) -> None:
        self.begins = 0
        self.sent: list[str] = []
        event.listen(engine, "begin", self._begin)
        event.listen(engine, "before_cursor_execute", self._execute)

    def _begin(self, _conn) -> None:
        self.begins += 1

    def _execute(self, _conn, _cursor, statement, _params, _context, _many) -> None:
        words = statement.replace("INSERT INTO", "INSERT").split()
        self.sent.append(" ".join(words[:2]))

    def take(self) -> tuple[int, list[str]]:
        out = (self.begins, self.sent)
        self.begins, self.sent = 0, []
        return out


def test_batched_writes_of_1100_chunks(database_url) -> None:
    ledger = Ledger(database_url)
    ledger.fanout("warm-up")  # migrated before counting
    seen = Statements(ledger.engine)
    plan = ref_plan()
    assert len(plan) == CHUNKS
    rows, _ = ledger.open_fanout("big", job_id="c", fingerprint=FP, items=ITEMS, plan=lambda: plan)
    begins, sent = seen.take()
    assert len(rows) == CHUNKS and begins == 1
    assert 1 <= sent.count("INSERT fanout_chunks") <= 2  # batches of 1,000, never a row each

    ledger.mark_attempts("big", [(r.chunk, 1, "submitting") for r in rows])
    ledger.record_siblings("big", [(r.chunk, 1, f"sib-{r.chunk}") for r in rows])
    stored = [(r.chunk, 1, "done", outcome(range(r.ref["start"], r.ref["stop"]))) for r in rows]
    ledger.record_outcomes("big", stored)
    begins, sent = seen.take()
    assert begins == 3, sent  # one transaction per call
    assert sent.count("UPDATE fanout_chunks") == 3  # each an executemany
    assert ledger.summary("big") == {
        "chunks": CHUNKS, "states": {"done": CHUNKS}, "attempts": CHUNKS, "siblings": CHUNKS,
        "duplicates": 0}  # fmt: skip
    back = ledger.rows("big")
    assert [r.sibling_ids for r in back[:2]] == [["sib-0"], ["sib-1"]]
    assert [r.ref for r in back] == [r.ref for r in plan]


def test_iter_results_streams_contiguous_chunks_in_input_order(database_url, monkeypatch) -> None:
    ledger = Ledger(database_url)
    plan = ref_plan(items=1_000, chunks=100)
    plan.reverse()  # chunk numbers need not follow the input's order
    plan = [ChunkRow(chunk=i, ref=r.ref) for i, r in enumerate(plan)]
    ledger.open_fanout("s", job_id="c", fingerprint=FP, items=1_000, plan=lambda: plan)
    spans = {r.chunk: range(r.ref["start"], r.ref["stop"]) for r in plan}
    done = [(c, 1, "done", outcome(s, errors=1)) for c, s in spans.items() if c != 5]
    ledger.record_outcomes("s", done)
    loads: list[int] = []
    real = ledger.outcomes

    def counted(fanout_id: str, chunks: list[int]) -> dict[int, dict[str, Any]]:
        loads.append(len(chunks))
        return real(fanout_id, chunks)

    monkeypatch.setattr(ledger, "outcomes", counted)
    it = ledger.iter_results("s")
    assert next(it) == (0, {"pos": 0, "tag": "r"})
    assert loads == [STREAM_BATCH]  # the first result came after one batch of outcomes, not all
    rest = list(it)
    assert max(loads) == STREAM_BATCH and sum(loads) == 100
    assert [p for p, _ in rest] == list(range(1, 1_000))
    missing = set(spans[5])  # no outcome yet: None
    assert all((r is None) == (p in missing) for p, r in rest)
    assert all(r["pos"] == p for p, r in rest if r is not None)
    errors = list(ledger.iter_errors("s"))
    assert [e["item_id"] for e in errors] == [f"#{s.start}" for c, s in sorted(
        spans.items(), key=lambda cs: cs[1].start) if c != 5]  # fmt: skip


def test_iter_results_over_interleaved_inline_chunks(database_url) -> None:
    ledger = Ledger(database_url)
    plan = [ChunkRow(chunk=c, positions=list(range(c, 11, 3))) for c in range(3)]  # 0,3,6,9 ...
    ledger.open_fanout("i", job_id="c", fingerprint=FP, items=12, plan=lambda: plan)
    short = {"results": [{"pos": 1, "tag": "r"}], "errors": []}  # fewer results than positions
    ledger.record_outcomes("i", [(0, 1, "done", outcome(plan[0].positions)), (1, 1, "done", short),
                                 (2, 1, "done", outcome(plan[2].positions))])  # fmt: skip
    got = list(ledger.iter_results("i"))
    assert [p for p, _ in got] == list(range(12))
    present = {p for p, r in got if r is not None}
    assert present == {0, 3, 6, 9, 2, 5, 8, 1}  # 4, 7, 10: chunk 1's short outcome; 11: no chunk
    assert all(r["pos"] == p for p, r in got if r is not None)
    with pytest.raises(KeyError):
        list(ledger.iter_results("unknown"))


def test_upgrade_from_0003_with_rows_adds_the_ledger(database_url) -> None:
    engine = engine_for(database_url)
    row = {"job_id": "old", "date": dt.date(2026, 11, 30), "trigger": "api", "worker_id": "w",
           "items": 3, "loaded_at": dt.datetime(2026, 11, 30, 8, tzinfo=dt.UTC)}  # fmt: skip
    try:
        with engine.connect() as conn:
            command.upgrade(alembic_config(conn), "0003")
            conn.commit()
            conn.execute(runs.insert(), [row])
            conn.commit()
            assert "fanouts" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()
    assert upgrade_db(database_url) == head_revision()
    ledger = Ledger(database_url)
    ledger.open_fanout("after", job_id="c", fingerprint=FP, items=1,
                       plan=lambda: [ChunkRow(chunk=0, positions=[0])])  # fmt: skip
    assert ledger.claim("after", 0, 0, "s").granted
    engine = engine_for(database_url)
    try:
        with engine.connect() as conn:
            assert [r.job_id for r in conn.execute(select(runs))] == ["old"]
            command.downgrade(alembic_config(conn), "0003")
            conn.commit()
            assert current_revision(conn) == "0003"
            tables = set(inspect(conn).get_table_names())
            assert "fanouts" not in tables and "fanout_chunks" not in tables
            assert [r.job_id for r in conn.execute(select(runs))] == ["old"]
    finally:
        engine.dispose()


def _db_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "podfleet.cli", "db", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_db_results_and_errors_commands(database_url) -> None:
    ledger = Ledger(database_url)
    plan = [ChunkRow(chunk=0, ref={"start": 3, "stop": 6}), ChunkRow(chunk=1, ref={"start": 0,
            "stop": 3})]  # fmt: skip
    ledger.open_fanout("run:cli", job_id="c", fingerprint=FP, items=6, plan=lambda: plan)
    ledger.record_outcomes("run:cli", [(0, 1, "done", outcome(range(3, 6), errors=1)),
                                       (1, 1, "done", outcome(range(3)))])  # fmt: skip
    password = make_url(database_url).password or ""

    proc = _db_command("results", "run:cli", "--url", database_url)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(x["index"], x["result"]["pos"]) for x in lines] == [(i, i) for i in range(6)]
    proc = _db_command("errors", "run:cli", env={"DATABASE_URL": database_url})  # the default
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line)["item_id"] for line in proc.stdout.splitlines()] == ["#3"]

    proc = _db_command("results", "run:nope", "--url", database_url)
    assert proc.returncode == 1 and "no fan-out 'run:nope'" in proc.stderr
    if password:  # PostgreSQL: the URL is named with its password hidden
        assert "***" in proc.stderr and password not in proc.stdout + proc.stderr
    proc = _db_command("results", "--url", database_url)
    assert proc.returncode == 2 and "FANOUT_ID" in proc.stderr


def test_db_results_on_an_unreachable_database_names_no_password() -> None:
    proc = _db_command("results", "run:x", "--url", "postgresql://u:hunter2-pw@127.0.0.1:1/db")
    assert proc.returncode == 1
    assert "error:" in proc.stderr and "hunter2-pw" not in proc.stdout + proc.stderr
