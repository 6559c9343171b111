"""Fan-out at scale: the coordinator's memory and API request rate against the item count, and
the time to resume after losing the coordinator against the time of a full re-run.

One emulated endpoint: the coordinator's own SDK worker process (WORKER_CONCURRENCY=1, worker-0)
plus `--processes` sibling worker processes sharing `--workers` slots (WORKER_CONCURRENCY =
workers / processes), one SQLite database (the chunk ledger). Items are synthetic, read by
reference from a JSON Lines file (`items_from`), 0 ms each, so the coordinator's own cost is what
grows with the item count. For each size the coordinator runs in a fresh process (worker-0 is
restarted and the job steered to it), sampled with psutil every 0.1 s:
- scale: peak RSS of the coordinator's process (and its idle baseline), the job's wall time,
  and the emulator's request counters over the job (all requests/s, mean and peak; /status and
  /run peak per 10 s against RunPod's published limits, runpod-protocol.md §3). The growth
  should be flat in items: the coordinator holds counts and chunk ranges, not items or results.
- resume: `--resume-items` items of `--resume-item-s` each; a full uninterrupted run, then the
  same input under another run_key with the coordinator's worker SIGKILLed when about half of
  the items are done (progress), re-queued by the emulator and resumed from the ledger: the
  time from the kill to COMPLETED against the full run's time (what a re-run without the
  ledger would cost again).

    python bench/bench_fanout_scale.py [--items 1000 10000 100000] [--workers 100]
        [--processes 2] [--resume-items 20000] [--resume-item-s 0.05]
        [--out bench/results/fanout_scale.json]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from podfleet.api import RetryPolicy, SyncEndpointClient  # noqa: E402
from podfleet.emulator import EmulatorConfig, run_emulator  # noqa: E402

COORDINATOR = "worker-0"


class RssSampler:
    """Peak RSS of one process, sampled every `interval_s` in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.baseline = self.proc.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def write_items(path: Path, n: int, duration_s: float) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"it-{i:07d}", "duration_s": duration_s}) + "\n")
    return path


def client_for(emu: Any) -> SyncEndpointClient:
    return SyncEndpointClient(
        endpoint_id=emu.endpoint_id,
        base_url=emu.base_url,
        api_key=emu.api_key,
        retry=RetryPolicy(max_retries=20, base_s=0.1, max_s=1.0),
    )


def coordinator_worker(emu: Any) -> dict[str, Any]:
    return next(w for w in emu.workers() if w["id"] == COORDINATOR)


