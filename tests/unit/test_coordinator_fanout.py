"""The coordinator's scheduling, retries, take-backs and deadline, against an in-memory queue that
honours RunPod's client API (MockTransport) and runs each sibling through our real handler."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx
import pytest
from podfleet.api import EndpointClient, JobState, RetryPolicy
from podfleet.coordinator import coordinate
from podfleet.coordinator.chunks import chunk_job, chunk_sizes, sibling_input
from podfleet.coordinator.merge import Merger
from podfleet.coordinator.siblings import Sibling
from podfleet.entry import handler as real_handler
from podfleet.envelope import parse_job
from podfleet.modes import choose_mode
from podfleet.output import JobOutput
from podfleet.pipeline.deadline import Deadline
from podfleet.settings import Settings


@pytest.fixture(autouse=True)
def own_database(clean_env, monkeypatch):
    """The chunk ledger's database, the coordinator's and its siblings', for this test alone (by
    an absolute path: an engine outlives the test's working directory)."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{clean_env}/ledger.db")


class FakeQueue:
    """A RunPod endpoint with `workers` slots: queued jobs are picked up in order and run by the
    real handler in-process. Faults: `lose` (chunk indexes answered 404 once), `capacity` 0."""

    def __init__(self, workers: int):
        self.capacity = workers
        self.jobs: dict[str, dict] = {}
        self.queue: list[str] = []
        self.running: dict[str, asyncio.Task] = {}
        self.lose: set[int] = set()
        self.ids = itertools.count(1)
        self.max_running = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def _dispatch(self) -> None:
        while self.queue and len(self.running) < self.capacity:
            job_id = self.queue.pop(0)
            job = self.jobs[job_id]
            job["status"] = "IN_PROGRESS"
            self.running[job_id] = asyncio.create_task(self._work(job))
            self.max_running = max(self.max_running, len(self.running))

    async def _work(self, job: dict) -> None:
        try:
            out = await real_handler({"id": job["id"], "input": job["input"]})
            if "error" in out:
                job.update(status="FAILED", error=out["error"])
            else:
                job.update(status="COMPLETED", output=out)
        except asyncio.CancelledError:
            pass
        finally:
            self.running.pop(job["id"], None)
            self._dispatch()

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)
        parts = request.url.path.strip("/").split("/")
        op, job_id = parts[2], (parts[3] if len(parts) > 3 else None)
        if op == "run":
            body = json.loads(request.content)
            assert body["policy"]["executionTimeout"] > 0 and body["policy"]["ttl"] > 0
            jid = f"sib-{next(self.ids)}"
            self.jobs[jid] = {"id": jid, "status": "IN_QUEUE", "input": body["input"]}
            self.queue.append(jid)
            self._dispatch()
            return httpx.Response(200, json={"id": jid, "status": "IN_QUEUE"})
        job = self.jobs.get(job_id)
        if job is None:
            return httpx.Response(404, json={"error": "not found"})
        if op == "status":
            chunk = job["input"]["sibling"]["chunk"]
            if chunk in self.lose:
                self.lose.discard(chunk)
                self.jobs.pop(job_id)
                if job_id in self.running:
                    self.running[job_id].cancel()
                return httpx.Response(404, json={"error": "not found"})
            reply = {k: job[k] for k in ("id", "status", "output", "error") if k in job}
            return httpx.Response(200, json=reply)
        if op == "cancel":
            if job_id in self.queue:
                self.queue.remove(job_id)
            if job_id in self.running:
                self.running[job_id].cancel()
            if job["status"] in ("IN_QUEUE", "IN_PROGRESS"):
                job["status"] = "CANCELLED"
            return httpx.Response(200, json={"id": job_id, "status": job["status"]})
        return httpx.Response(400)


def synthetic_job(n: int, *, duration_s: float = 0.01, workers: int = 3, **options) -> dict:
    items = [{"id": f"it-{i:03d}", "duration_s": duration_s} for i in range(n)]
    return {
        "id": "coord-1",
        "input": {"pipeline": "synthetic", "workers": workers, "items": items, "options": options},
    }


def settings(**kw) -> Settings:
    base = {
        "runpod_endpoint_id": "ep1",
        "status_poll_interval_s": 0.01,
        "pickup_timeout_s": 5,
        "sibling_max_retries": 2,
    }
    base.update(kw)
    return Settings(**base)


