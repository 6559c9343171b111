"""The coordinator over the chunk ledger (real SQLite, in the test's temporary directory):
resume from stored chunk states, duplicate /run answered, skipped siblings, items by reference
with the bounded merge. Siblings run through our real handler in the in-memory queue of
test_coordinator_fanout (which honours RunPod's client API)."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
from podfleet.coordinator import coordinate
from podfleet.coordinator.chunks import FanoutInfo, chunk_job, chunk_sizes, sibling_input
from podfleet.coordinator.resume import LedgerWriter, fingerprint, open_ledger
from podfleet.coordinator.siblings import Sibling
from podfleet.coordinator.tally import MAX_ERRORS, Tally
from podfleet.entry import handler as real_handler
from podfleet.envelope import parse_job
from podfleet.output import JobOutput
from podfleet.pipeline.errors import InputError
from podfleet.pipeline.stage import ItemError
from podfleet.pipeline.store.ledger import Ledger
from test_coordinator_fanout import (  # noqa: F401 (own_database: a fixture)
    FakeQueue,
    own_database,
    run,
    scheduler_of,
    settings,
    synthetic_job,
)


def ledger_db() -> Ledger:
    return Ledger(os.environ["DATABASE_URL"])  # test_coordinator_fanout.own_database's


def chunk_of(job: dict) -> int:
    return job["input"]["sibling"]["chunk"]


def enqueue(queue: FakeQueue, job_id: str, data: dict) -> None:
    """A sibling a previous coordinator submitted, already in the queue."""
    queue.jobs[job_id] = {"id": job_id, "status": "IN_QUEUE", "input": data}
    queue.queue.append(job_id)
    queue._dispatch()


async def test_a_finished_fanout_run_again_reuses_every_chunk(clean_env):
    queue = FakeQueue(workers=3)
    job = synthetic_job(12)
    first = await run(job, queue, settings())
    submitted = len(queue.jobs)
    assert first["fanout"]["fanout_id"] == "coord-1" and first["fanout"]["resumed"] is False
    again = await run(job, queue, settings(runpod_workers=7))
    assert len(queue.jobs) == submitted  # nothing submitted again
    assert again["results"] == first["results"] and again["ok"] is True
    fan = again["fanout"]
    assert (
        fan["resumed"] is True
        and fan["chunks_reused"] == fan["chunks"] == first["fanout"]["chunks"]
    )
    assert fan["chunks_local"] == 0 and fan["siblings_submitted"] == 0


async def test_resume_merges_done_polls_submitted_and_retries_the_rest(clean_env):
    s = settings(chunk_size=3, chunk_order="contiguous")
    job = synthetic_job(12, duration_s=0.05)
    parsed = parse_job(job)
    chunks = chunk_job(parsed, chunk_sizes(12, 3, configured=3))

    async def plan():
        return 12, chunks

    writer, stored, _, _ = await open_ledger(parsed, s, plan)  # the first coordinator's plan
    assert writer.fanout_id == "coord-1" and stored is None
    ledger = ledger_db()
    fanout = FanoutInfo("coord-1")
    # chunk 0 done (its outcome stored), 1 out on sibling "sib-pre", 2 marked but /run never
    # answered (the coordinator died), 3 never tried
    ledger.mark_attempts(
        "coord-1", [(0, 0, "submitting"), (1, 0, "submitting"), (2, 0, "submitting")]
    )
    done = await real_handler(
        {
            "id": "sib-old",
            "input": sibling_input(parsed, chunks[0], return_records=False, cleanup=False),
        }
    )
    ledger.record_outcomes("coord-1", [(0, 0, "done", done)])
    data = sibling_input(parsed, chunks[1], return_records=False, cleanup=False, fanout=fanout)
    enqueue(queue := FakeQueue(workers=3), "sib-pre", data)
    ledger.record_siblings("coord-1", [(1, 0, "sib-pre")])

    out = await run(job, queue, settings(chunk_size=5, chunk_order="interleaved"))

    assert out["ok"] is True and [r["id"] for r in out["results"]] == [
        f"it-{i:03d}" for i in range(12)
    ]
    assert out["results"][:3] == done["results"]
    by_chunk = {c: [j for j in queue.jobs.values() if chunk_of(j) == c] for c in range(4)}
    assert by_chunk[0] == []  # done: never run again
    assert [j["id"] for j in by_chunk[1]] == ["sib-pre"]  # polled, not resubmitted
    assert all(j["input"]["sibling"]["attempt"] >= 1 for j in by_chunk[2])  # a new attempt
    fan = out["fanout"]
    assert fan["resumed"] is True and fan["chunks"] == 4  # the stored plan, not chunk_size 5
    assert fan["chunks_reused"] == 1 and fan["siblings_adopted"] == 1
    assert ledger.summary("coord-1")["states"] == {"done": 4}
    rows = {r.chunk: r for r in ledger.rows("coord-1")}
    assert rows[1].attempt == 0 and rows[2].attempt >= 1 and rows[3].attempt == 0


async def test_a_duplicate_sibling_from_an_answered_5xx_does_no_work(clean_env):
    """Every /run creates two jobs (accepted, then retried after a 5xx) and answers with the
    second: one of each pair claims the attempt and works, the other returns skipped."""

    class TwiceQueue(FakeQueue):
        async def handle(self, request):
            if request.url.path.endswith("/run"):
                await super().handle(request)
            return await super().handle(request)

    queue = TwiceQueue(workers=4)
    out = await run(synthetic_job(12, duration_s=0.02), queue, settings(pickup_timeout_s=30))
    assert out["ok"] is True and out["succeeded"] == 12
    outputs = [j["output"] for j in queue.jobs.values() if j["status"] == "COMPLETED"]
    skipped = [o for o in outputs if o.get("skipped")]
    worked = [o for o in outputs if not o.get("skipped")]
    assert skipped and all(o["skipped"] in ("duplicate", "superseded", "done") for o in skipped)
    assert all(o["results"] == [] and o["items"] == 0 for o in skipped)
    keys = [
        (j["input"]["sibling"]["chunk"], j["input"]["sibling"]["attempt"])
        for j in queue.jobs.values()
        if j["status"] == "COMPLETED" and not j["output"].get("skipped")
    ]
    assert len(keys) == len(set(keys)) == len(worked)  # each attempt worked on once
    assert out["fanout"]["duplicates_refused"] == len(skipped)


async def test_another_input_under_the_same_run_key_is_refused(clean_env):
    job = synthetic_job(6)
    job["input"]["run_key"] = "nightly-1"
    first = await run(job, FakeQueue(3), settings())
    assert first["ok"] is True and first["fanout"]["fanout_id"] == "run:nightly-1"
    other = json.loads(json.dumps(job))
    other["id"] = "coord-2"
    other["input"]["items"].pop()
    assert fingerprint(parse_job(other)) != fingerprint(parse_job(job))
    with pytest.raises(InputError) as info:
        await coordinate(parse_job(other), settings(), other, client=None)
    assert info.value.field == "run_key"
    same = dict(job, id="coord-3")  # the same input under the run_key: the stored fan-out
    again = await run(same, FakeQueue(3), settings())
    assert again["fanout"]["resumed"] is True and again["results"] == first["results"]


def test_a_sibling_finding_its_chunk_done_takes_the_stored_outcome(clean_env):
    parsed = parse_job(synthetic_job(4))
    chunks = chunk_job(parsed, [2, 2])
    s = settings()

    async def go() -> None:
        async def plan():
            return 4, chunks

        writer, *_ = await open_ledger(parsed, s, plan)
        stored = JobOutput(items=2, succeeded=2, results=[{"id": "it-000"}, {"id": "it-001"}])
        writer.outcome(chunks[0], "done", stored.to_output())
        await writer.flush()
        scheduler = scheduler_of(parsed, chunks)
        scheduler.ledger = writer
        scheduler.pending.remove(chunks[0])
        skipped = {"ok": True, "items": 0, "results": [], "skipped": "done"}
        from podfleet.api import JobState

        state = JobState(id="s1", status="COMPLETED", output=skipped)
        scheduler._ended(Sibling("s1", chunks[0], 0.0), state)
        await scheduler._fetch_done()
        assert scheduler.stats.skipped_done == 1 and 0 in scheduler.merger.finished
        assert scheduler.merger.results[:2] == [{"id": "it-000"}, {"id": "it-001"}]

    asyncio.run(go())


def test_no_ledger_writer_does_nothing():
    writer = LedgerWriter()
    assert not writer.enabled and writer.fanout_id is None
    assert asyncio.run(writer.outcomes([0, 1])) == {}


def test_the_tally_keeps_counts_and_the_first_errors_in_input_order():
    from podfleet.coordinator.chunks import Chunk

    tally = Tally(3000, keep_results=False)
    chunks = [Chunk(i, range(i * 1000, (i + 1) * 1000)) for i in range(3)]
    errs = [ItemError(f"#{p}", "work", "bad", False) for p in range(1200, 1900)]
    assert tally.accept(chunks[1], JobOutput(items=1000, succeeded=300, results=[], errors=errs))
    assert not tally.accept(chunks[1], JobOutput(items=1000, succeeded=1000, results=[]))
    assert tally.fail(chunks[2], "coordinator", "gone")  # 1,000 errors, listed first 1,000 only
    late = [ItemError("#5", "work", "bad", False)]
    tally.accept(chunks[0], JobOutput(items=1000, succeeded=999, results=[], errors=late))
    errors = tally.ordered_errors()
    assert len(errors) == MAX_ERRORS and errors[0].item_id == "#5" and errors[1].item_id == "#1200"
    assert errors[-1].item_id == "#2298"  # chunk 2's first 299 errors, after 1 + 700
    assert tally.errors_total == 700 + 1000 + 1
    assert tally.items_done == 3000 and tally.succeeded == 1299 and tally.results == []


def write_rows(path, n: int, bad: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps([1]) if i == bad else json.dumps({"id": f"r-{i}"}) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("inline_max", [5, 1000])
async def test_items_from_siblings_get_references_and_results_stay_in_the_ledger(
    clean_env, inline_max
):
    write_rows(clean_env / "data" / "items.jsonl", 31, bad=7)
    job = {
        "id": "coord-ref",
        "input": {
            "pipeline": "synthetic",
            "workers": 3,
            "items_from": {"jsonl": str(clean_env / "data" / "items.jsonl")},
        },
    }
    queue = FakeQueue(workers=3)
    out = await run(job, queue, settings(inline_results_max_items=inline_max))
    assert out["items"] == 31 and out["succeeded"] == 30 and out["ok"] is False
    assert [(e["item_id"], e["stage"]) for e in out["errors"]] == [("#7", "input")]
    assert out["fanout"]["errors_total"] == 1
    for sib in queue.jobs.values():
        data = sib["input"]
        ref = data["sibling"]["ref"]
        assert data["items"] == [] and data["items_from"]["jsonl"].endswith("items.jsonl")
        assert 0 <= ref["start"] < ref["stop"] <= 31 and data["sibling"]["fanout_id"] == "coord-ref"
        assert data["sibling"]["results_inline"] is (inline_max >= 31)
    stored = list(ledger_db().iter_results("coord-ref"))
    assert [p for p, _ in stored] == list(range(31))
    assert [r and r["id"] for _, r in stored] == [None if i == 7 else f"r-{i}" for i in range(31)]
    if inline_max >= 31:
        assert [r and r["id"] for r in out["results"]] == [r and r["id"] for _, r in stored]
        assert "results_at" not in out
    else:
        assert out["results"] == []
        assert out["results_at"]["fanout_id"] == "coord-ref"
        assert out["results_at"]["ledger"] == "fanout_chunks"


async def test_a_resumed_items_from_job_does_not_read_its_source_again(clean_env):
    """The stored plan is the plan: once every chunk is done, the source may even be gone."""
    path = clean_env / "data" / "items.jsonl"
    write_rows(path, 20, bad=-1)
    job = {
        "id": "coord-gone",
        "input": {"pipeline": "synthetic", "workers": 3, "items_from": {"jsonl": str(path)}},
    }
    first = await run(job, FakeQueue(workers=3), settings(inline_results_max_items=5))
    assert first["ok"] is True and first["succeeded"] == 20
    path.unlink()
    queue = FakeQueue(workers=3)
    again = await run(job, queue, settings(inline_results_max_items=5))
    assert again["ok"] is True and again["succeeded"] == 20 and queue.jobs == {}
    assert again["fanout"]["resumed"] is True
    assert again["fanout"]["chunks_reused"] == again["fanout"]["chunks"]
    assert again["results_at"] == first["results_at"]
    path.parent.rmdir()
    with pytest.raises(InputError) as info:  # a new fan-out of it is planned: the source is gone
        await coordinate(parse_job(dict(job, id="coord-new")), settings(), job, client=None)
    assert info.value.field.startswith("items_from")
