"""Fan-out: the coordinator's dynamic scheduling against the seeds' static N-slice chunking.

Both run on the same emulated endpoint with N real SDK worker processes (`python handler.py`),
over the same synthetic items whose durations are heavy-tailed (log-normal, seeded, clipped to
0.2-5 s; items sleep, so the 2-core machine is not the bottleneck):
- dynamic: ONE coordinator job submitted to the endpoint. It runs inside one of the N workers,
  keeps up to N siblings in flight (guided chunk sizes), and works on chunks itself meanwhile;
- static:  the seeds' way: N sibling jobs (mode worker) submitted at once from outside, each a
  contiguous 1/N slice of the items, one per worker process (no coordinator holds a worker, the
  most favourable setting for static).
N = worker processes of the endpoint (the coordinator's own process included: it works too).
Makespan = first submit → last result posted (the emulator's clock; no client polling in it).
Lower bound = max(total work / N, longest item). Two item orders are run:
- shuffled:  durations in random order (i.i.d.);
- clustered: the same durations, sorted into runs of 10 similar items, runs in random order
  (slow items arriving together, e.g. one slow site's pages listed next to each other).

    python bench/bench_fanout.py [--workers 4 8] [--items 120] [--orders shuffled clustered]
                                 [--seeds 7] [--chunk-order interleaved] [--skip-static]
                                 [--worker-loop stock|prompt]
Writes bench/results/fanout.json (--out). --chunk-order sets the coordinator's CHUNK_ORDER;
--seeds runs every configuration once per duration draw; --worker-loop sets the workers'
WORKER_LOOP (default: the setting's default).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from podfleet.api import EndpointClient  # noqa: E402
from podfleet.emulator import EmulatorConfig, run_emulator  # noqa: E402

MIN_S, MAX_S = 0.2, 5.0


def durations(n: int, seed: int, mu: float, sigma: float, order: str) -> list[float]:
    rng = random.Random(seed)
    values = [round(min(MAX_S, max(MIN_S, rng.lognormvariate(mu, sigma))), 3) for _ in range(n)]
    if order == "clustered":
        values.sort()
        runs = [values[i : i + 10] for i in range(0, n, 10)]
        rng.shuffle(runs)
        values = [v for run in runs for v in run]
    return values


def items_of(values: list[float]) -> list[dict[str, Any]]:
    return [{"id": f"it-{i:04d}", "duration_s": d} for i, d in enumerate(values)]


def makespan_s(infos: list[dict[str, Any]]) -> float:
    start = min(j["created_at"] for j in infos)
    end = max(j["created_at"] + j["delay_s"] + j["execution_s"] for j in infos)
    return end - start


async def run_dynamic(emu: Any, items: list[dict], n: int) -> dict[str, Any]:
    before = {j["id"] for j in emu.jobs()}
    async with EndpointClient(
        endpoint_id=emu.endpoint_id, base_url=emu.base_url, api_key=emu.api_key
    ) as client:
        job = await client.run({"pipeline": "synthetic", "workers": n, "items": items})
        final = await client.wait(job.id, timeout_s=900, interval_s=1.0)
    emu.wait_idle(120)
    out = final.output or {}
    if final.status != "COMPLETED" or not out.get("ok"):
        raise RuntimeError(f"coordinator job ended {final.status}: {final.error or out}")
    info = emu.job(job.id)
    siblings = [j for j in emu.jobs() if j["id"] not in before and j["id"] != job.id]
    return {
        "makespan_s": makespan_s([info]),
        "fanout": out["fanout"],
        "siblings": len(siblings),
        "sibling_workers": worker_time(info, siblings),
    }


def worker_time(coordinator: dict[str, Any], siblings: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the sibling workers' time went between the coordinator's start and end: running
    siblings, between two siblings on one worker (the SDK's post-job pause, the hand-over, the
    coordinator noticing and submitting), before their first and after their last sibling."""
    start = coordinator["created_at"] + coordinator["delay_s"]
    end = start + coordinator["execution_s"]
    by_worker: dict[str, list[tuple[float, float]]] = {}
    for j in siblings:
        if j["delay_s"] is None or j["execution_s"] is None or not j["worker_id"]:
            continue  # taken back before a worker picked it up
        s0 = j["created_at"] + j["delay_s"]
        by_worker.setdefault(j["worker_id"], []).append((s0, s0 + j["execution_s"]))
    running = gaps = head = tail = 0.0
    n_gaps = 0
    for spans in by_worker.values():
        spans.sort()
        head += spans[0][0] - start
        tail += max(0.0, end - spans[-1][1])
        running += sum(b - a for a, b in spans)
        for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
            gaps += next_start - prev_end
            n_gaps += 1
    return {
        "workers_used": len(by_worker),
        "running_s": round(running, 2),
        "between_siblings_s": round(gaps, 2),
        "mean_gap_s": round(gaps / n_gaps, 3) if n_gaps else None,
        "before_first_s": round(head, 2),
        "after_last_s": round(tail, 2),
    }


