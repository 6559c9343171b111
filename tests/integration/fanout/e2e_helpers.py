"""Helpers of the end-to-end fan-out tests: emulator configs, job inputs, the chunk ledger as the
workers wrote it, and which sibling jobs did work."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from podfleet.api import RetryPolicy, SyncEndpointClient

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
OLD_IMAGE_WORKER = HERE / "old_image_worker.py"

# Every worker of these tests: synthetic jobs only (no model at start-up), quick polls.
WORKER_ENV = {
    "INFER_FITNESS_CHECK": "false",
    "STATUS_POLL_INTERVAL_S": "0.2",
    "PICKUP_TIMEOUT_S": "8",
    "SIBLING_MAX_RETRIES": "2",
    "LOG_LEVEL": "INFO",
}


def emulator_config(home: Path, workers: int, **overrides: Any) -> Any:
    """An emulator on `workers` SDK worker processes sharing one SQLite database in `home`
    (the ledger's), running the wrapper that can play an older image (off unless asked)."""
    from podfleet.emulator import EmulatorConfig

    env = {"DATABASE_URL": db_url_of(home), **WORKER_ENV, **overrides.pop("worker_env", {})}
    fields: dict[str, Any] = {
        "workers": workers,
        "max_job_retries": 1,  # a job whose worker died is re-queued once, as on RunPod
        "lost_after_s": 15,
        "restart_backoff_s": 0.2,
        "shutdown_grace_s": 10,
        "worker_log_path": home / "workers.log",
        "worker_cmd": [sys.executable, "-u", str(OLD_IMAGE_WORKER)],
        "worker_env": env,
    }
    fields.update(overrides)
    return EmulatorConfig(**fields)


def db_url_of(home: Path) -> str:
    return f"sqlite:///{home}/fanout.db"


def client_for(emu: Any) -> SyncEndpointClient:
    return SyncEndpointClient(
        endpoint_id=emu.endpoint_id,
        base_url=emu.base_url,
        api_key=emu.api_key,
        retry=RetryPolicy(max_retries=20, base_s=0.1, max_s=1.0),
    )


def synthetic_items(n: int, duration_s: float) -> list[dict[str, Any]]:
    return [{"id": f"it-{i:05d}", "duration_s": duration_s} for i in range(n)]


def synthetic_input(
    n: int, duration_s: float, *, workers: int, run_key: str | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "pipeline": "synthetic",
        "mode": "coordinator",
        "workers": workers,
        "items": synthetic_items(n, duration_s),
    }
    if run_key is not None:
        payload["run_key"] = run_key
    return payload


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"not within {timeout_s}s: {what}")


def _decode(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def chunk_rows(db_url: str, fanout_id: str) -> dict[int, dict[str, Any]]:
    """The ledger's chunk rows of one fan-out, by chunk, read straight from the table (a reader
    racing the workers' writers retries on a locked SQLite file)."""
    engine = sa.create_engine(db_url, connect_args={"timeout": 30})
    try:
        for attempt in range(20):
            try:
                with engine.connect() as conn:
                    if not sa.inspect(conn).has_table("fanout_chunks"):
                        return {}
                    table = sa.Table("fanout_chunks", sa.MetaData(), autoload_with=conn)
                    rows = conn.execute(sa.select(table).where(table.c.fanout_id == fanout_id))
                    out = {}
                    for row in rows:
                        r = dict(row._mapping)
                        for key in ("positions", "ref", "sibling_ids", "outcome"):
                            r[key] = _decode(r.get(key))
                        out[r["chunk"]] = r
                    return out
            except sa.exc.OperationalError:
                if attempt == 19:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()
    return {}


def done_chunks(db_url: str, fanout_id: str) -> dict[int, dict[str, Any]]:
    return {k: r for k, r in chunk_rows(db_url, fanout_id).items() if r["state"] == "done"}


def siblings_of(emu: Any, parent_ids: set[str]) -> list[dict[str, Any]]:
    """The emulator's sibling jobs submitted by the coordinator job(s) `parent_ids`."""
    return [j for j in emu.jobs() if j["parent_id"] in parent_ids]


def skipped(job: dict[str, Any]) -> str | None:
    out = job.get("output")
    return out.get("skipped") if isinstance(out, dict) else None


def did_work(job: dict[str, Any]) -> bool:
    """A sibling that ran its chunk's items: COMPLETED with an output that was not a refused
    claim (`skipped`)."""
    return job["status"] == "COMPLETED" and isinstance(job["output"], dict) and not skipped(job)


def comparable(output: dict[str, Any]) -> dict[str, Any]:
    """What an uninterrupted run and a resumed one must agree on."""
    return {k: output.get(k) for k in ("ok", "items", "succeeded", "results", "errors")}