def fresh_coordinator(emu: Any) -> dict[str, Any]:
    """Restart worker-0 (idle) so each measurement starts from a new process."""
    old = coordinator_worker(emu)
    emu.kill_worker(COORDINATOR, busy=False, sig=signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        w = coordinator_worker(emu)
        if w["pid"] != old["pid"] and w["state"] == "idle" and w["polling"]:
            return w
        time.sleep(0.2)
    raise TimeoutError(f"{COORDINATOR} did not come back: {coordinator_worker(emu)}")


def submit_to_coordinator(emu: Any, client: SyncEndpointClient, payload: dict) -> str:
    """Submit `payload` so that worker-0 runs it (the others are throttled until it starts)."""
    emu.faults.max_workers = 1
    try:
        job = client.run(payload)
        deadline = time.monotonic() + 60
        while emu.job(job.id)["worker_id"] != COORDINATOR:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{COORDINATOR} did not take job {job.id}")
            time.sleep(0.02)
    finally:
        emu.faults.max_workers = None
    return job.id


def final_output(final: Any) -> dict[str, Any]:
    out = final.output or {}
    if final.status != "COMPLETED" or not out.get("ok"):
        raise RuntimeError(f"job ended {final.status}: {final.error or str(out)[:2000]}")
    return out


def scale_row(emu: Any, n: int, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    path = write_items(home / f"items-{n}.jsonl", n, 0.0)
    payload = {
        "pipeline": "synthetic",
        "mode": "coordinator",
        "workers": args.workers,
        "items_from": {"jsonl": str(path)},
    }
    worker = fresh_coordinator(emu)
    with client_for(emu) as client, RssSampler(worker["pid"]) as rss:
        t0 = time.time()
        job_id = submit_to_coordinator(emu, client, payload)
        out = final_output(client.wait(job_id, timeout_s=args.timeout_s, interval_s=1.0))
        t1 = time.time()
    emu.wait_idle(120)
    req = emu.request_stats(since=t0, until=t1)
    if out["items"] != n or out["succeeded"] != n:
        raise RuntimeError(f"{n} items: output counts {out['items']}/{out['succeeded']}")
    fan = out["fanout"]
    return {
        "items": n,
        "elapsed_s": round(t1 - t0, 2),
        "rss_baseline_mb": round(rss.baseline / 2**20, 1),
        "rss_peak_mb": round(rss.peak / 2**20, 1),
        "rss_growth_mb": round((rss.peak - rss.baseline) / 2**20, 1),
        "output_bytes": len(json.dumps(out)),
        "chunks": fan["chunks"],
        "siblings_submitted": fan["siblings_submitted"],
        "chunks_local": fan["chunks_local"],
        "requests_total": req["all"]["total"],
        "requests_mean_per_s": req["all"]["mean_per_s"],
        "requests_peak_per_s": req["all"]["peak_per_s"],
        "client_ops": {op: req[op] for op in ("run", "status", "stream", "cancel") if op in req},
        "fanout": fan,
    }


def progress_items(emu: Any, job_id: str) -> int:
    progress = emu.job(job_id).get("progress")
    return progress.get("items_done", 0) if isinstance(progress, dict) else 0


def resume_row(emu: Any, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    n = args.resume_items
    path = write_items(home / "resume.jsonl", n, args.resume_item_s)
    base = {
        "pipeline": "synthetic",
        "mode": "coordinator",
        "workers": args.workers,
        "items_from": {"jsonl": str(path)},
    }
    tag = uuid.uuid4().hex[:8]
    with client_for(emu) as client:
        fresh_coordinator(emu)
        t0 = time.time()
        full_id = submit_to_coordinator(emu, client, {**base, "run_key": f"full-{tag}"})
        final_output(client.wait(full_id, timeout_s=args.timeout_s, interval_s=0.5))
        full_s = time.time() - t0
        emu.wait_idle(120)

        fresh_coordinator(emu)
        t0 = time.time()
        job_id = submit_to_coordinator(emu, client, {**base, "run_key": f"killed-{tag}"})
        deadline = time.monotonic() + args.timeout_s
        while progress_items(emu, job_id) < n * args.kill_at:
            if emu.job(job_id)["status"] != "IN_PROGRESS" or time.monotonic() > deadline:
                raise RuntimeError(f"job {job_id} ended before {args.kill_at:.0%} was done")
            time.sleep(0.05)
        done_at_kill = progress_items(emu, job_id)
        emu.kill_worker(COORDINATOR)
        killed_at = time.time()
        out = final_output(client.wait(job_id, timeout_s=args.timeout_s, interval_s=0.5))
        resumed_s = time.time() - killed_at
        emu.wait_idle(120)
    info = emu.job(job_id)
    if info["retries"] != 1:
        raise RuntimeError(f"the coordinator job was not re-queued: {info['retries']} retries")
    return {
        "items": n,
        "item_s": args.resume_item_s,
        "full_run_s": round(full_s, 2),
        "killed_after_s": round(killed_at - t0, 2),
        "items_done_at_kill": done_at_kill,
        "kill_to_completed_s": round(resumed_s, 2),
        "resume_over_full": round(resumed_s / full_s, 3),
        "interrupted_total_s": round(time.time() - t0, 2),
        "fanout": out["fanout"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, nargs="+", default=[1000, 10_000, 100_000])
    p.add_argument("--workers", type=int, default=100, help="sibling slots (the job's workers)")
    p.add_argument("--processes", type=int, default=2, help="sibling worker processes")
    p.add_argument("--resume-items", type=int, default=20_000, help="0: skip the resume run")
    p.add_argument("--resume-item-s", type=float, default=0.05)
    p.add_argument("--kill-at", type=float, default=0.5, help="fraction of items done")
    p.add_argument("--poll-s", type=float, default=0.5, help="STATUS_POLL_INTERVAL_S")
    p.add_argument("--timeout-s", type=float, default=1800)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fanout_scale.json")
    args = p.parse_args()
    if args.workers < args.processes or args.processes < 1:
        p.error("--workers must be at least --processes (>= 1)")
    home = Path(tempfile.mkdtemp(prefix="bench-fanout-scale-"))
    slots = -(-args.workers // args.processes)
    cfg = EmulatorConfig(
        workers=1,
        max_job_retries=1,  # the killed coordinator's job is re-queued, as on RunPod
        lost_after_s=15,
        restart_backoff_s=0.2,
        unhealthy_after_crashes=1000,  # worker-0 is restarted on purpose before every run
        worker_log_path=home / "workers.log",
        worker_env={
            "DATABASE_URL": f"sqlite:///{home}/bench.db",
            "ITEMS_FROM_ROOTS": str(home),
            "INFER_FITNESS_CHECK": "false",
            "LOG_LEVEL": "WARNING",
            "STATUS_POLL_INTERVAL_S": str(args.poll_s),
            "PICKUP_TIMEOUT_S": "60",
            "WORKER_CONCURRENCY": "1",
        },
    )
    rows: list[dict[str, Any]] = []
    resume: dict[str, Any] | None = None
    with run_emulator(cfg) as emu:
        emu.wait_ready(180)
        emu.add_workers(args.processes, env={"WORKER_CONCURRENCY": str(slots)})
        emu.wait_ready(300, count=1 + args.processes)
        for n in args.items:
            row = scale_row(emu, n, args, home)
            rows.append(row)
            print(
                f"{n:>7} items  {row['elapsed_s']:7.1f} s  RSS peak {row['rss_peak_mb']:6.1f} MB "
                f"(+{row['rss_growth_mb']:.1f})  {row['requests_mean_per_s']:7.1f} req/s mean, "
                f"{row['requests_peak_per_s']} peak  {row['chunks']} chunks",
                flush=True,
            )
        if args.resume_items:
            resume = resume_row(emu, args, home)
            r = resume
            print(
                f"resume: full run {r['full_run_s']} s; killed at {r['killed_after_s']} s"
                f" ({r['items_done_at_kill']} items done), then {r['kill_to_completed_s']}"
                f" s to COMPLETED ({r['resume_over_full']:.2f}x the full run)",
                flush=True,
            )
    print()
    print(
        f"{'items':>7} {'wall s':>7} {'RSS MB':>7} {'+RSS MB':>8} {'req/s':>7} {'peak/s':>7} "
        f"{'status/10s':>10} {'run/10s':>8} {'chunks':>6} {'local':>5} {'out KB':>7}"
    )
    for r in rows:
        ops = r["client_ops"]
        st = ops.get("status", {}).get("peak_per_10s", 0)
        run = ops.get("run", {}).get("peak_per_10s", 0)
        print(
            f"{r['items']:>7} {r['elapsed_s']:>7.1f} {r['rss_peak_mb']:>7.1f} "
            f"{r['rss_growth_mb']:>8.1f} {r['requests_mean_per_s']:>7.1f} "
            f"{r['requests_peak_per_s']:>7} {st:>10} {run:>8} {r['chunks']:>6} "
            f"{r['chunks_local']:>5} {r['output_bytes'] / 1000:>7.1f}"
        )
    print("(RunPod's limits per 10 s: /status 2000, /run 1000)")
    if resume:
        print(
            f"\n{'resume':<8} {'items':>7} {'full s':>7} {'kill->done s':>12} {'ratio':>6} "
            f"{'reused':>6}"
        )
        print(
            f"{'':<8} {resume['items']:>7} {resume['full_run_s']:>7.1f} "
            f"{resume['kill_to_completed_s']:>12.1f} {resume['resume_over_full']:>6.2f} "
            f"{resume['fanout'].get('chunks_reused', '-'):>6}"
        )
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    params["slots_per_process"] = slots
    params["cpus"] = psutil.cpu_count()
    out.write_text(json.dumps({"params": params, "rows": rows, "resume": resume}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