async def run_static(emu: Any, items: list[dict], n: int) -> dict[str, Any]:
    size = len(items)
    slices = [items[k * size // n : (k + 1) * size // n] for k in range(n)]
    payloads = [
        {"mode": "worker", "pipeline": "synthetic", "items": part} for part in slices if part
    ]
    async with EndpointClient(
        endpoint_id=emu.endpoint_id, base_url=emu.base_url, api_key=emu.api_key
    ) as client:
        jobs = await client.submit_many(payloads, concurrency=len(payloads))
        finals = [await client.wait(j.id, timeout_s=900, interval_s=1.0) for j in jobs]
    emu.wait_idle(120)
    bad = [f for f in finals if f.status != "COMPLETED"]
    if bad:
        raise RuntimeError(f"static slice ended {bad[0].status}: {bad[0].error}")
    infos = [emu.job(j.id) for j in jobs]
    return {
        "makespan_s": makespan_s(infos),
        "slice_work_s": [sum(i["duration_s"] for i in s) for s in slices],
    }


def bench(n: int, orders: list[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    home = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    cfg = EmulatorConfig(
        workers=n,
        worker_log_path=home / "workers.log",
        worker_env={
            "LOG_LEVEL": "WARNING",
            "STATUS_POLL_INTERVAL_S": str(args.poll_s),
            "CHUNK_ORDER": args.chunk_order,
            **({"WORKER_LOOP": args.worker_loop} if args.worker_loop else {}),
        },
    )
    rows = []
    with run_emulator(cfg) as emu:
        emu.wait_ready(180)
        for seed, order in itertools.product(args.seeds, orders):
            values = durations(args.items, seed, args.mu, args.sigma, order)
            items = items_of(values)
            total, longest = sum(values), max(values)
            lower = max(total / n, longest)
            t0 = time.perf_counter()
            dyn = asyncio.run(run_dynamic(emu, items, n))
            sta = None if args.skip_static else asyncio.run(run_static(emu, items, n))
            row = {
                "workers": n,
                "order": order,
                "seed": seed,
                "chunk_order": args.chunk_order,
                "worker_loop": args.worker_loop or "default",
                "items": len(items),
                "total_work_s": round(total, 2),
                "longest_item_s": longest,
                "lower_bound_s": round(lower, 2),
                "dynamic_makespan_s": round(dyn["makespan_s"], 2),
                "dynamic_over_lower_bound": round(dyn["makespan_s"] / lower, 3),
                "fanout": dyn["fanout"],
                "sibling_workers": dyn["sibling_workers"],
            }
            line = (
                f"N={n:<2} {order:<9} seed {seed:<3} LB {lower:6.1f}s  "
                f"dynamic {dyn['makespan_s']:6.1f}s ({row['dynamic_over_lower_bound']:.3f}x LB)"
                f"  sibling gap {dyn['sibling_workers']['mean_gap_s']}s"
            )
            if sta is not None:
                row.update(
                    static_makespan_s=round(sta["makespan_s"], 2),
                    static_over_lower_bound=round(sta["makespan_s"] / lower, 3),
                    speedup_over_static=round(sta["makespan_s"] / dyn["makespan_s"], 3),
                    static_slice_work_s=[round(w, 1) for w in sta["slice_work_s"]],
                )
                line += (
                    f"  static {sta['makespan_s']:6.1f}s ({row['static_over_lower_bound']:.3f}x LB)"
                    f"  speed-up {row['speedup_over_static']:.2f}x"
                )
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            print(line, flush=True)
            rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, nargs="+", default=[4, 8])
    p.add_argument("--items", type=int, default=120)
    p.add_argument("--orders", nargs="+", default=["shuffled", "clustered"])
    p.add_argument("--seeds", type=int, nargs="+", default=[7], help="duration draws")
    p.add_argument("--chunk-order", choices=["interleaved", "contiguous"], default="interleaved")
    p.add_argument("--skip-static", action="store_true", help="dynamic only")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fanout.json")
    p.add_argument("--mu", type=float, default=0.0, help="log-normal mu (of ln seconds)")
    p.add_argument("--sigma", type=float, default=1.0, help="log-normal sigma")
    p.add_argument("--poll-s", type=float, default=0.25, help="STATUS_POLL_INTERVAL_S")
    p.add_argument("--worker-loop", choices=["stock", "prompt"], help="WORKER_LOOP of workers")
    args = p.parse_args()
    rows = []
    for n in args.workers:
        rows.extend(bench(n, args.orders, args))
    print()
    print(
        f"{'N':>3} {'order':<10} {'seed':>4} {'LB s':>7} {'dyn s':>7} {'dyn/LB':>7} "
        f"{'static s':>9} {'static/LB':>9} {'speed-up':>8}  chunks sib local taken retries"
    )
    for r in rows:
        f = r["fanout"]
        static = (
            f"{r['static_makespan_s']:>9.1f} {r['static_over_lower_bound']:>9.3f} "
            f"{r['speedup_over_static']:>8.2f}"
            if "static_makespan_s" in r
            else f"{'-':>9} {'-':>9} {'-':>8}"
        )
        print(
            f"{r['workers']:>3} {r['order']:<10} {r['seed']:>4} {r['lower_bound_s']:>7.1f} "
            f"{r['dynamic_makespan_s']:>7.1f} {r['dynamic_over_lower_bound']:>7.3f} {static}  "
            f"{f['chunks']:>6} {f['siblings_submitted']:>3} "
            f"{f['chunks_local']:>5} {f['taken_back']:>5} {f['retries']:>7}"
        )
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    params["duration_range_s"] = [MIN_S, MAX_S]
    out.write_text(json.dumps({"params": params, "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
