"""The coordinator's worker SIGKILLed mid-fan-out: the emulator re-queues the job (same id, so
the same fan-out id), the new run reads the ledger and resumes. Every item has exactly one
result, the output equals an uninterrupted run's, and no chunk finished before the kill ran
again (the ledger and the emulator's sibling jobs agree)."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from e2e_helpers import (
    chunk_rows,
    client_for,
    comparable,
    did_work,
    done_chunks,
    siblings_of,
    synthetic_input,
    wait_for,
)

pytestmark = pytest.mark.emulator

N_ITEMS = 36  # 12 chunks of 3 (CHUNK_SIZE=3), each ~1.2 s of work
ITEM_S = 0.4


def test_coordinator_killed_mid_fanout_resumes_from_the_ledger(fleet):
    payload = synthetic_input(N_ITEMS, ITEM_S, workers=3)
    with client_for(fleet) as client:
        job = client.run(payload)
        fanout_id = job.id  # no run_key: the RunPod job id
        running = wait_for(
            lambda: (j := fleet.job(job.id))["status"] == "IN_PROGRESS" and j["worker_id"] and j,
            60,
            "the coordinator job running",
        )
        coordinator_worker = running["worker_id"]
        # some chunks done, most not: the ledger as the coordinator and its siblings wrote it
        before = wait_for(
            lambda: (d := done_chunks(fleet.db_url, fanout_id)) and len(d) >= 3 and d,
            90,
            "three chunks done in the ledger",
        )
        total = len(chunk_rows(fleet.db_url, fanout_id))
        assert len(before) < total, "the fan-out finished before the kill; make it longer"
        fleet.kill_worker(coordinator_worker)
        killed_at = time.time()
        final = client.wait(job.id, timeout_s=180, interval_s=0.5)
        fleet.wait_idle(90)

        assert final.status == "COMPLETED", final.error
        info = fleet.job(job.id)
        assert info["retries"] == 1, "the emulator did not re-queue the coordinator job"
        out = final.output
        assert out["mode"] == "coordinator" and out["ok"] is True, out["errors"]
        # every item exactly one result, in input order
        assert [r["id"] for r in out["results"]] == [it["id"] for it in payload["items"]]
        assert out["items"] == out["succeeded"] == N_ITEMS and out["errors"] == []
        fan = out["fanout"]
        print(f"\n{len(before)} of {total} chunks done at the kill; fanout {fan}")
        assert fan.get("resumed") is True, fan
        assert fan.get("chunks_reused", 0) >= len(before), fan

        # the same input, uninterrupted (another run_key: another fan-out)
        again = client.run({**payload, "run_key": f"uninterrupted-{uuid.uuid4().hex[:8]}"})
        reference = client.wait(again.id, timeout_s=180, interval_s=0.5)
        fleet.wait_idle(90)
    assert reference.status == "COMPLETED", reference.error
    assert comparable(out) == comparable(reference.output)
    assert "resumed" not in reference.output["fanout"] or not reference.output["fanout"]["resumed"]

    # the ledger: every chunk done; a chunk done before the kill kept its attempt and siblings
    rows = chunk_rows(fleet.db_url, fanout_id)
    assert len(rows) == total and all(r["state"] == "done" for r in rows.values()), {
        k: r["state"] for k, r in rows.items()
    }
    positions = sorted(p for r in rows.values() for p in (r["positions"] or []))
    assert positions == list(range(N_ITEMS)), "the chunks do not cover each item once"
    for k, old in before.items():
        assert rows[k]["attempt"] == old["attempt"], f"chunk {k} was tried again after the kill"
        assert rows[k]["sibling_ids"] == old["sibling_ids"], f"chunk {k} got a new sibling"

    # the emulator: at most one sibling did each chunk's work, and it is one the ledger knows;
    # no sibling was created after the kill for a chunk that was done before it
    siblings = siblings_of(fleet, {job.id})
    workers_per_chunk = Counter(s["chunk"] for s in siblings if did_work(s))
    assert all(n == 1 for n in workers_per_chunk.values()), workers_per_chunk
    for s in siblings:
        if did_work(s):
            assert s["id"] in rows[s["chunk"]]["sibling_ids"], (s["id"], rows[s["chunk"]])
        if s["chunk"] in before:
            assert s["created_at"] < killed_at, f"chunk {s['chunk']} resubmitted after the kill"
    # chunks no sibling worked on were run by a coordinator itself (local runs), once
    local = set(rows) - set(workers_per_chunk)
    assert len(local) + len(workers_per_chunk) == total