async def run(job: dict, queue: FakeQueue, s: Settings) -> dict:
    parsed = parse_job(job)
    assert choose_mode(parsed, s) == "coordinator"
    client = EndpointClient(
        endpoint_id="ep1",
        base_url="http://queue.invalid/v2",
        transport=queue.transport(),
        retry=RetryPolicy(max_retries=2, base_s=0.01),
    )
    async with client:
        return await coordinate(parsed, s, job, client=client)


async def test_results_in_input_order_with_bounded_in_flight(clean_env):
    queue = FakeQueue(workers=3)
    out = await run(synthetic_job(24, duration_s=0.02), queue, settings())
    assert out["ok"] is True and out["mode"] == "coordinator"
    assert [r["id"] for r in out["results"]] == [f"it-{i:03d}" for i in range(24)]
    fan = out["fanout"]
    sizes = chunk_sizes(24, 3)
    assert fan["chunks"] == len(sizes) == 9 and fan["chunk_size"] == sizes[0] == 6
    assert fan["chunk_plan"] == "guided"
    assert fan["siblings_submitted"] + fan["chunks_local"] - fan["taken_back"] == 9
    assert 1 <= fan["max_in_flight"] <= 3 and queue.max_running <= 3
    assert fan["chunks_local"] >= 1  # the coordinator worked too
    assert "missing" not in out and out["errors"] == []


async def test_every_chunk_failing_twice_then_succeeding(clean_env):
    out = await run(synthetic_job(12, fail_job_attempts=2), FakeQueue(3), settings())
    assert out["ok"] is True and out["succeeded"] == 12
    # each chunk fails at attempts 0 and 1; a take-back's try also takes a new attempt
    assert 1 <= out["fanout"]["retries"] <= 2 * out["fanout"]["chunks"]


async def test_chunk_failing_beyond_the_retries_reports_every_item(clean_env):
    out = await run(synthetic_job(6, fail_job_attempts=5), FakeQueue(3), settings())
    assert out["ok"] is False and out["succeeded"] == 0
    assert [e["item_id"] for e in out["errors"]] == [f"it-{i:03d}" for i in range(6)]
    assert all("after 3 attempts" in e["message"] for e in out["errors"])
    assert out["fanout"]["chunks_failed"] == out["fanout"]["chunks"]


async def test_no_free_worker_coordinator_takes_everything_back(clean_env):
    queue = FakeQueue(workers=0)
    out = await run(synthetic_job(8), queue, settings(pickup_timeout_s=0.05))
    assert out["ok"] is True and out["succeeded"] == 8
    fan = out["fanout"]
    assert fan["chunks_local"] == fan["chunks"] and fan["taken_back"] >= 1
    assert all(j["status"] == "CANCELLED" for j in queue.jobs.values())


async def test_lost_sibling_is_retried(clean_env):
    queue = FakeQueue(workers=3)
    queue.lose = {0, 1, 2}
    out = await run(synthetic_job(12, duration_s=0.05), queue, settings())
    assert out["ok"] is True and out["succeeded"] == 12
    assert out["fanout"]["lost"] >= 1 and out["fanout"]["retries"] >= out["fanout"]["lost"]


async def test_deadline_cancels_siblings_and_lists_missing(clean_env):
    queue = FakeQueue(workers=2)
    job = synthetic_job(12, duration_s=0.4, workers=2)
    # no ledger: creating its schema in a new database takes a good part of a 0.6 s deadline
    out = await run(job, queue, settings(request_timeout=0.6, fanout_ledger=False))
    assert out["ok"] is False
    missing = out["missing"]
    assert missing and out["succeeded"] + len(missing) == 12
    errored = {e["item_id"] for e in out["errors"]}
    assert set(missing) <= errored
    done = {r["id"] for r in out["results"] if r}
    assert done | errored == {f"it-{i:03d}" for i in range(12)}
    assert out["fanout"]["cancelled"] >= 1
    for _ in range(200):  # cancelled handler tasks unwind on the next loop turns
        if not queue.running:
            break
        await asyncio.sleep(0.01)
    assert not queue.running and not any(j["status"] == "IN_PROGRESS" for j in queue.jobs.values())


