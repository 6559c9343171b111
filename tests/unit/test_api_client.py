"""The endpoint API client against a fake that honours RunPod's HTTP interface (MockTransport)."""

from __future__ import annotations

import asyncio
import itertools
import json
import random

import httpx
import pytest
from podfleet.api import (
    ApiConnectionError,
    ApiTimeout,
    AuthError,
    EndpointClient,
    JobNotFound,
    JobStatus,
    OperationLimit,
    Policy,
    RateLimited,
    RateLimits,
    RetryPolicy,
    ServerError,
    SyncEndpointClient,
)

KEY = "rpa_SECRET_KEY_123"


class FakeEndpoint:
    """RunPod's client API (§3) in memory: jobs complete after `polls_to_finish` status calls.
    `script` holds canned replies (status code, headers) served before the real answer."""

    def __init__(self, *, polls_to_finish: int = 1):
        self.jobs: dict[str, dict] = {}
        self.polls: dict[str, int] = {}
        self.polls_to_finish = polls_to_finish
        self.script: list[tuple[int, dict[str, str]]] = []
        self.requests: list[httpx.Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.hold: asyncio.Event | None = None
        self.ids = itertools.count(1)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.hold is not None:
                await self.hold.wait()
            await asyncio.sleep(0)
            if request.headers.get("authorization") != f"Bearer {KEY}":
                return httpx.Response(401, json={"error": "Unauthorized"})
            if self.script:
                code, headers = self.script.pop(0)
                return httpx.Response(code, headers=headers, text="busy")
            return self.answer(request)
        finally:
            self.in_flight -= 1

    def answer(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")  # v2, ep, op, [id]
        op, job_id = parts[2], (parts[3] if len(parts) > 3 else None)
        if op == "run":
            body = json.loads(request.content)
            jid = f"job-{next(self.ids)}"
            self.jobs[jid] = {"id": jid, "status": "IN_QUEUE", "body": body}
            return httpx.Response(200, json={"id": jid, "status": "IN_QUEUE"})
        if op == "health":
            return httpx.Response(200, json={"jobs": {"completed": 1}, "workers": {"idle": 2}})
        if job_id not in self.jobs:
            return httpx.Response(404, json={"error": "job not found"})
        job = self.jobs[job_id]
        if op == "status":
            self.polls[job_id] = self.polls.get(job_id, 0) + 1
            if self.polls[job_id] >= self.polls_to_finish and job["status"] != "CANCELLED":
                job["status"] = "COMPLETED"
                job["output"] = {"echo": job["body"]["input"]}
            elif job["status"] == "IN_QUEUE":
                job["status"] = "IN_PROGRESS"
            reply = {k: v for k, v in job.items() if k != "body"}
            return httpx.Response(200, json={**reply, "delayTime": 12, "executionTime": 34})
        if op == "stream":
            self.polls[job_id] = self.polls.get(job_id, 0) + 1
            n = self.polls[job_id]
            done = n >= 3
            return httpx.Response(
                200,
                json={
                    "status": "COMPLETED" if done else "IN_PROGRESS",
                    "stream": [{"output": f"chunk-{n}"}],
                },
            )
        if op == "cancel":
            job["status"] = "CANCELLED"
            return httpx.Response(200, json={"id": job_id, "status": "CANCELLED"})
        return httpx.Response(400, json={"error": f"unknown op {op}"})


class RecordingSleep:
    """asyncio.sleep stand-in for the retry policy: records each delay, returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)


def make_client(
    fake: FakeEndpoint, *, retries: int = 5, sleep=None, limits=None, key: str = KEY
) -> EndpointClient:
    policy = RetryPolicy(
        max_retries=retries,
        base_s=0.01,
        max_s=0.05,
        sleep=sleep or RecordingSleep(),
        rng=random.Random(1),
    )
    return EndpointClient(
        endpoint_id="ep1",
        base_url="http://fake.invalid/v2",
        api_key=key,
        transport=fake.transport(),
        retry=policy,
        limits=limits,
    )


async def test_run_wait_roundtrip_sends_bearer_and_policy():
    fake = FakeEndpoint(polls_to_finish=3)
    async with make_client(fake) as client:
        job = await client.run({"x": 1}, policy=Policy(execution_timeout_s=60, ttl_s=120))
        assert job.status is JobStatus.IN_QUEUE
        seen: list[JobStatus] = []
        final = await client.wait(
            job.id, interval_s=0.01, on_update=lambda s: seen.append(s.status)
        )
    assert final.status is JobStatus.COMPLETED and final.terminal
    assert final.output == {"echo": {"x": 1}}
    assert (final.delay_time_ms, final.execution_time_ms) == (12, 34)
    assert seen[-1] is JobStatus.COMPLETED and len(seen) == 3
    body = json.loads(fake.requests[0].content)
    assert body == {"input": {"x": 1}, "policy": {"executionTimeout": 60000, "ttl": 120000}}
    assert fake.requests[0].url.path == "/v2/ep1/run"


async def test_429_storm_then_success_honours_retry_after():
    fake = FakeEndpoint()
    fake.script = [(429, {"Retry-After": "2"}), (429, {"Retry-After": "3"}), (429, {})]
    sleep = RecordingSleep()
    async with make_client(fake, sleep=sleep) as client:
        job = await client.run({"x": 1})
    assert job.status is JobStatus.IN_QUEUE
    assert len(fake.requests) == 4
    assert sleep.delays[:2] == [2.0, 3.0]  # the server's Retry-After, exactly
    assert 0 <= sleep.delays[2] <= 0.04  # no header: our jittered backoff (3rd try: cap 0.04)


async def test_5xx_retried_then_gives_up_with_server_error():
    fake = FakeEndpoint()
    fake.script = [(502, {}), (503, {})]
    async with make_client(fake) as client:
        job = await client.run({"x": 1})
        assert job.id == "job-1"
        fake.script = [(500, {})] * 10
        with pytest.raises(ServerError) as err:
            await client.status(job.id)
    assert err.value.status_code == 500 and err.value.operation == "status"
    assert len(fake.requests) == 3 + 6  # 2 failures + success, then 1 + 5 retries


async def test_401_is_auth_error_not_retried_and_key_never_shown():
    fake = FakeEndpoint()
    client = make_client(fake, key="rpa_WRONG_KEY_456")
    with pytest.raises(AuthError) as err:
        await client.health()
    await client.aclose()
    assert len(fake.requests) == 1
    assert "WRONG_KEY" not in str(err.value) and "WRONG_KEY" not in repr(client)


async def test_404_is_job_not_found_and_status_many_maps_it_to_none():
    fake = FakeEndpoint()
    async with make_client(fake) as client:
        job = await client.run({"x": 1})
        with pytest.raises(JobNotFound):
            await client.status("nope")
        states = await client.status_many([job.id, "nope"])
    assert states["nope"] is None
    assert states[job.id] is not None and states[job.id].status is JobStatus.COMPLETED
    assert sum(r.url.path.endswith("/status/nope") for r in fake.requests) == 2  # no retries


async def test_connection_errors_are_retried_then_typed():
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    client = EndpointClient(
        endpoint_id="ep1",
        base_url="http://127.0.0.1:9/v2",
        transport=httpx.MockTransport(refuse),
        retry=RetryPolicy(max_retries=2, sleep=RecordingSleep()),
    )
    with pytest.raises(ApiConnectionError):
        await client.health()
    await client.aclose()
    assert len(attempts) == 3


async def test_rate_limiter_paces_a_burst():
    fake = FakeEndpoint()
    limits = RateLimits({"status": OperationLimit(requests=3, period_s=60, concurrent=10)})
    async with make_client(fake, limits=limits) as client:
        job = await client.run({"x": 1})
        tasks = [asyncio.create_task(client.status(job.id)) for _ in range(5)]

        def sent() -> int:
            return sum("/status/" in r.url.path for r in fake.requests)

        for _ in range(500):  # until the bucket's 3 tokens are spent (no wall-clock assertion)
            if sent() == 3 and sum(t.done() for t in tasks) == 3:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # the next token is 20 s away: nothing else may get through
        done = {t for t in tasks if t.done()}
        pending = [t for t in tasks if not t.done()]
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    assert len(done) == 3 and len(pending) == 2
    assert sum("/status/" in r.url.path for r in fake.requests) == 3


async def test_concurrency_cap_per_operation():
    fake = FakeEndpoint()
    fake.hold = asyncio.Event()
    limits = RateLimits({"run": OperationLimit(requests=1000, period_s=10, concurrent=2)})
    async with make_client(fake, limits=limits) as client:
        task = asyncio.create_task(client.submit_many([{"i": i} for i in range(6)], concurrency=6))
        for _ in range(500):
            if fake.in_flight == 2:
                break
            await asyncio.sleep(0)
        for _ in range(50):  # more turns of the loop: a third request must not get in
            await asyncio.sleep(0)
        assert fake.in_flight == 2
        fake.hold.set()
        jobs = await task
    assert fake.max_in_flight == 2
    bodies = {json.loads(r.content)["input"]["i"]: r for r in fake.requests}
    assert sorted(bodies) == list(range(6))
    assert [fake.jobs[j.id]["body"]["input"]["i"] for j in jobs] == list(range(6))


async def test_submit_many_keeps_input_order_and_reports_failures_in_place():
    fake = FakeEndpoint()
    async with make_client(fake, retries=0) as client:
        jobs = await client.submit_many([{"i": i} for i in range(5)], concurrency=2)
        inputs = [fake.jobs[j.id]["body"]["input"]["i"] for j in jobs]
        assert inputs == list(range(5))
        fake.script = [(503, {})]
        mixed = await client.submit_many([{"i": 9}], concurrency=1)
    assert isinstance(mixed[0], ServerError)


async def test_wait_timeout_carries_last_state():
    fake = FakeEndpoint(polls_to_finish=10_000)
    async with make_client(fake) as client:
        job = await client.run({"x": 1})
        with pytest.raises(ApiTimeout) as err:
            await client.wait(job.id, timeout_s=0.05, interval_s=0.01)
    assert err.value.last_state.status is JobStatus.IN_PROGRESS


async def test_stream_yields_chunks_until_terminal():
    fake = FakeEndpoint()
    async with make_client(fake) as client:
        job = await client.run({"x": 1})
        chunks = [c async for c in client.stream(job.id, interval_s=0.01)]
    assert chunks == ["chunk-1", "chunk-2", "chunk-3"]


def test_sync_client_and_status_enum():
    fake = FakeEndpoint()
    client = SyncEndpointClient(
        endpoint_id="ep1",
        base_url="http://fake.invalid/v2",
        api_key=KEY,
        transport=fake.transport(),
    )
    with client:
        job = client.run({"x": 2})
        assert client.cancel(job.id).status is JobStatus.CANCELLED
        assert client.health().workers == {"idle": 2}
    assert KEY not in repr(client)
    assert JobStatus.parse("timed_out").is_terminal()
    assert not JobStatus.IN_QUEUE.is_terminal() and JobStatus.parse("??") is JobStatus.UNKNOWN
    with pytest.raises(RateLimited.__mro__[1]):  # ApiError: every error shares the root
        raise RateLimited("x")
