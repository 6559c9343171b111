"""Helpers of the fault campaign: job inputs, a patient client, the every-item-accounted check."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from podfleet.api import JobState, RetryPolicy, SyncEndpointClient

__all__ = [
    "accounted",
    "client_for",
    "closed_port",
    "submit_and_wait",
    "synthetic_input",
    "wait_for",
]


def synthetic_input(n: int, duration_s: float, *, workers: int = 4, **options: Any) -> dict:
    items = [{"id": f"it-{i:03d}", "duration_s": duration_s} for i in range(n)]
    return {
        "mode": "coordinator",
        "pipeline": "synthetic",
        "workers": workers,
        "items": items,
        "options": options,
    }


def client_for(emu: Any) -> SyncEndpointClient:
    """The test's own client is patient: the storms hit its calls too."""
    return SyncEndpointClient(
        endpoint_id=emu.endpoint_id,
        base_url=emu.base_url,
        api_key=emu.api_key,
        retry=RetryPolicy(max_retries=30, base_s=0.1, max_s=1.0),
    )


def submit_and_wait(
    emu: Any,
    payload: dict,
    *,
    timeout_s: float = 150,
    during: Callable[[str], None] | None = None,
    sync: bool = False,
) -> tuple[JobState, float, list[dict[str, Any]]]:
    """Run a coordinator job; returns its final state, seconds taken, and its siblings' infos.
    sync=True submits through /runsync (for storms on /run)."""
    t0 = time.monotonic()
    with client_for(emu) as client:
        if sync:
            final = client.runsync(payload, wait_s=min(timeout_s, 280))
        else:
            job = client.run(payload)
            if during is not None:
                during(job.id)
            final = client.wait(job.id, timeout_s=timeout_s, interval_s=0.5)
    elapsed_s = time.monotonic() - t0
    emu.wait_idle(90)
    siblings = [j for j in emu.jobs() if j["parent_id"] == final.id]
    return final, elapsed_s, siblings


def accounted(final: JobState, n: int) -> dict:
    """Every item has its result or its error, in input order; returns the output."""
    assert final.status == "COMPLETED", (final.status, final.error)
    out = final.output
    ids = [f"it-{i:03d}" for i in range(n)]
    assert out["items"] == n and len(out["results"]) == n
    errors = {e["item_id"]: e for e in out["errors"]}
    for item_id, result in zip(ids, out["results"], strict=True):
        assert (result is not None and result["id"] == item_id) or item_id in errors, item_id
    assert set(errors) <= set(ids)
    assert set(out.get("missing", [])) <= set(errors)
    return out


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"not within {timeout_s}s: {what}")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