def test_sibling_input_is_a_worker_job_with_its_chunk(clean_env):
    job = synthetic_job(10, workers=3)
    job["input"]["cleanup"] = True
    parsed = parse_job(job)
    chunks = chunk_job(parsed, chunk_sizes(10, 3, configured=4))
    assert [c.size for c in chunks] == [4, 4, 2]
    data = sibling_input(parsed, chunks[1], return_records=True, cleanup=False)
    assert data["mode"] == "worker" and data["cleanup"] is False and "workers" not in data
    assert [i["id"] for i in data["items"]] == ["it-004", "it-005", "it-006", "it-007"]
    assert data["sibling"] == {
        "parent_id": "coord-1",
        "chunk": 1,
        "attempt": 0,
        "key": "coord-1:1",
        "return_records": True,
        "protocol": 2,
        "results_inline": True,
    }
    assert "items_from" not in data and "run_key" not in data
    sib = parse_job({"id": "s1", "input": data})
    assert choose_mode(sib, settings(runpod_workers=8)) == "worker"  # never fans out again
    # what coordinators sent before chunks were interleaved still parses (rolling updates)
    data["sibling"]["first_index"] = 4
    assert parse_job({"id": "s2", "input": data}).envelope.sibling.chunk == 1


def test_duplicate_completion_is_ignored():
    parsed = parse_job(synthetic_job(4))
    chunks = chunk_job(parsed, [2, 2])
    merger = Merger(["it-000", "it-001", "it-002", "it-003"], keep_records=False)
    first = JobOutput(results=[{"id": "it-002"}, {"id": "it-003"}])
    assert merger.accept(chunks[1], first)
    assert not merger.accept(chunks[1], JobOutput(results=[{"id": "other"}, None]))
    assert merger.results == [None, None, {"id": "it-002"}, {"id": "it-003"}]
    assert merger.items_done == 2


def test_interleaved_chunks_partition_the_items_and_merge_back_in_input_order():
    parsed = parse_job(synthetic_job(40, workers=4))
    ids = [f"it-{i:03d}" for i in range(40)]
    chunks = chunk_job(parsed, chunk_sizes(40, 4), "interleaved")
    dealt = [p for c in chunks for p in c.positions]
    assert sorted(dealt) == list(range(40))  # every item in exactly one chunk
    assert dealt != list(range(40))  # and not simply input order
    for c in chunks:
        assert c.positions == sorted(c.positions)  # input order inside a chunk
        assert [i["id"] for i in c.raw] == [ids[p] for p in c.positions]
    again = chunk_job(parse_job(synthetic_job(40, workers=4)), chunk_sizes(40, 4), "interleaved")
    assert [c.positions for c in again] == [c.positions for c in chunks]  # deterministic
    merger = Merger(ids, keep_records=False)
    for c in reversed(chunks):
        merger.accept(c, JobOutput(results=[{"id": i["id"]} for i in c.raw]))
    assert [r["id"] for r in merger.results] == ids


def test_interleaving_spreads_a_run_of_slow_items_over_chunks():
    """The first 10 items are 'slow' and listed together: contiguous chunking puts them all in
    the first chunk, interleaving spreads them."""
    parsed = parse_job(synthetic_job(120, workers=8))
    sizes = chunk_sizes(120, 8)
    contiguous = chunk_job(parsed, sizes, "contiguous")
    interleaved = chunk_job(parsed, sizes, "interleaved")

    def slow_per_chunk(chunks):
        return max(sum(1 for p in c.positions if p < 10) for c in chunks)

    assert slow_per_chunk(contiguous) == 10
    assert slow_per_chunk(interleaved) <= 3
    with pytest.raises(ValueError, match="chunk order"):
        chunk_job(parsed, sizes, "sorted")


def test_guided_chunk_sizes_shrink_and_cover_every_item():
    sizes = chunk_sizes(160, 8)
    assert sum(sizes) == 160 and sizes == sorted(sizes, reverse=True)
    assert sizes[0] == 14 and sizes[-1] == 1  # 1/(1.5·workers) of what is left
    assert chunk_sizes(12, 4) == [2, 2, 2, 1, 1, 1, 1, 1, 1]
    assert chunk_sizes(10, 3, configured=4) == [4, 4, 2]
    with pytest.raises(ValueError):
        chunk_sizes(0, 3)


