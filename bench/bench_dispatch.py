"""Dispatch overhead of the emulator: submit → COMPLETED for a no-op job, 1 and 4 SDK workers,
with the SDK's stock worker loop and with podfleet's prompt loop (WORKER_LOOP), side by side.

Scenarios, per worker count and loop (real `python handler.py` workers, synthetic no-op item):
- warm:       one job at a time, submitted while every worker holds a job-take open — the
              emulator's own dispatch path plus the SDK's handling, without its post-job pause;
- back2back:  one job at a time, the next submitted as soon as the previous one COMPLETED;
              with 1 worker and the stock loop it lands in the SDK's ~1 s pause after each job;
- burst:      all jobs at once; makespan and jobs/s.
The post-job pause is measured on its own: per worker, the gap between its job-done post and its
next job-take request (from the emulator's event timeline).
Peer in the same run: the in-process mode (handler called directly, no SDK, no HTTP hop to a
worker), same no-op job — the floor of what the queue itself costs.

    python bench/bench_dispatch.py [--jobs 30] [--workers 1 4] [--loops stock prompt]
Writes bench/results/dispatch.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from podfleet.emulator import EmulatorConfig, run_emulator, run_in_process  # noqa: E402

JOB = {"input": {"mode": "worker", "pipeline": "synthetic", "items": [{"id": "noop"}]}}


def stats_ms(values_s: list[float]) -> dict[str, float]:
    if not values_s:
        return {"n": 0}
    ordered = sorted(values_s)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(p90 * 1000, 1),
        "min_ms": round(ordered[0] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def post_job_pauses(events: list[dict]) -> list[float]:
    """Per worker: job-done → that worker's next job-take request."""
    last_done: dict[str, float] = {}
    gaps = []
    for e in events:
        if e["kind"] == "done":
            last_done[e["worker"]] = e["t_s"]
        elif e["kind"] == "take" and e["worker"] in last_done:
            gaps.append(e["t_s"] - last_done.pop(e["worker"]))
    return gaps


def run_sdk(workers: int, jobs: int, tmp: Path, loop: str) -> dict:
    cfg = EmulatorConfig(
        workers=workers,
        worker_env={
            "INFER_FITNESS_CHECK": "false",
            "DATABASE_URL": f"sqlite:///{tmp / 'b.db'}",
            "WORKER_LOOP": loop,
        },
        worker_log_path=tmp / f"workers-{workers}-{loop}.log",
    )
    out: dict = {}
    with run_emulator(cfg) as emu, httpx.Client(base_url=emu.url, timeout=60) as c:
        emu.wait_ready(120)
        c.post("/runsync", json=JOB)  # warm-up: first-job imports
        emu.wait_idle(60)

        def one() -> tuple[float, dict]:
            t0 = time.perf_counter()
            job_id = c.post("/run", json=JOB).json()["id"]
            emu.wait_job(job_id, timeout_s=60)
            elapsed = time.perf_counter() - t0
            return elapsed, c.get(f"/status/{job_id}").json()

        warm, delays, execs = [], [], []
        for _ in range(jobs):
            emu.wait_ready(60, polling=True)
            elapsed, body = one()
            assert body["status"] == "COMPLETED", body
            warm.append(elapsed)
            delays.append(body["delayTime"] / 1000)
            execs.append(body["executionTime"] / 1000)
        out["warm"] = stats_ms(warm)
        out["warm_delayTime"] = stats_ms(delays)
        out["warm_executionTime"] = stats_ms(execs)

        back = [one()[0] for _ in range(jobs)]
        out["back2back"] = stats_ms(back)

        emu.wait_ready(60, polling=True)
        t0 = time.perf_counter()
        ids = [c.post("/run", json=JOB).json()["id"] for _ in range(jobs)]
        emu.wait_idle(300)
        makespan = time.perf_counter() - t0
        statuses = {c.get(f"/status/{i}").json()["status"] for i in ids}
        assert statuses == {"COMPLETED"}, statuses
        out["burst"] = {
            "jobs": jobs,
            "makespan_s": round(makespan, 2),
            "jobs_per_s": round(jobs / makespan, 2),
        }
        out["post_job_pause"] = stats_ms(post_job_pauses(emu.events()))
    return out


async def run_peer(workers: int, jobs: int) -> dict:
    async def noop(job):
        return {"ok": True}

    out: dict = {}
    config = EmulatorConfig(workers=workers)
    async with run_in_process(config, handler=noop) as emu, emu.client(timeout=60) as c:
        warm = []
        for _ in range(jobs):
            t0 = time.perf_counter()
            job_id = (await c.post("/run", json=JOB)).json()["id"]
            await emu.wait_job(job_id, timeout_s=60)
            warm.append(time.perf_counter() - t0)
        out["warm"] = stats_ms(warm)
        t0 = time.perf_counter()
        for _ in range(jobs):
            await c.post("/run", json=JOB)
        await emu.wait_idle(60)
        makespan = time.perf_counter() - t0
        out["burst"] = {
            "jobs": jobs,
            "makespan_s": round(makespan, 4),
            "jobs_per_s": round(jobs / makespan, 1),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--loops", nargs="+", choices=("stock", "prompt"), default=["stock", "prompt"]
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dispatch.json")
    args = parser.parse_args()
    results: dict = {"jobs": args.jobs, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            sdk = {loop: run_sdk(workers, args.jobs, Path(tmp), loop) for loop in args.loops}
            peer = asyncio.run(run_peer(workers, args.jobs))
            results["runs"][str(workers)] = {"sdk_workers": sdk, "in_process_peer": peer}

    print(f"dispatch overhead, no-op synthetic job, {args.jobs} jobs per scenario")
    head = f"{'workers':>7} {'loop':<6} {'scenario':<20} {'median ms':>10} {'p90 ms':>8}"
    print(f"{head}  {'vs peer':>8}")
    for workers, run in results["runs"].items():
        peer = run["in_process_peer"]
        ref = peer["warm"]["median_ms"]
        for loop, sdk in run["sdk_workers"].items():
            rows = [
                ("warm", sdk["warm"], ref),
                ("  delayTime", sdk["warm_delayTime"], None),
                ("  executionTime", sdk["warm_executionTime"], None),
                ("back-to-back", sdk["back2back"], ref),
                ("post-job pause", sdk["post_job_pause"], None),
            ]
            for name, s, r in rows:
                ratio = f"{s['median_ms'] / r:.0f}x" if r else ""
                print(
                    f"{workers:>7} {loop:<6} {name:<20} {s['median_ms']:>10} {s['p90_ms']:>8}"
                    f"  {ratio:>8}"
                )
            b = sdk["burst"]
            print(
                f"{workers:>7} {loop:<6} {'burst':<20} {b['jobs_per_s']:>7} jobs/s, "
                f"makespan {b['makespan_s']} s"
            )
        print(f"{workers:>7} {'peer':<6} {'warm (in-process)':<20} {ref:>10}")
        peer_rate = peer["burst"]["jobs_per_s"]
        print(f"{workers:>7} {'peer':<6} {'burst (in-process)':<20} {peer_rate:>7} jobs/s")
        sdk = run["sdk_workers"]
        if {"stock", "prompt"} <= sdk.keys():
            stock, prompt = sdk["stock"]["back2back"], sdk["prompt"]["back2back"]
            faster = stock["median_ms"] / max(prompt["median_ms"], 0.1)
            run["back2back_stock_over_prompt"] = round(faster, 1)
            print(
                f"{workers:>7} back-to-back: stock {stock['median_ms']} ms, prompt "
                f"{prompt['median_ms']} ms ({faster:.1f}x)"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
