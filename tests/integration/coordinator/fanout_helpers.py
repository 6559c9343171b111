"""Helpers of the coordinator integration tests: job inputs, table rows, tolerant comparison."""

from __future__ import annotations

import copy
import json
import math
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from podfleet.api import RetryPolicy, SyncEndpointClient

REPO = Path(__file__).resolve().parents[3]
VOLATILE_COLUMNS = {"job_id", "updated_at"}  # which job wrote a row, and when: differ by design


def flashpoints_input(copies: int = 4, *, cleanup: bool = False, workers: int = 4) -> dict:
    """test_input.json's flashpoints, `copies` times over under new ids (3 per copy)."""
    base = json.loads((REPO / "test_input.json").read_text())["input"]
    items = []
    for n in range(copies):
        for item in base["items"]:
            item = copy.deepcopy(item)
            item["id"] = f"{item['id']}-{n}"
            item["title"] = f"{item['title']} ({n})"
            items.append(item)
    return {**base, "items": items, "cleanup": cleanup, "workers": workers}


def synthetic_input(n: int, duration_s: float, *, workers: int = 4, **options: Any) -> dict:
    items = [{"id": f"it-{i:03d}", "duration_s": duration_s} for i in range(n)]
    return {"pipeline": "synthetic", "workers": workers, "items": items, "options": options}


def table_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """flashpoints and documents rows, without the volatile columns, sorted by key."""
    engine = sa.create_engine(url)
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for name in ("flashpoints", "documents"):
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            cols = [c for c in table.columns if c.name not in VOLATILE_COLUMNS]
            rows = [dict(r._mapping) for r in conn.execute(sa.select(*cols))]
            key = [c.name for c in table.primary_key.columns]
            out[name] = sorted(rows, key=lambda r, key=key: [str(r[k]) for k in key])
    engine.dispose()
    return out


def assert_close(a: Any, b: Any, path: str = "", rel: float = 1e-3) -> None:
    """Equal, except floats (and float32 vectors stored as bytes) within `rel`: batched inference
    pads differently when the batch holds other items, which moves the 6th decimal."""
    if isinstance(a, bytes) and isinstance(b, bytes) and len(a) == len(b) and len(a) % 4 == 0:
        a, b = array("f", a).tolist(), array("f", b).tolist()
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float), path
        assert math.isclose(a, b, rel_tol=rel, abs_tol=rel), f"{path}: {a} != {b}"
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{path}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}", rel)
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        assert len(a) == len(b), f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]", rel)
    else:
        assert a == b, f"{path}: {a!r:.200} != {b!r:.200}"


def client_for(emu: Any, *, max_retries: int = 20) -> SyncEndpointClient:
    """A patient client: the tests inject 429 storms that hit the test's own polls too."""
    return SyncEndpointClient(
        endpoint_id=emu.endpoint_id,
        base_url=emu.base_url,
        api_key=emu.api_key,
        retry=RetryPolicy(max_retries=max_retries, base_s=0.1, max_s=1.0),
    )


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"not within {timeout_s}s: {what}")
