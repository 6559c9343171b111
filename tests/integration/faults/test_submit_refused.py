"""Defect 4: a coordinator whose every /run fails (wrong key, unreachable or refusing endpoint)
falls back to local work in bounded time instead of resubmitting every second.

In-process: the coordinator's client talks to an httpx.MockTransport standing in for RunPod's
API (the emulator suite in this directory covers the same faults with real SDK workers)."""

from __future__ import annotations

import time

import httpx
import pytest
from podfleet.api import EndpointClient, RetryPolicy
from podfleet.coordinator import coordinate
from podfleet.coordinator.siblings import SubmitBreaker
from podfleet.envelope import parse_job
from podfleet.settings import Settings


def job(n: int = 6, workers: int = 4) -> dict:
    items = [{"id": f"it-{i}", "duration_s": 0.05} for i in range(n)]
    return {"id": "coord", "input": {"pipeline": "synthetic", "workers": workers, "items": items}}


class Api:
    """Answers every call with `reply` (a status code, or an exception to raise); counts."""

    def __init__(self, reply: int | Exception):
        self.reply = reply
        self.calls: dict[str, int] = {}

    def handle(self, request: httpx.Request) -> httpx.Response:
        op = request.url.path.strip("/").split("/")[2]
        self.calls[op] = self.calls.get(op, 0) + 1
        if isinstance(self.reply, Exception):
            raise self.reply
        return httpx.Response(self.reply, json={"error": "no"})


async def run(api: Api, n: int = 6) -> tuple[dict, float]:
    settings = Settings(runpod_endpoint_id="ep", status_poll_interval_s=0.05, pickup_timeout_s=5)
    client = EndpointClient(
        endpoint_id="ep",
        base_url="http://api.invalid/v2",
        transport=httpx.MockTransport(api.handle),
        retry=RetryPolicy(max_retries=2, base_s=0.01, max_s=0.05),
    )
    t0 = time.monotonic()
    async with client:
        out = await coordinate(parse_job(job(n)), settings, job(n), client=client)
    return out, time.monotonic() - t0


def assert_all_done_locally(out: dict, n: int) -> None:
    assert out["ok"] is True, out["errors"]
    assert [r["id"] for r in out["results"]] == [f"it-{i}" for i in range(n)]
    assert out["fanout"]["chunks_local"] == out["fanout"]["chunks"]
    assert out["fanout"]["siblings_submitted"] == 0


@pytest.mark.parametrize("status", [401, 403])
async def test_a_wrong_key_stops_submissions_at_once(clean_env, status: int) -> None:
    api = Api(status)
    out, elapsed_s = await run(api)
    assert_all_done_locally(out, 6)
    fan = out["fanout"]
    assert "RUNPOD_API_KEY" in fan["submissions_stopped"]
    # one round of at most `workers` submissions, none retried (was ~180 errors over 80-180 s)
    assert api.calls["run"] <= 4 and fan["submit_errors"] <= 4
    assert elapsed_s < 10


@pytest.mark.parametrize(
    "reply", [503, 429, httpx.ConnectError("refused")], ids=["503", "429", "unreachable"]
)
async def test_an_endpoint_refusing_every_submission_is_given_up(clean_env, reply) -> None:
    api = Api(reply)
    out, elapsed_s = await run(api, n=12)
    assert_all_done_locally(out, 12)
    # the breaker opened after 3 failures in a row; at most a few probes followed
    assert out["fanout"]["submit_errors"] <= 8
    assert elapsed_s < 30


async def test_a_black_holed_run_is_bounded(clean_env, monkeypatch) -> None:
    """A /run that never answers (accepted connection, no reply) costs SUBMIT_TIMEOUT_S, not
    the client's timeout times its retries (the loop awaiting it used to hang with it)."""
    import asyncio

    from podfleet.coordinator import siblings

    monkeypatch.setattr(siblings, "SUBMIT_TIMEOUT_S", 0.3)

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    settings = Settings(runpod_endpoint_id="ep", status_poll_interval_s=0.05)
    client = EndpointClient(
        endpoint_id="ep",
        base_url="http://api.invalid/v2",
        transport=httpx.MockTransport(hang),
        timeout_s=3600,
        retry=RetryPolicy(max_retries=5),
    )
    t0 = time.monotonic()
    async with client:
        out = await coordinate(parse_job(job(12)), settings, job(12), client=client)
    assert_all_done_locally(out, 12)
    assert out["fanout"]["submit_errors"] >= 1
    assert time.monotonic() - t0 < 10


async def test_a_slow_submit_round_does_not_hold_the_job(clean_env) -> None:
    """/run never answers (and SUBMIT_TIMEOUT_S is 30 s): the idle local runner takes the round's
    chunks after ~1 s and the job ends when they are done, the round cancelled."""
    import asyncio

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    settings = Settings(runpod_endpoint_id="ep", status_poll_interval_s=0.05)
    client = EndpointClient(
        endpoint_id="ep",
        base_url="http://api.invalid/v2",
        transport=httpx.MockTransport(hang),
        timeout_s=3600,
    )
    t0 = time.monotonic()
    async with client:
        out = await coordinate(parse_job(job(8)), settings, job(8), client=client)
    assert_all_done_locally(out, 8)
    assert time.monotonic() - t0 < 10


def test_breaker_rules() -> None:
    from podfleet.api import AuthError, BadRequest, JobState, ServerError

    b = SubmitBreaker(threshold=3, cooldown_s=5, max_opens=3)
    ok = JobState(id="j", status="IN_QUEUE")
    err = ServerError("run: HTTP 503", status_code=503)
    for _ in range(5):
        b.record(BadRequest("run: HTTP 413", status_code=413), 0.0)  # about one payload
    assert b.allows(0.0) and b.failures == 0
    b.record(err, 0.0)
    b.record(err, 0.0)
    b.record(ok, 0.0)  # a success in between resets the count
    b.record(err, 0.0)
    b.record(err, 0.0)
    assert b.allows(0.0)
    b.record(err, 0.0)  # third in a row: open for 5 s, then one probe at a time
    assert not b.allows(1.0) and b.allows(5.0) and b.batch_limit(4) == 1
    b.record(err, 5.0)  # the probe failed: open again, for 10 s
    assert not b.allows(14.0) and b.allows(15.0)
    b.record(ok, 15.0)
    assert b.allows(15.0) and b.batch_limit(4) == 4 and not b.stopped
    for _ in range(6):  # one round of concurrent failures opens it once
        b.record(err, 20.0)
    assert not b.stopped and not b.allows(24.0) and b.allows(25.0)
    b.record(err, 25.0)  # probe fails: second opening, 10 s
    assert not b.stopped and b.allows(35.0)
    b.record(err, 35.0)  # third opening: given up for good
    assert b.stopped and "refused" in b.stopped and not b.allows(1e9)
    auth = SubmitBreaker()
    auth.record(AuthError("run: HTTP 401", status_code=401), 0.0)
    assert auth.stopped and not auth.allows(0.0)
