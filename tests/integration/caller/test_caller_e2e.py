"""End to end with real parts: uvicorn (FastAPI) -> Celery worker (Redis broker) -> emulator ->
SDK worker processes (`python handler.py`, synthetic pipeline) -> result back through FastAPI.

Every test counts the emulator's jobs for its items: each must have been submitted exactly once.
"""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from podfleet.integrations.celery import submit_task_id

from tests.integration.caller.stack import wait_for

pytestmark = pytest.mark.emulator


def job(item_id: str, duration_s: float = 0.0) -> dict:
    items = [{"id": item_id, "duration_s": duration_s}]
    return {"mode": "worker", "pipeline": "synthetic", "items": items}


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def wait_final(url: str, key: str, timeout_s: float = 90, refresh: bool = False) -> dict:
    """Poll the app until the key is final; refresh=False: the app only reads its ledger, so
    the result came back through Celery's wait task or the job's webhook."""

    def final() -> dict | None:
        params = {"refresh": "true" if refresh else "false"}
        body = httpx.get(f"{url}/jobs/{key}", params=params, timeout=10).json()
        return body if body.get("state") == "final" else None

    return wait_for(final, timeout_s, f"job {key} final", every_s=0.25)


def test_fastapi_to_celery_to_emulator_and_back(stack) -> None:
    item = uid("e2e")
    r = httpx.post(f"{stack.celery_url}/jobs", json={"input": job(item, 0.2)}, timeout=10)
    assert r.status_code == 202, r.text
    view = r.json()
    assert view["state"] == "queued" and view["status_url"] == f"/jobs/{view['key']}"
    done = wait_final(stack.celery_url, view["key"])
    assert done["status"] == "COMPLETED", done
    assert done["output"]["ok"] is True
    assert done["output"]["results"] == [{"id": item, "duration_s": 0.2}]
    assert done["job_id"] and done["duplicates"] == []
    assert stack.submissions(item) == [done["job_id"]]
    task = stack.celery.AsyncResult(submit_task_id(view["key"])).get(timeout=10)
    assert task == {"key": view["key"], "job_id": done["job_id"], "outcome": "submitted"}
    expires_s = stack.config.result_expires_s  # both results expire as configured
    r = redis.Redis.from_url(stack.setup["redis_url"])
    assert 0 < r.ttl(f"celery-task-meta-{submit_task_id(view['key'])}") <= expires_s
    assert 0 < r.ttl(f"{stack.config.key_prefix}:job:{view['key']}") <= expires_s


def test_same_idempotency_key_twice_is_one_job(stack) -> None:
    item, key = uid("idem"), uid("key")
    body = {"input": job(item), "idempotency_key": key}
    first = httpx.post(f"{stack.celery_url}/jobs", json=body, timeout=10)
    wait_final(stack.celery_url, key)
    second = httpx.post(f"{stack.celery_url}/jobs", json=body, timeout=10)
    third = httpx.post(f"{stack.direct_url}/jobs", json=body, timeout=10)  # the other app too
    assert first.status_code == 202 and second.status_code == 200 and third.status_code == 200
    assert stack.submissions(item) == [second.json()["job_id"]]  # one job, both apps agree
    assert third.json()["job_id"] == second.json()["job_id"]
    assert third.json()["state"] == second.json()["state"] == "final"


def test_429_and_5xx_storm_every_job_once_and_completed(stack) -> None:
    """429s everywhere (the rate limiter refused: /run is retried); 5xx on the reads; and /run
    answering 502 after it accepted the job, which a retry would duplicate: those keys are
    ambiguous, never resubmitted, and their webhook brings the job and its result."""
    emu = stack.emu
    items = [uid(f"storm{i}") for i in range(10)]
    keys = []
    try:
        emu.faults.api_error_statuses = [429]
        emu.faults.api_error_rate = 0.4
        for item in items[:5]:
            r = httpx.post(f"{stack.celery_url}/jobs", json={"input": job(item)}, timeout=10)
            assert r.status_code == 202, r.text
            keys.append(r.json()["key"])
        wait_for(lambda: all(stack.submissions(i) for i in items[:5]), 60, "429 phase submitted")
        emu.faults.api_error_statuses = [500, 502, 503, 429]
        emu.faults.api_error_routes = ["status", "health", "cancel"]
        emu.faults.run_accepted_error_rate = 0.5
        for item in items[5:]:
            r = httpx.post(f"{stack.celery_url}/jobs", json={"input": job(item)}, timeout=10)
            keys.append(r.json()["key"])
        views = [wait_final(stack.celery_url, k, 150) for k in keys]
    finally:
        emu.faults.api_error_rate = emu.faults.run_accepted_error_rate = 0.0
        emu.faults.api_error_routes = None
    for item, view in zip(items, views, strict=True):
        assert view["status"] == "COMPLETED", view
        assert view["output"]["results"][0]["id"] == item
        assert stack.submissions(item) == [view["job_id"]]  # exactly one job each


