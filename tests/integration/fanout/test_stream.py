"""Per-item results through RunPod's `/stream` while a coordinator job runs: entries come as
chunks complete (each chunk's items together, in the order chunks finished, not input order),
each with its input index, the first of them before the job is COMPLETED; together they are
exactly the final output's results."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from e2e_helpers import chunk_rows, client_for, synthetic_input
from podfleet.api import EndpointClient

pytestmark = pytest.mark.emulator

N_ITEMS = 24  # 8 chunks of 3
ITEM_S = 0.3


async def _read_stream(emu: Any, job_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Every stream entry in arrival order, and the job's status at each post's arrival."""
    entries: list[dict[str, Any]] = []
    statuses: list[str] = []
    async with EndpointClient(
        endpoint_id=emu.endpoint_id, base_url=emu.base_url, api_key=emu.api_key
    ) as client:
        async for chunk in client.stream(job_id, interval_s=0.1, timeout_s=180):
            statuses.append(emu.job(job_id)["status"])
            assert isinstance(chunk, dict) and isinstance(chunk.get("items"), list), chunk
            entries.extend(chunk["items"])
    return entries, statuses


def test_stream_yields_results_in_completion_order_while_running(fleet):
    payload = synthetic_input(N_ITEMS, ITEM_S, workers=3)
    with client_for(fleet) as client:
        job = client.run(payload)
        entries, statuses = asyncio.run(_read_stream(fleet, job.id))
        final = client.wait(job.id, timeout_s=60, interval_s=0.5)
    assert final.status == "COMPLETED", final.error
    results = final.output["results"]
    assert len(results) == N_ITEMS and all(r is not None for r in results)

    assert entries, "nothing was streamed"
    assert statuses[0] == "IN_PROGRESS", statuses  # read while the job was still running
    indices = [e["index"] for e in entries]
    assert sorted(indices) == list(range(N_ITEMS)), "each item streamed exactly once"
    for e in entries:
        assert "error" not in e, e
        assert e["id"] == payload["items"][e["index"]]["id"], e
        assert e["result"] == results[e["index"]], e

    # completion order: each chunk's items arrive together, as that chunk finished
    chunk_of = {
        p: k for k, row in chunk_rows(fleet.db_url, job.id).items() for p in row["positions"]
    }
    assert len(chunk_of) == N_ITEMS, "the ledger has no chunk rows for this job"
    seen: list[int] = []
    for i in indices:
        if not seen or seen[-1] != chunk_of[i]:
            assert chunk_of[i] not in seen, f"chunk {chunk_of[i]}'s items came apart: {indices}"
            seen.append(chunk_of[i])
    assert len(seen) > 1
    # interleaved chunks (the default CHUNK_ORDER): completion order is not input order
    assert indices != sorted(indices), indices
