"""A simulation (not a measurement) of the coordinator's schedule, to ask "what if" questions the
fan-out benchmark cannot: how often would a run land within 1.15x the lower bound, for many
duration draws and item orders, if the gap between two sibling jobs on a worker were shorter?

Model: N executors; executor 0 is the coordinator (no gap), the others pay a gap drawn uniformly
from [0, 2 x --gap-s] before each chunk (the benchmark measured a mean of ~0.5 s: the SDK's post-job
pause plus the hand-over). Chunks are the coordinator's guided sizes with a settable divisor
(`ceil(left / (divisor x N))`; the coordinator uses 1.5), items dealt in a random order (what
CHUNK_ORDER=interleaved does), each chunk given to the executor that frees up first. Durations
are the benchmark's (log-normal, clipped to 0.2-5 s).

    python bench/sim_fanout.py [--workers 8] [--gap-s 0.5 0] [--divisors 1 1.5 2 3]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fanout import durations


def guided_sizes(n_items: int, workers: int, divisor: float) -> list[int]:
    sizes, left = [], n_items
    while left > 0:
        sizes.append(min(left, max(1, -int(-left // (divisor * workers)))))
        left -= sizes[-1]
    return sizes


def makespan_s(
    values: list[float], workers: int, sizes: list[int], order: list[int], gap_s: float, rng
) -> float:
    free_at = [0.0] * workers
    start = 0
    for size in sizes:
        work = sum(values[i] for i in order[start : start + size])
        start += size
        k = min(range(workers), key=free_at.__getitem__)
        free_at[k] += work if k == 0 else work + rng.uniform(0, 2 * gap_s)
    return max(free_at)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, nargs="+", default=[4, 8])
    p.add_argument("--items", type=int, default=120)
    p.add_argument("--gap-s", type=float, nargs="+", default=[0.5, 0.0])
    p.add_argument("--divisors", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0])
    p.add_argument("--draws", type=int, default=10, help="duration draws (seeds 7, 8, ...)")
    p.add_argument("--orders", type=int, default=30, help="item orders per draw")
    args = p.parse_args()
    print(
        f"{'N':>3} {'gap s':>6} {'divisor':>8} {'chunks':>7} {'mean/LB':>8} {'p90/LB':>7}  <=1.15"
    )
    for n, gap_s, divisor in (
        (n, g, d) for n in args.workers for g in args.gap_s for d in args.divisors
    ):
        sizes = guided_sizes(args.items, n, divisor)
        ratios = []
        for seed in range(7, 7 + args.draws):
            for kind in ("shuffled", "clustered"):
                values = durations(args.items, seed, 0.0, 1.0, kind)
                lower = max(sum(values) / n, max(values))
                for t in range(args.orders):
                    order = list(range(args.items))
                    random.Random(1000 + t).shuffle(order)
                    span = makespan_s(values, n, sizes, order, gap_s, random.Random(t))
                    ratios.append(span / lower)
        ratios.sort()
        within = sum(r <= 1.15 for r in ratios) / len(ratios)
        print(
            f"{n:>3} {gap_s:>6.2f} {divisor:>8.1f} {len(sizes):>7} "
            f"{sum(ratios) / len(ratios):>8.3f} {ratios[int(0.9 * len(ratios))]:>7.3f}"
            f"  {within:>5.0%}"
        )


if __name__ == "__main__":
    main()
