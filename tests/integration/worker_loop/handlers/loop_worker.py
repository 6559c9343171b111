"""Test worker: a fixture handler of tests/fixtures/handlers run through podfleet's worker loop.

    loop_worker.py slow|stream [--loop prompt|stock] [--concurrency N]

`slow` is slow_handler.py's handler (sleep, cancel, progress, fail, refresh); a job whose input
has `report_loop` also gets the name of the JobScaler class the SDK used. `stream` is
stream_handler.py's async generator.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "fixtures" / "handlers"))

import runpod
from podfleet.worker_loop import install_worker_loop
from runpod.serverless.modules import rp_scale


def option(name: str, default: str) -> str:
    args = sys.argv[1:]
    return args[args.index(name) + 1] if name in args else default


def slow_with_report():
    import slow_handler

    async def handler(job):
        out = await slow_handler.handler(job)
        if isinstance(out, dict) and job["input"].get("report_loop"):
            out["scaler"] = rp_scale.JobScaler.__name__
        return out

    return handler


if __name__ == "__main__":
    kind = sys.argv[1]
    concurrency = int(option("--concurrency", "1"))
    install_worker_loop(option("--loop", "prompt"))
    if kind == "slow":
        config = {"handler": slow_with_report(), "concurrency_modifier": lambda _: concurrency}
    else:
        import stream_handler

        config = {"handler": stream_handler.handler, "return_aggregate_stream": True}
    runpod.serverless.start(config)
