"""100,000 synthetic items read by reference from a JSON Lines file, fanned out with
`workers: 100`: the coordinator on its own SDK worker process (WORKER_CONCURRENCY=1), ~100
sibling slots in two more processes (WORKER_CONCURRENCY=50). Every item is accounted for (the
output's counts, and 100,000 ordered slots in the ledger), the output stays far below RunPod's
10 MB, no client API operation exceeds RunPod's rate limits, and the coordinator's peak RSS and
the API requests/s are reported (printed, and build/test-artifacts/fanout-scale.json)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from e2e_helpers import REPO, client_for, db_url_of, emulator_config, wait_for

pytestmark = pytest.mark.emulator

N_ITEMS = 100_000
SLOTS_PER_PROCESS = 50
SIBLING_PROCESSES = 2
MAX_OUTPUT_BYTES = 10_000_000  # RunPod's /run result limit (runpod-protocol.md §3)
ARTIFACT = REPO / "build" / "test-artifacts" / "fanout-scale.json"


class RssSampler:
    """Peak RSS of one process, sampled every `interval_s` in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.baseline = self.proc.memory_info().rss
        self.peak = self.baseline
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
                self.samples += 1
            except psutil.Error:
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def write_items(path: Path, n: int) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(f'{{"id": "it-{i:06d}", "duration_s": 0}}\n')


@pytest.fixture(scope="module")
def scale_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from podfleet.emulator import run_emulator

    home = tmp_path_factory.mktemp("fanout-scale")
    cfg = emulator_config(
        home,
        1,
        worker_env={
            "ITEMS_FROM_ROOTS": str(home),
            "WORKER_CONCURRENCY": "1",
            "PICKUP_TIMEOUT_S": "60",  # the sibling processes start after the coordinator
            "STATUS_POLL_INTERVAL_S": "0.5",
            "LOG_LEVEL": "WARNING",
        },
    )
    with run_emulator(cfg) as emu:
        emu.wait_ready(120)
        emu.home = home
        emu.db_url = db_url_of(home)
        yield emu


def test_100k_items_by_reference_bounded_coordinator(scale_fleet):
    emu = scale_fleet
    items_path = emu.home / "items.jsonl"
    write_items(items_path, N_ITEMS)
    payload = {
        "pipeline": "synthetic",
        "mode": "coordinator",
        "workers": SIBLING_PROCESSES * SLOTS_PER_PROCESS,
        "items_from": {"jsonl": str(items_path)},
    }
    (coordinator,) = emu.workers()
    t0 = time.time()
    with client_for(emu) as client, RssSampler(coordinator["pid"]) as rss:
        job = client.run(payload)
        wait_for(
            lambda: emu.job(job.id)["worker_id"] == coordinator["id"], 60, "coordinator running"
        )
        added = emu.add_workers(
            SIBLING_PROCESSES, env={"WORKER_CONCURRENCY": str(SLOTS_PER_PROCESS)}
        )
        emu.wait_ready(180, count=1 + len(added))
        final = client.wait(job.id, timeout_s=600, interval_s=1.0)
    t1 = time.time()
    emu.wait_idle(120)
    requests = emu.request_stats(since=t0, until=t1)

    assert final.status == "COMPLETED", final.error
    out = final.output
    size = len(json.dumps(out))
    report = {
        "items": N_ITEMS,
        "workers": payload["workers"],
        "sibling_processes": SIBLING_PROCESSES,
        "slots_per_process": SLOTS_PER_PROCESS,
        "elapsed_s": round(t1 - t0, 1),
        "coordinator_rss_baseline_mb": round(rss.baseline / 2**20, 1),
        "coordinator_rss_peak_mb": round(rss.peak / 2**20, 1),
        "rss_samples": rss.samples,
        "output_bytes": size,
        "fanout": out.get("fanout"),
        "requests": {
            op: requests[op]
            for op in ("run", "status", "stream", "cancel", "job-take", "job-done", "all")
            if op in requests
        },
    }
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"\nfanout scale: {N_ITEMS} items in {report['elapsed_s']} s; coordinator RSS peak "
        f"{report['coordinator_rss_peak_mb']} MB (baseline {report['coordinator_rss_baseline_mb']}"
        f" MB); requests/s mean {requests['all']['mean_per_s']}, peak "
        f"{requests['all']['peak_per_s']}; status peak/10 s "
        f"{requests.get('status', {}).get('peak_per_10s')}; output {size} bytes -> {ARTIFACT}"
    )

    # every item accounted for, none inline: the results stay in the ledger
    assert out["ok"] is True, out["errors"][:5]
    assert out["items"] == N_ITEMS and out["succeeded"] == N_ITEMS, out
    assert out["results"] == [] and out["errors"] == []
    where = out["results_at"]
    assert where["ledger"] == "fanout_chunks" and where["fanout_id"] == job.id, where
    from podfleet.pipeline.store.ledger import Ledger

    ledger = Ledger(emu.db_url)
    expected = 0
    for position, result in ledger.iter_results(job.id):
        assert position == expected, f"slot {expected} missing or out of order"
        assert result is not None and result["id"] == f"it-{position:06d}", (position, result)
        expected += 1
    assert expected == N_ITEMS

    # bounded cost: the output is small, and the API was used within RunPod's rate limits
    assert size < MAX_OUTPUT_BYTES
    for op in ("run", "status", "cancel"):
        if op in requests:
            stats = requests[op]
            assert stats["peak_per_10s"] <= stats["limit_per_10s"], (op, stats)
    assert out["fanout"]["siblings_submitted"] >= 1