def scheduler_of(parsed, chunks):
    """A scheduler over `chunks` with no client behind it (for its decisions alone)."""
    from podfleet.api import Policy
    from podfleet.coordinator.scheduler import Scheduler, SchedulerConfig
    from podfleet.coordinator.siblings import SiblingPool
    from podfleet.coordinator.stats import FanoutStats

    stats = FanoutStats(chunks=len(chunks))
    pool = SiblingPool(None, parsed, Policy(), stats, return_records=False, cleanup=False)
    config = SchedulerConfig(
        workers=2,
        max_retries=2,
        pickup_timeout_s=5,
        poll_interval_s=0.01,
        deadline=Deadline(1e12),
        want_records=False,
    )
    merger = Merger([parsed.pipeline.item_id(i) for i in parsed.items], keep_records=False)
    return Scheduler(chunks, pool, merger, stats, config, run_local=None)


@pytest.mark.parametrize("status", [None, "FAILED", "TIMED_OUT"])
def test_a_chunk_that_failed_on_a_sibling_is_retried_on_siblings_only(clean_env, status):
    """Its worker may have died on one of its items: the coordinator's own process must not run
    it (a poison item would take the whole job down), except after a pickup timeout."""
    parsed = parse_job(synthetic_job(4))
    chunks = chunk_job(parsed, [2, 2])
    scheduler = scheduler_of(parsed, chunks)
    scheduler.pending.remove(chunks[0])  # chunk 0 is out on a sibling
    state = None if status is None else JobState(id="s1", status=status, error="worker died")

    scheduler._ended(Sibling("s1", chunks[0], 0.0), state)

    assert chunks[0].siblings_only and scheduler.stats.retries == 1
    chunks[0].not_before_s = 0.0  # past its retry backoff
    assert scheduler._next_pending(1.0, local=True) is chunks[1]  # the local runner skips it
    assert scheduler._next_pending(1.0) is chunks[0]  # siblings get it


def test_a_completed_sibling_does_not_mark_its_chunk(clean_env):
    parsed = parse_job(synthetic_job(4))
    chunks = chunk_job(parsed, [2, 2])
    scheduler = scheduler_of(parsed, chunks)
    job = {
        "id": "s1",
        "input": sibling_input(parsed, chunks[0], return_records=False, cleanup=False),
    }
    output = asyncio.run(real_handler(job))
    scheduler._ended(
        Sibling("s1", chunks[0], 0.0), JobState(id="s1", status="COMPLETED", output=output)
    )
    assert not chunks[0].siblings_only
    assert scheduler.merger.results[:2] == output["results"]


@pytest.mark.parametrize(
    "error",
    [
        "invalid input: sibling.protocol: unknown field",  # an older worker
        "invalid input: sibling.protocol: this worker speaks sibling protocols [1, 2], got 3",
    ],
)
def test_a_worker_refusing_the_sibling_protocol_is_retried_without_counting(clean_env, error):
    """Rolling release: a worker on another image refuses the envelope; the chunk goes back (no
    failure counted, not siblings-only) up to PROTOCOL_REFUSALS_MAX times, then it counts."""
    from podfleet.coordinator.outcomes import PROTOCOL_REFUSALS_MAX

    parsed = parse_job(synthetic_job(4))
    chunks = chunk_job(parsed, [2, 2])
    scheduler = scheduler_of(parsed, chunks)
    data = sibling_input(parsed, chunks[0], return_records=False, cleanup=False)
    assert data["sibling"]["protocol"] == 2
    scheduler.cfg.run_local = False  # siblings only: every refusal goes back to the queue
    for n in range(PROTOCOL_REFUSALS_MAX):
        scheduler.pending.remove(chunks[0])
        state = JobState(id=f"s{n}", status="FAILED", error=error)
        scheduler._ended(Sibling(f"s{n}", chunks[0], 0.0), state)
        assert scheduler.pending[0] is chunks[0] and not chunks[0].siblings_only
        assert not scheduler.take_back
    assert scheduler.stats.retries == 0 and chunks[0].failures == 0
    assert scheduler.stats.protocol_refusals == PROTOCOL_REFUSALS_MAX
    scheduler.pending.remove(chunks[0])  # past the bound: an ordinary failed attempt
    scheduler._ended(Sibling("sx", chunks[0], 0.0), JobState(id="sx", status="FAILED", error=error))
    assert scheduler.stats.retries == 1 and chunks[0].siblings_only
    # any other failure is an attempt at once
    scheduler.pending.remove(chunks[1])
    other = JobState(id="sy", status="FAILED", error="invalid input: items.0.id: field required")
    scheduler._ended(Sibling("sy", chunks[1], 0.0), other)
    assert chunks[1].failures == 1 and scheduler.stats.protocol_refusals == PROTOCOL_REFUSALS_MAX