def test_accepted_then_5xx_is_resolved_by_the_jobs_webhook(stack) -> None:
    item = uid("accepted")
    try:
        stack.emu.faults.run_accepted_error_rate = 1.0
        r = httpx.post(f"{stack.celery_url}/jobs", json={"input": job(item)}, timeout=10)
        key = r.json()["key"]
        wait_for(lambda: stack.submissions(item), 30, "the accepted job")
    finally:
        stack.emu.faults.run_accepted_error_rate = 0.0
    done = wait_final(stack.celery_url, key)
    assert done["status"] == "COMPLETED" and done["job_id"] == stack.submissions(item)[0]
    assert len(stack.submissions(item)) == 1 and done["duplicates"] == []
    assert done["attempts"] == 1  # the 502 was not retried


def test_worker_sigkilled_after_run_redelivers_and_picks_the_job_up(stack) -> None:
    item, key = uid("killed"), uid("block-after-submit")
    r = httpx.post(
        f"{stack.celery_url}/jobs", json={"input": job(item), "idempotency_key": key}, timeout=10
    )
    assert r.status_code == 202
    marker = Path(stack.tmp, key)
    wait_for(marker.exists, 60, "the submit task past /run")  # job id recorded, task not acked
    job_id = marker.read_text()
    stack.procs["w1"].kill(signal.SIGKILL)  # the whole worker: main process and pool
    stack.procs["w1"].popen.wait(10)
    assert httpx.get(f"{stack.celery_url}/jobs/{key}", timeout=10).json()["job_id"] == job_id
    stack.start_worker("w2")  # the unacked message comes back after the visibility timeout
    done = wait_final(stack.celery_url, key, 90)
    assert done["status"] == "COMPLETED" and done["job_id"] == job_id
    assert stack.submissions(item) == [job_id]  # exactly once
    redelivered = stack.celery.AsyncResult(submit_task_id(key)).get(timeout=30)
    assert redelivered == {"key": key, "job_id": job_id, "outcome": "existing"}


def test_batch_of_100_through_celery(stack) -> None:
    items = [uid(f"b{i}") for i in range(100)]
    r = httpx.post(
        f"{stack.celery_url}/jobs/batch", json={"inputs": [job(i) for i in items]}, timeout=30
    )
    assert r.status_code == 202, r.text
    key = r.json()["key"]
    assert r.json()["total"] == 100

    def all_final() -> dict | None:
        body = httpx.get(f"{stack.celery_url}/batches/{key}", timeout=10).json()
        return body if body["states"] == {"final": 100} else None

    body = wait_for(all_final, 150, "100 jobs final", every_s=1)
    for item, view in zip(items, body["jobs"], strict=True):
        assert view["status"] == "COMPLETED", view
        assert view["output"]["results"][0]["id"] == item  # in input order
    counts = [len(stack.submissions(i)) for i in items]
    assert counts == [1] * 100


def test_cancel_through_fastapi_reaches_the_emulator(stack) -> None:
    item = uid("cancel")
    r = httpx.post(f"{stack.celery_url}/jobs", json={"input": job(item, 60)}, timeout=10)
    key = r.json()["key"]
    wait_for(lambda: stack.submissions(item), 30, "submitted")
    job_id = stack.submissions(item)[0]
    stack.emu.wait_job(job_id, lambda j: j is not None and j["status"] == "IN_PROGRESS", 30)
    c = httpx.post(f"{stack.celery_url}/jobs/{key}/cancel", timeout=10)
    assert c.status_code == 200, c.text
    assert c.json()["state"] == "final" and c.json()["status"] == "CANCELLED"
    assert stack.emu.job(job_id)["status"] == "CANCELLED"
    stack.emu.wait_idle(30)  # the worker was told to stop and did
    assert httpx.get(f"{stack.celery_url}/jobs/{key}", timeout=10).json()["status"] == "CANCELLED"


