"""A real SDK worker whose (non-generator) handler streams per-item entries with ResultStream.

Input: {"n": items added one at a time, "delay_s": pause between them, "burst": entries added
in one call after those, "big": add one entry of more than 1 MB, "errors_every": every k-th
item is an error entry}. Returns what it added, so a test can compare it with what /stream gave.
"""

from __future__ import annotations

import asyncio
from typing import Any

from podfleet.coordinator.stream import ResultStream
from podfleet.sdk_import import import_sdk


def entry(i: int, errors_every: int) -> dict[str, Any]:
    if errors_every and i % errors_every == errors_every - 1:
        error = {"stage": "transform", "message": f"item {i} refused", "retryable": False}
        return {"index": i, "id": f"item-{i}", "error": error}
    return {"index": i, "id": f"item-{i}", "result": {"value": i * i}}


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    spec = job["input"]
    n, delay_s = int(spec.get("n", 10)), float(spec.get("delay_s", 0.1))
    burst, errors_every = int(spec.get("burst", 0)), int(spec.get("errors_every", 0))
    stream = ResultStream(job, enabled=True)
    try:
        for i in range(n):
            stream.add([entry(i, errors_every)])
            await asyncio.sleep(delay_s)
        stream.add([entry(i, errors_every) for i in range(n, n + burst)])
        if spec.get("big"):
            stream.add([{"index": n + burst, "id": "big", "result": {"blob": "x" * 1_200_000}}])
    finally:
        await stream.aclose()
    total = n + burst + (1 if spec.get("big") else 0)
    return {"streamed": total, "enabled": stream.enabled, "posts": stream.posts}


if __name__ == "__main__":
    import_sdk().serverless.start({"handler": handler})