def test_a_chunk_refused_twice_for_its_protocol_runs_in_the_coordinator(clean_env):
    """A refusing worker answers at once and takes the next try: after the second refusal the
    chunk goes to the local runner (this process speaks the protocol it sent), not the queue."""
    parsed = parse_job(synthetic_job(4))
    chunks = chunk_job(parsed, [2, 2])
    scheduler = scheduler_of(parsed, chunks)
    error = "invalid input: sibling.protocol: unknown field"
    scheduler.pending.remove(chunks[0])
    scheduler._ended(Sibling("s0", chunks[0], 0.0), JobState(id="s0", status="FAILED", error=error))
    assert scheduler.pending[0] is chunks[0] and chunks[0].not_before_s > 0  # a sibling again
    scheduler.pending.remove(chunks[0])
    scheduler._ended(Sibling("s1", chunks[0], 0.0), JobState(id="s1", status="FAILED", error=error))
    assert list(scheduler.take_back) == [chunks[0]] and chunks[0] not in scheduler.pending
    assert chunks[0].failures == 0 and scheduler.stats.protocol_refusals == 2


def test_skipped_siblings(clean_env):
    """duplicate: the holder is polled instead; superseded: ignored while a later attempt is
    on its way, else tried again (not a failure); the skipped output itself is accepted."""
    from podfleet.coordinator.merge import parse_sibling_output

    parsed = parse_job(synthetic_job(4))
    chunks = chunk_job(parsed, [2, 2])
    scheduler = scheduler_of(parsed, chunks)
    skipped = {"ok": True, "items": 0, "results": [], "skipped": "duplicate", "duplicate_of": "h1"}
    assert parse_sibling_output(skipped, chunks[0], want_records=False).skipped == "duplicate"
    scheduler.pending.remove(chunks[0])
    scheduler._ended(
        Sibling("s2", chunks[0], 0.0), JobState(id="s2", status="COMPLETED", output=skipped)
    )
    assert list(scheduler.pool.in_flight) == ["h1"] and scheduler.stats.skipped_duplicate == 1
    assert scheduler.pool.in_flight["h1"].chunk is chunks[0] and scheduler.stats.retries == 0
    superseded = {"ok": True, "items": 0, "results": [], "skipped": "superseded"}
    done = JobState(id="s3", status="COMPLETED", output=superseded)
    scheduler._ended(Sibling("s3", chunks[0], 0.0), done)  # h1 is on it
    assert chunks[0] not in scheduler.pending and scheduler.stats.skipped_superseded == 1
    scheduler.pool.forget(scheduler.pool.in_flight["h1"])
    scheduler._ended(Sibling("s3", chunks[0], 0.0), done)  # nothing else is: again
    assert scheduler.pending[0] is chunks[0] and chunks[0].failures == 0


def test_an_empty_sibling_input_is_never_submitted(clean_env):
    from podfleet.api import BadRequest

    parsed = parse_job(synthetic_job(2))
    chunk = chunk_job(parsed, [2])[0]
    pool = scheduler_of(parsed, [chunk]).pool
    for payload in ({}, {"pipeline": "synthetic", "items": []}):
        reply = asyncio.run(pool._run_one(payload))
        assert isinstance(reply, BadRequest) and "no items" in str(reply)


def test_an_adopted_sibling_found_cancelled_is_tried_again_without_counting(clean_env):
    """A resumed fan-out adopts the siblings the ledger names; one the previous coordinator
    cancelled (at its deadline) is no failure of its chunk."""
    parsed = parse_job(synthetic_job(4))
    chunks = chunk_job(parsed, [2, 2])
    scheduler = scheduler_of(parsed, chunks)
    scheduler.pending.remove(chunks[0])
    sib = scheduler.pool.adopt("old-1", chunks[0])
    assert sib.adopted and scheduler.stats.siblings_adopted == 1
    scheduler.pool.forget(sib)
    scheduler._ended(sib, JobState(id="old-1", status="CANCELLED"))
    assert scheduler.pending[0] is chunks[0] and not chunks[0].siblings_only
    assert chunks[0].failures == 0 and scheduler.stats.retries == 0
    mine = Sibling("s2", chunks[1], 0.0)  # one of ours cancelled by someone else still counts
    scheduler.pending.remove(chunks[1])
    scheduler._ended(mine, JobState(id="s2", status="CANCELLED"))
    assert chunks[1].failures == 1 and chunks[1].siblings_only
