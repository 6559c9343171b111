"""A rolling release: one worker of the endpoint runs an "older image" that speaks only sibling
protocol 1. A protocol-2 sibling it takes fails at once with an error naming `sibling.protocol`
(not a differently-shaped result), and the coordinator retries that chunk elsewhere; such
refusals do not use up the chunk's SIBLING_MAX_RETRIES. The output is complete."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import (
    chunk_rows,
    client_for,
    db_url_of,
    did_work,
    emulator_config,
    siblings_of,
    synthetic_input,
    wait_for,
)

pytestmark = pytest.mark.emulator

N_ITEMS = 16  # 8 chunks of 2
ITEM_S = 0.4


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """worker-0 (the coordinator's), worker-1 and worker-2 on the new image, worker-3 on the old
    one (with a single new-image sibling worker the old one, refusing in milliseconds, took ~80 %
    of all tries and a chunk came within a few refusals of PROTOCOL_REFUSALS_MAX)."""
    from podfleet.emulator import run_emulator

    home = tmp_path_factory.mktemp("fanout-rolling")
    # SIBLING_MAX_RETRIES=1: a chunk refused twice by the old worker would fail if refusals
    # counted as attempts
    cfg = emulator_config(home, 3, worker_env={"CHUNK_SIZE": "2", "SIBLING_MAX_RETRIES": "1"})
    with run_emulator(cfg) as emu:
        emu.wait_ready(120)
        (old,) = emu.add_workers(1, env={"PODFLEET_TEST_SIBLING_PROTOCOLS": "1"})
        emu.wait_ready(120, count=4)
        emu.old_worker = old
        emu.db_url = db_url_of(home)
        yield emu


def test_sibling_refused_for_its_protocol_is_retried_elsewhere(mixed):
    payload = synthetic_input(N_ITEMS, ITEM_S, workers=4)
    mixed.faults.max_workers = 1  # the coordinator job goes to worker-0 (new image)
    with client_for(mixed) as client:
        job = client.run(payload)
        running = wait_for(
            lambda: (j := mixed.job(job.id))["status"] == "IN_PROGRESS" and j,
            60,
            "the coordinator running",
        )
        assert running["worker_id"] == "worker-0"
        mixed.faults.max_workers = None  # siblings go to worker-1, -2 and the old -3
        final = client.wait(job.id, timeout_s=180, interval_s=0.5)
    mixed.wait_idle(90)

    assert final.status == "COMPLETED", final.error
    out = final.output
    assert out["ok"] is True and out["errors"] == [], out["errors"]
    assert [r["id"] for r in out["results"]] == [it["id"] for it in payload["items"]]
    fan = out["fanout"]
    assert fan["chunks_failed"] == 0, fan

    siblings = siblings_of(mixed, {job.id})
    on_old = [s for s in siblings if s["worker_id"] == mixed.old_worker]
    per_chunk = Counter(s["chunk"] for s in on_old)
    print(f"\n{len(on_old)} of {len(siblings)} siblings refused by the old image {per_chunk}")
    assert on_old, "the old worker took no sibling; nothing was tested"
    for s in on_old:
        assert s["status"] == "FAILED", s
        assert "sibling.protocol" in str(s["error"]), s["error"]
        assert s["output"] is None or not s["output"].get("results"), s["output"]
    assert fan["protocol_refusals"] == len(on_old), fan  # each seen, retried, not an attempt
    # each refused chunk was then done once: by a later new-image sibling, or by the coordinator
    rows = chunk_rows(mixed.db_url, job.id)
    for s in on_old:
        row = rows[s["chunk"]]
        assert row["state"] == "done", row
        order = row["sibling_ids"]
        workers = [w for w in siblings if w["chunk"] == s["chunk"] and did_work(w)]
        assert len(workers) <= 1, workers
        if workers:
            assert order.index(workers[0]["id"]) > order.index(s["id"]), order
