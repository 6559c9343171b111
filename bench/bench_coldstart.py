"""Cold start of a worker: process start → first job-take, and → first job answered.

Two worker kinds, each started the way it was before the cold-start work ("before") and as it
is now ("after"), side by side in one run, one real SDK worker process against the emulator:
- no-model: its registered pipelines use no model (synthetic only); first job: one synthetic item;
- flashpoints: the built-in pipelines (flashpoints needs the model); first job: ./test_input.json
  in worker mode (3 flashpoints, inline pages: extract, embed, store).
"before" is the previous start-up, kept here as the baseline (like the stock loop in
bench_dispatch): a plain `import runpod` (its CPU probe starts two extra interpreters), the model
fitness check whenever INFER_FITNESS_CHECK is on whatever the pipelines need, the model loaded
only once the SDK has imported. "after" is `podfleet.main.main()`.
The first job is queued before the worker starts, so "first job answered" includes its take.
Times are the emulator's: its spawn of the process → the worker's first job-take request / job-done.

    python bench/bench_coldstart.py [--runs 3] [--kinds no-model flashpoints]
Writes bench/results/coldstart.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SYNTHETIC_MODULE = "podfleet.pipeline.pipelines.synthetic"
KINDS = ("no-model", "flashpoints")
VERSIONS = ("before", "after")


def first_job(kind: str) -> dict:
    if kind == "no-model":
        return {"input": {"mode": "worker", "pipeline": "synthetic", "items": [{"id": "cold"}]}}
    body = json.loads((ROOT / "test_input.json").read_text())
    return {"input": {**body["input"], "mode": "worker"}}


# --- the worker side (this file run with --as-worker) ------------------------------------------


def _only_synthetic() -> None:
    from podfleet.pipeline import registry

    registry.configure(builtins=False, modules=[SYNTHETIC_MODULE])


def _worker_before() -> None:
    """The start-up as it was (handler/main.py, handler/fitness.py before the cold-start work)."""
    from podfleet.logs import configure_logging
    from podfleet.settings import load_settings

    settings = load_settings()
    configure_logging(settings)
    import runpod
    from podfleet.entry import handler

    async def model_fitness_check() -> None:
        from podfleet.pipeline.infer import warm_up
        from podfleet.worker import RESOURCES, pipeline_config

        await warm_up(pipeline_config(load_settings()).infer, RESOURCES)

    if settings.infer_fitness_check:
        runpod.serverless.register_fitness_check(model_fitness_check)
    runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})


def as_worker(version: str, kind: str) -> None:
    if kind == "no-model":
        _only_synthetic()
    if version == "before":
        _worker_before()
    else:
        from podfleet.main import main

        main()


# --- the measuring side ------------------------------------------------------------------------


def measure(version: str, kind: str, tmp: Path, env: dict[str, str]) -> dict[str, float]:
    import httpx
    from podfleet.emulator import EmulatorConfig, run_emulator

    cmd = [sys.executable, "-u", str(Path(__file__).resolve()), "--as-worker", version, kind]
    cfg = EmulatorConfig(
        workers=1,
        worker_cmd=cmd,
        worker_cwd=ROOT,
        worker_env={"DATABASE_URL": f"sqlite:///{tmp / f'{version}-{kind}.db'}", **env},
        worker_log_path=tmp / f"{version}-{kind}.log",
        ready_timeout_s=300,
        shutdown_grace_s=10,
    )
    with run_emulator(cfg) as emu, httpx.Client(base_url=emu.url, timeout=60) as client:
        job_id = client.post("/run", json=first_job(kind)).json()["id"]
        emu.wait_job(job_id, timeout_s=300)
        status = client.get(f"/status/{job_id}").json()
        if status["status"] != "COMPLETED":
            raise RuntimeError(f"{version}/{kind}: first job {status['status']}: {status}")
        # The emulator's own clock: when it spawned the worker (private: no public field yet).
        started = emu._call(lambda: emu._state.workers["worker-0"].started_at)
        events = emu.events()
    take = min(e["t_s"] for e in events if e["kind"] == "take")
    done = min(e["t_s"] for e in events if e["kind"] == "done" and e["job"] == job_id)
    return {"first_take_s": round(take - started, 2), "first_job_s": round(done - started, 2)}


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {"runs": len(rows)}
    for key in ("first_take_s", "first_job_s"):
        values = [r[key] for r in rows]
        out[f"{key}_median"] = round(statistics.median(values), 2)
        out[f"{key}_min"] = min(values)
        out[f"{key}_max"] = max(values)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="starts per kind and version")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "coldstart.json")
    parser.add_argument("--as-worker", nargs=2, metavar=("VERSION", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.as_worker:
        as_worker(*args.as_worker)
        return

    load_1m = {"start": os.getloadavg()[0]}
    results: dict = {"runs": args.runs, "kinds": {}, "load_average_1m": load_1m}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            raw: dict[str, list[dict[str, float]]] = {v: [] for v in VERSIONS}
            for _ in range(args.runs):
                for version in VERSIONS:  # interleaved, so load drifts hit both alike
                    raw[version].append(measure(version, kind, Path(tmp), {}))
            results["kinds"][kind] = {v: {**summarize(r), "raw": r} for v, r in raw.items()}
    results["elapsed_s"] = round(time.perf_counter() - t0, 1)
    results["load_average_1m"]["end"] = os.getloadavg()[0]

    load = results["load_average_1m"]
    print(f"cold start, one SDK worker, {args.runs} starts each (median, min-max), seconds")
    print(f"load average (1 min): {load['start']:.1f} at start, {load['end']:.1f} at end")
    print(f"{'worker':<12} {'version':<7} {'first job-take':>20} {'first job answered':>20}")
    for kind, by_version in results["kinds"].items():
        for version, s in by_version.items():
            take = f"{s['first_take_s_median']} ({s['first_take_s_min']}-{s['first_take_s_max']})"
            job = f"{s['first_job_s_median']} ({s['first_job_s_min']}-{s['first_job_s_max']})"
            print(f"{kind:<12} {version:<7} {take:>20} {job:>20}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
