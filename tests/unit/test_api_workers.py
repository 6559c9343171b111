"""The REST v2 worker listing: RunPod's shape (runpod/docs api-reference-v2/openapi.json) parsed,
and requested at api.runpod.io for a real endpoint, at the same server for the emulator."""

from __future__ import annotations

import httpx
import pytest
from podfleet.api import EndpointClient, WorkersListing, WorkerStatus
from podfleet.api.client import rest_base_for

# The `listEndpointWorkers` 200 example of runpod/docs api-reference-v2/openapi.json.
RUNPOD_EXAMPLE = {
    "endpointVersion": 4,
    "summary": {
        "running": 1,
        "idle": 1,
        "initializing": 0,
        "throttled": 0,
        "unhealthy": 0,
        "total": 2,
    },
    "workers": [
        {
            "id": "8g3n5t6r",
            "status": "RUNNING",
            "isStale": False,
            "version": 4,
            "gpuCount": 1,
            "image": "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
            "uptimeSeconds": 3600,
            "gpuTypeId": "NVIDIA GeForce RTX 4090",
            "dataCenterId": "US-KS-2",
            "startedAt": "2026-06-01T12:05:00Z",
        },
        {"id": "old1", "status": "IDLE", "isStale": True, "version": 3, "gpuCount": 1},
        {"id": "new1", "status": "SOMETHING_NEW", "isStale": False, "gpuCount": 0},
    ],
}


def test_runpod_shape_is_parsed() -> None:
    listing = WorkersListing.from_wire(RUNPOD_EXAMPLE)
    assert listing.endpoint_version == 4
    assert listing.summary["total"] == 2
    first = listing.workers[0]
    assert first.status is WorkerStatus.RUNNING and first.uptime_s == 3600
    assert first.restarts is None  # RunPod does not send the emulator's additions
    assert [w.id for w in listing.stale] == ["old1"]
    assert listing.workers[2].status is WorkerStatus.UNKNOWN  # a state added later
    assert [w.id for w in listing.by_status(WorkerStatus.IDLE)] == ["old1"]


def test_garbage_is_tolerated() -> None:
    listing = WorkersListing.from_wire({"workers": "nope", "summary": [1]})
    assert listing.workers == [] and listing.summary == {}


@pytest.mark.parametrize(
    ("base", "rest"),
    [
        ("https://api.runpod.ai/v2", "https://api.runpod.io/v2"),
        ("https://api.runpod.ai/v2/", "https://api.runpod.io/v2"),
        ("http://127.0.0.1:8000/v2", "http://127.0.0.1:8000/v2"),
    ],
)
def test_rest_base(base: str, rest: str) -> None:
    assert rest_base_for(base) == rest


async def test_the_client_asks_the_rest_api_with_the_key() -> None:
    seen: list[httpx.Request] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=RUNPOD_EXAMPLE)

    async with EndpointClient(
        endpoint_id="ep1", api_key="k-123", transport=httpx.MockTransport(reply)
    ) as client:
        listing = await client.workers()
    assert str(seen[0].url) == "https://api.runpod.io/v2/serverless/ep1/workers"
    assert seen[0].headers["authorization"] == "Bearer k-123"
    assert listing.workers[0].id == "8g3n5t6r"
    assert "k-123" not in repr(client)


async def test_a_refused_connection_is_not_retried_when_asked() -> None:
    calls = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=request)

    from podfleet.api import ApiConnectionError

    async with EndpointClient(
        endpoint_id="ep1", transport=httpx.MockTransport(refuse), retry_connect=False
    ) as client:
        with pytest.raises(ApiConnectionError):
            await client.health()
    assert calls == 1
