"""A `/run` the endpoint accepted but answered 5xx (fault `run_accepted_error_rate`): the
coordinator's client retries and a second sibling exists for the same chunk attempt. Whichever
claims the attempt in the ledger first does the work; the other returns `skipped` at once
(`duplicate`, or `done` if it starts after) without running the pipeline's stage."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from e2e_helpers import (
    chunk_rows,
    client_for,
    did_work,
    siblings_of,
    skipped,
    synthetic_input,
    wait_for,
)

pytestmark = pytest.mark.emulator

N_ITEMS = 30  # 10 chunks of 3
ITEM_S = 0.3


def test_accepted_but_5xx_run_duplicates_do_no_work(fleet):
    payload = synthetic_input(N_ITEMS, ITEM_S, workers=3)
    with client_for(fleet) as client:
        job = client.run(payload)  # answered: the fault starts after, the coordinator is single
        # the first sibling /run(s) surely accepted-but-502 (so retried: a duplicate), then half
        fleet.faults.run_accepted_error_rate = 1.0
        wait_for(lambda: siblings_of(fleet, {job.id}), 60, "a first sibling")
        fleet.faults.run_accepted_error_rate = 0.5
        final = client.wait(job.id, timeout_s=180, interval_s=0.5)
        fleet.faults.run_accepted_error_rate = 0.0
    fleet.wait_idle(90)  # duplicates still queued when the job ended run (and skip) too

    assert final.status == "COMPLETED", final.error
    out = final.output
    assert out["ok"] is True and out["errors"] == [], out["errors"]
    assert [r["id"] for r in out["results"]] == [it["id"] for it in payload["items"]]

    siblings = siblings_of(fleet, {job.id})
    by_chunk: dict[int, list[dict]] = defaultdict(list)
    for s in siblings:
        by_chunk[s["chunk"]].append(s)
    duplicated = {k: v for k, v in by_chunk.items() if len(v) > 1}
    assert duplicated, "no /run was duplicated: the fault did not bite"

    refused = [s for s in siblings if skipped(s)]
    print(f"\nduplicated chunks {sorted(duplicated)}; skipped {[skipped(s) for s in refused]}")
    assert refused, [(s["chunk"], s["status"], s["output"]) for s in siblings]
    for s in refused:
        o = s["output"]
        assert o["skipped"] in ("duplicate", "superseded", "done"), o
        # returned at once: no item ran, the stage never started
        assert o["items"] == 0 and o["results"] == [], o
        assert "work" not in (o.get("timings_s") or {}), o

    # each chunk's work was done once: by one sibling, or by the coordinator itself
    workers_per_chunk = Counter(s["chunk"] for s in siblings if did_work(s))
    assert all(n == 1 for n in workers_per_chunk.values()), workers_per_chunk
    rows = chunk_rows(fleet.db_url, job.id)
    assert rows and all(r["state"] == "done" for r in rows.values())
    assert sum(r["duplicates"] for r in rows.values()) >= len(refused)
    fan = out["fanout"]
    assert fan["chunks_failed"] == 0, fan
    # what the coordinator saw of them (a duplicate it never heard of is the ledger's alone)
    seen = fan["skipped_done"] + fan["skipped_duplicate"] + fan["skipped_superseded"]
    assert seen <= len(refused), fan
    assert fan["duplicates_refused"] <= sum(r["duplicates"] for r in rows.values()), fan