def test_health_and_connection_test_report_endpoint_and_celery(stack) -> None:
    h = httpx.get(f"{stack.celery_url}/health", timeout=10).json()
    assert h["ok"] is True, h
    assert set(h["endpoint"]["workers"]) >= {"idle", "running"}
    assert "completed" in h["endpoint"]["jobs"]
    cfg = stack.config
    assert set(h["celery_queues"]) == {cfg.queue, cfg.high_priority_queue}
    assert all(isinstance(n, int) and n >= 0 for n in h["celery_queues"].values())
    c = httpx.get(f"{stack.celery_url}/connection-test", timeout=30).json()
    assert c["ok"] is True and c["celery"]["ok"] is True and c["endpoint"]["latency_ms"] >= 0
    d = httpx.get(f"{stack.direct_url}/health", timeout=10).json()
    assert d["ok"] is True and d["celery_queues"] is None


def test_direct_mode_result_arrives_by_webhook_only_with_the_jobs_token(stack) -> None:
    item = uid("hook")
    r = httpx.post(f"{stack.direct_url}/jobs", json={"input": job(item, 0.5)}, timeout=10)
    assert r.status_code == 202, r.text  # not done yet: accepted, with its job id
    key, job_id = r.json()["key"], r.json()["job_id"]
    assert job_id == stack.submissions(item)[0]  # direct mode: the job id in the 202
    stack.emu.wait_job(job_id, timeout_s=30)
    stack.emu.wait_idle(30)  # includes webhook deliveries
    # refresh=false: read the ledger only; nothing polled, so the webhook recorded it
    view = httpx.get(f"{stack.direct_url}/jobs/{key}?refresh=false", timeout=10).json()
    assert view["state"] == "final" and view["status"] == "COMPLETED", view
    hook = f"{stack.direct_url}/webhooks/runpod/{key}"
    body = {"id": job_id, "status": "FAILED", "error": "forged"}
    for params in ({"token": "wrong"}, {}):
        assert httpx.post(hook, params=params, json=body, timeout=10).status_code == 401
    assert httpx.get(f"{stack.direct_url}/jobs/{key}", timeout=10).json()["status"] == "COMPLETED"


def test_run_timeout_is_ambiguous_and_not_resubmitted(stack) -> None:
    import asyncio

    from podfleet.integrations import Submitter

    cfg = stack.config.model_copy(update={"api_timeout_s": 0.3, "webhook_base_url": None})
    item, key = uid("ambiguous"), uid("amb")

    async def submit():
        async with Submitter(cfg) as sub:
            return await sub.submit(key, job(item))

    try:
        stack.emu.faults.latency_s = 1.0  # the client gives up before /run answers
        first = asyncio.run(submit())
    finally:
        stack.emu.faults.latency_s = 0.0
    assert first.kind == "ambiguous" and "not submitted again" in first.error
    time.sleep(1.5)  # whatever the timed-out request did on the server is done now
    before = stack.submissions(item)  # 0 or 1: the client cannot know which
    second = asyncio.run(submit())  # with no latency, a resubmission would create a job now
    assert second.kind == "ambiguous" and second.job_id is None
    assert stack.submissions(item) == before


def test_flower_sees_the_tasks(stack) -> None:
    from tests.integration.caller.stack import FLOWER_AUTH, start_flower

    flower, url = start_flower(stack.setup, stack.tmp)
    stack.procs["flower"] = flower
    api = httpx.Client(base_url=f"{url}/api", auth=FLOWER_AUTH, timeout=10)
    assert api.get("/tasks", auth=("podfleet", "wrong")).status_code == 401
    wait_for(lambda: api.get("/workers", params={"refresh": "true"}).json(), 30, "a worker")
    item = uid("flower")
    r = httpx.post(f"{stack.celery_url}/jobs", json={"input": job(item)}, timeout=10)
    key = r.json()["key"]
    wait_final(stack.celery_url, key)

    def seen() -> dict | None:
        task = api.get("/tasks").json().get(submit_task_id(key))
        return task if task and task["state"] == "SUCCESS" else None

    task = wait_for(seen, 30, "flower reports the submit task", every_s=0.5)
    assert task["name"] == "podfleet.submit" and key in task["result"]
    waits = api.get("/tasks", params={"taskname": "podfleet.wait"}).json()
    assert f"podfleet-wait:{key}" in waits
