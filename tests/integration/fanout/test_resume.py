"""A fan-out run again after losing its coordinator resumes from the ledger: every item has
exactly one result, the output equals an uninterrupted run's, and no chunk finished before the
loss ran again (the ledger and the emulator's sibling jobs agree).

- the coordinator's worker SIGKILLed mid-fan-out: the emulator re-queues the job (same id, so
  the same fan-out id);
- a job by reference (items_from) with a run_key cancelled mid-fan-out, then resubmitted with
  the same run_key (a new job id, the same fan-out id)."""

from __future__ import annotations

import json
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
    synthetic_items,
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


def test_cancelled_then_resubmitted_with_the_same_run_key(fleet):
    n = 30  # 10 chunks of 3 rows
    path = fleet.home / f"resume-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_text("".join(json.dumps(it) + "\n" for it in synthetic_items(n, ITEM_S)))
    run_key = f"resubmit-{uuid.uuid4().hex[:8]}"
    payload = {
        "pipeline": "synthetic",
        "mode": "coordinator",
        "workers": 3,
        "items_from": {"jsonl": str(path)},
        "run_key": run_key,
    }
    fanout_id = f"run:{run_key}"
    with client_for(fleet) as client:
        first = client.run(payload)
        before = wait_for(
            lambda: (d := done_chunks(fleet.db_url, fanout_id)) and len(d) >= 3 and d,
            90,
            "three chunks done in the ledger",
        )
        total = len(chunk_rows(fleet.db_url, fanout_id))
        assert len(before) < total, "the fan-out finished before the cancel; make it longer"
        client.cancel(first.id)
        assert client.wait(first.id, timeout_s=60, interval_s=0.5).status == "CANCELLED"
        fleet.wait_idle(90)
        # the ledger as the cancelled run left it (siblings finishing late included)
        before = done_chunks(fleet.db_url, fanout_id)
        resubmitted_at = time.time()
        second = client.run(payload)
        final = client.wait(second.id, timeout_s=180, interval_s=0.5)
        reference = client.wait(
            client.run({**payload, "run_key": f"{run_key}-ref"}).id, timeout_s=180, interval_s=0.5
        )
        # the same run_key for other work (another source) is refused, naming run_key
        other = path.with_name(f"other-{path.name}")
        other.write_text(path.read_text())
        clash = {**payload, "items_from": {"jsonl": str(other)}}
        refused = client.wait(client.run(clash).id, timeout_s=60, interval_s=0.5)
        fleet.wait_idle(90)

    assert refused.status == "FAILED" and "run_key" in str(refused.error), refused
    assert final.status == "COMPLETED", final.error
    assert reference.status == "COMPLETED", reference.error
    out = final.output
    print(f"\n{len(before)} of {total} chunks done before the resubmission; {out['fanout']}")
    assert out["ok"] is True and [r["id"] for r in out["results"]] == [
        f"it-{i:05d}" for i in range(n)
    ]
    assert comparable(out) == comparable(reference.output)
    fan = out["fanout"]
    assert fan["resumed"] is True and fan["fanout_id"] == fanout_id, fan
    assert fan["chunks_reused"] >= len(before), fan

    rows = chunk_rows(fleet.db_url, fanout_id)
    assert all(r["state"] == "done" for r in rows.values())
    covered = sorted(p for r in rows.values() for p in range(r["ref"]["start"], r["ref"]["stop"]))
    assert covered == list(range(n)), "the chunks' row ranges do not cover each row once"
    for k, old in before.items():
        assert rows[k]["attempt"] == old["attempt"], f"chunk {k} was tried again"
    # the resubmitted job's siblings: none for a chunk done before, at most one worker per chunk
    siblings = siblings_of(fleet, {second.id})
    assert all(s["created_at"] >= resubmitted_at for s in siblings)
    assert not [s for s in siblings if s["chunk"] in before and did_work(s)]
    assert all(n == 1 for n in Counter(s["chunk"] for s in siblings if did_work(s)).values())
