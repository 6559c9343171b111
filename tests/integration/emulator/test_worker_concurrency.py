"""WORKER_CONCURRENCY: one real SDK worker (our handler.py) runs several jobs at once, in the
prompt loop and in the SDK's stock loop; the emulator's batched take, heartbeats listing several
jobs, and a worker death re-queueing every job it held. Workers are added after start-up with
`Emulator.add_workers(n, env=...)`."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from podfleet.emulator import run_emulator

from tests.integration.emulator.helpers import client_for, config, synthetic

JOBS = 4
SLEEP_S = 4.0


def _spans(events: list[dict], job_ids: list[str]) -> dict[str, list[tuple[float, float]]]:
    """Per job, its (assign, done) times from the emulator's timeline (one per attempt)."""
    spans: dict[str, list[tuple[float, float]]] = {j: [] for j in job_ids}
    started: dict[str, float] = {}
    for ev in events:
        job = ev["job"]
        if job not in spans:
            continue
        if ev["kind"] == "assign":
            started[job] = ev["t_s"]
        elif ev["kind"] == "done" and job in started:
            spans[job].append((started.pop(job), ev["t_s"]))
    return spans


@pytest.mark.parametrize("loop", ["prompt", "stock"])
def test_one_worker_runs_n_jobs_at_once(tmp_path: Path, loop: str) -> None:
    with run_emulator(config(tmp_path, workers=0)) as emu, client_for(emu) as c:
        assert emu.workers() == []
        added = emu.add_workers(1, env={"WORKER_CONCURRENCY": str(JOBS), "WORKER_LOOP": loop})
        assert added == ["worker-0"]
        emu.wait_ready(60, count=1, polling=True)
        ids = [c.post("/run", json=synthetic(f"c{i}", SLEEP_S)).json()["id"] for i in range(JOBS)]
        emu.wait_idle(90)
        for job_id in ids:
            job = emu.job(job_id)
            assert job["status"] == "COMPLETED" and job["worker_id"] == "worker-0", job
        spans = _spans(emu.events(), ids)
        assert all(len(s) == 1 for s in spans.values()), spans
        starts = [s[0][0] for s in spans.values()]
        ends = [s[0][1] for s in spans.values()]
        # every job started before any ended: all four ran at the same time on one worker
        assert max(starts) < min(ends), spans
        stats = emu.request_stats()
        assert stats["job-take-batch"]["total"] >= 1  # an idle worker asks for several at once
        assert stats["job-done"]["total"] >= JOBS  # results (and progress updates)


def test_heartbeats_list_every_job_and_a_death_requeues_them_all(tmp_path: Path) -> None:
    cfg = config(tmp_path, workers=0, lost_after_s=30, max_job_retries=1)
    with run_emulator(cfg) as emu, client_for(emu) as c:
        emu.add_workers(1, env={"WORKER_CONCURRENCY": str(JOBS)})
        emu.wait_ready(60, count=1, polling=True)
        ids = [c.post("/run", json=synthetic(f"h{i}", 30.0)).json()["id"] for i in range(JOBS)]

        def holds_all(workers: list[dict]) -> bool:
            return bool(workers) and sorted(workers[0]["heartbeat_jobs"]) == sorted(ids)

        # the heartbeat (job_id=a,b,c,d) lists all four; the emulator has them on the worker
        emu.wait_workers(holds_all, 30)
        assert sorted(emu.workers()[0]["jobs"]) == sorted(ids)
        emu.kill_worker("worker-0", sig=signal.SIGKILL)
        emu.wait_health(lambda h: h["jobs"]["retried"] >= JOBS, 30)
        # the restarted worker (same extra environment) takes all four again, at once
        emu.wait_workers(lambda ws: len(ws[0]["jobs"]) == JOBS and ws[0]["restarts"] >= 1, 60)
        for job_id in ids:
            assert c.post(f"/cancel/{job_id}").json()["status"] == "CANCELLED"
        emu.wait_idle(60)
        for job_id in ids:
            job = emu.job(job_id)
            assert job["retries"] == 1 and job["attempts"] == 2, job


def test_concurrency_modifier_is_a_constant_and_refuses_nonsense() -> None:
    from podfleet.main import concurrency_modifier

    modifier = concurrency_modifier(4)
    assert [modifier(n) for n in (1, 4, 9)] == [4, 4, 4]  # never None (None crashes the SDK)
    for bad in (0, -1, None, True, 2.5):
        with pytest.raises(ValueError, match="WORKER_CONCURRENCY"):
            concurrency_modifier(bad)  # type: ignore[arg-type]
