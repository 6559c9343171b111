"""The FastAPI app's own contract (served by a real uvicorn, submitting directly): validation
errors name the field, OpenAPI lists the routes, a direct batch, unknown keys."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.caller.stack import wait_for

pytestmark = pytest.mark.emulator


def job(item_id: str) -> dict:
    return {"mode": "worker", "pipeline": "synthetic", "items": [{"id": item_id}]}


@pytest.mark.parametrize(
    ("body", "field", "expected"),
    [
        ({"input": {}}, "input", "must not be empty"),
        ({"input": {"a": 1}, "extra": 1}, "extra", "Extra inputs are not permitted"),
        ({"input": {"a": 1}, "idempotency_key": "bad key!"}, "idempotency_key", "pattern"),
        ({"input": {"a": 1}, "policy": {"ttl_s": -1}}, "ttl_s", "greater than 0"),
        ({"input": {"a": 1}, "priority": "urgent"}, "priority", "'normal' or 'high'"),
    ],
)
def test_bad_requests_name_the_field(stack, body, field, expected) -> None:
    r = httpx.post(f"{stack.direct_url}/jobs", json=body, timeout=10)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert field in [str(p) for p in detail["loc"]] and expected in detail["msg"], detail


def test_openapi_documents_every_route(stack) -> None:
    spec = httpx.get(f"{stack.direct_url}/openapi.json", timeout=10).json()
    paths = spec["paths"]
    for path in (
        "/jobs",
        "/jobs/batch",
        "/jobs/{key}",
        "/jobs/{key}/cancel",
        "/batches/{key}",
        "/health",
        "/connection-test",
        "/webhooks/runpod/{key}",
    ):
        assert path in paths, path
    assert "202" in paths["/jobs"]["post"]["responses"]
    schemas = set(spec["components"]["schemas"])
    assert {"JobRequest", "JobView", "BatchView", "HealthView"} <= schemas
    assert httpx.get(f"{stack.direct_url}/docs", timeout=10).status_code == 200


def test_unknown_keys_are_404(stack) -> None:
    for path in ("/jobs/nope-123", "/batches/nope-123"):
        r = httpx.get(f"{stack.direct_url}{path}", timeout=10)
        assert r.status_code == 404 and "unknown" in r.json()["detail"]
    assert httpx.post(f"{stack.direct_url}/jobs/nope-123/cancel", timeout=10).status_code == 404


def test_direct_batch_with_bounded_concurrency_and_wait(stack) -> None:
    items = [f"d{i}-{uuid.uuid4().hex[:6]}" for i in range(12)]
    key = f"batch-{uuid.uuid4().hex[:8]}"
    body = {"inputs": [job(i) for i in items], "idempotency_key": key}
    r = httpx.post(f"{stack.direct_url}/jobs/batch", json=body, timeout=60)
    assert r.status_code == 202, r.text
    assert all(v["job_id"] for v in r.json()["jobs"])  # direct: every job id in the 202
    again = httpx.post(f"{stack.direct_url}/jobs/batch", json=body, timeout=60)
    assert [v["job_id"] for v in again.json()["jobs"]] == [v["job_id"] for v in r.json()["jobs"]]
    other = {"inputs": [job("x")], "idempotency_key": key}
    assert httpx.post(f"{stack.direct_url}/jobs/batch", json=other, timeout=10).status_code == 409

    def done() -> dict | None:
        b = httpx.get(f"{stack.direct_url}/batches/{key}", timeout=30).json()
        return b if b["states"] == {"final": 12} else None

    b = wait_for(done, 90, "direct batch final", every_s=0.5)
    assert [v["output"]["results"][0]["id"] for v in b["jobs"]] == items
    assert [len(stack.submissions(i)) for i in items] == [1] * 12
    one = httpx.post(
        f"{stack.direct_url}/jobs", params={"wait_s": 30}, json={"input": job("w")}, timeout=60
    )
    assert one.status_code == 200 and one.json()["status"] == "COMPLETED"
