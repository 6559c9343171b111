"""Billed worker-seconds: the coordinator's dynamic fan-out against the seeds' static N slices,
on the fan-out benchmark's workload (bench_fanout.py: heavy-tailed synthetic items, seeded).

Each scheme runs on a fresh emulated endpoint that scales as RunPod's does: workersMin 0,
workersMax N, a worker starts (real process start-up plus --cold-start) when a job is queued
and no worker is free, and stops after --idle-timeout s idle. RunPod bills a worker from its
start to its stop (cold start, running and idle time until the idle timeout); the emulator
accounts exactly that, so after the endpoint is back at zero workers its bill is the run's cost.
Also shown: what N always-on workers (workersMin = N) would bill over the same makespan.

    python bench/bench_billing.py [--workers 4] [--items 120] [--seeds 7] [--orders clustered]
                                  [--idle-timeout 5] [--cold-start 0]
Writes bench/results/billing.json (--out).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_fanout import durations, items_of, run_dynamic, run_static  # noqa: E402
from podfleet.emulator import EmulatorConfig, run_emulator  # noqa: E402


def endpoint(n: int, args: argparse.Namespace, home: Path) -> EmulatorConfig:
    cfg = EmulatorConfig(
        workers=n,
        workers_min=0,
        idle_timeout_s=args.idle_timeout,
        worker_log_path=home / "workers.log",
        worker_env={
            "LOG_LEVEL": "WARNING",
            "INFER_FITNESS_CHECK": "false",
            "STATUS_POLL_INTERVAL_S": "0.5",
            "DATABASE_URL": f"sqlite:///{home}/billing.db",
        },
    )
    cfg.faults.cold_start_s = args.cold_start
    return cfg


def run_scheme(scheme: str, items: list[dict], n: int, args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix=f"bench-billing-{scheme}-"))
    with run_emulator(endpoint(n, args, home)) as emu:
        t0 = time.monotonic()
        run = run_dynamic if scheme == "dynamic" else run_static
        result = asyncio.run(run(emu, items, n))
        done_s = time.monotonic() - t0
        # the bill closes when the last worker has idled out (scale to zero)
        emu.wait_until(lambda: not emu._state.workers_info(), args.idle_timeout * 4 + 60)
        bill = emu.billing()
        state = emu._state
        workers_started = emu._call(lambda: sum(w.gen for w in state.workers.values()))
        jobs = emu.snapshot()["jobs"]
    billed_jobs = sum(j["billed_s"] or 0 for j in jobs)
    return {
        "makespan_s": round(result["makespan_s"], 2),
        "submit_to_done_s": round(done_s, 2),
        "billed_worker_s": bill["workerSeconds"],
        "running_s": bill["runningSeconds"],
        "idle_s": bill["idleSeconds"],  # cold start and idle until the idle timeout
        "jobs_execution_s": round(billed_jobs, 2),
        "workers_started": workers_started,
        "always_on_worker_s": round(n * result["makespan_s"], 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[4])
    p.add_argument("--items", type=int, default=120)
    p.add_argument("--seeds", type=int, nargs="+", default=[7])
    p.add_argument("--orders", nargs="+", default=["clustered"], choices=["shuffled", "clustered"])
    p.add_argument("--mu", type=float, default=0.0)
    p.add_argument("--sigma", type=float, default=0.9)
    p.add_argument("--idle-timeout", type=float, default=5.0, help="RunPod's default: 5 s")
    p.add_argument("--cold-start", type=float, default=0.0, help="added to process start-up")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "billing.json")
    args = p.parse_args()
    rows = []
    for n, seed, order in itertools.product(args.workers, args.seeds, args.orders):
        values = durations(args.items, seed, args.mu, args.sigma, order)
        items = items_of(values)
        row: dict[str, Any] = {
            "workers": n,
            "seed": seed,
            "order": order,
            "items": len(items),
            "total_work_s": round(sum(values), 2),
            "idle_timeout_s": args.idle_timeout,
            "cold_start_s": args.cold_start,
        }
        for scheme in ("dynamic", "static"):
            row[scheme] = run_scheme(scheme, items, n, args)
        d, s = row["dynamic"], row["static"]
        row["static_over_dynamic_billed"] = round(s["billed_worker_s"] / d["billed_worker_s"], 3)
        print(
            f"N={n} {order:<9} seed {seed}: work {row['total_work_s']:.1f}s | "
            f"dynamic billed {d['billed_worker_s']:.1f} worker-s (run {d['running_s']:.1f} + "
            f"idle {d['idle_s']:.1f}), makespan {d['makespan_s']:.1f}s | "
            f"static billed {s['billed_worker_s']:.1f} worker-s (run {s['running_s']:.1f} + "
            f"idle {s['idle_s']:.1f}), makespan {s['makespan_s']:.1f}s | "
            f"static/dynamic {row['static_over_dynamic_billed']:.2f}x",
            flush=True,
        )
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": sys.argv, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
