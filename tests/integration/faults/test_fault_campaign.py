"""The fault campaign: coordinator jobs on emulated SDK workers under killed workers, 5xx
storms, an endpoint that refuses every submission, a throttled endpoint, a wrong API key and an
unreachable API. Every item is accounted for (its result or its error) in bounded time."""

from __future__ import annotations

import json
import threading
import time

import pytest
from campaign import (
    accounted,
    client_for,
    closed_port,
    submit_and_wait,
    synthetic_input,
    wait_for,
)

pytestmark = pytest.mark.emulator

BOUND_S = 120  # any scenario below; most take 5-30 s on two loaded cores


def test_killed_sibling_workers(fleet):
    """Three sibling workers SIGKILLed mid-chunk, one after another (their jobs end FAILED)."""
    killed: list[str] = []

    def kill_three(coordinator_id: str) -> None:
        def busy_sibling():
            jobs = fleet.jobs()
            mine = [j for j in jobs if j["parent_id"] == coordinator_id]
            return next(
                (j for j in mine if j["status"] == "IN_PROGRESS" and j["id"] not in killed), None
            )

        for _ in range(3):
            try:
                job = wait_for(busy_sibling, 30, "a sibling running")
            except TimeoutError:
                return  # the job finished first
            fleet.kill_worker(job["worker_id"])
            killed.append(job["id"])

    thread: list[threading.Thread] = []

    def during(coordinator_id: str) -> None:
        thread.append(threading.Thread(target=kill_three, args=(coordinator_id,), daemon=True))
        thread[0].start()

    final, elapsed_s, siblings = submit_and_wait(fleet, synthetic_input(16, 1.0), during=during)
    thread[0].join(60)
    out = accounted(final, 16)
    assert killed, "no sibling was killed"
    victims = [s for s in siblings if s["id"] in killed]
    assert victims and all(s["status"] == "FAILED" for s in victims)
    assert out["fanout"]["retries"] >= len(killed) - out["fanout"]["chunks_failed"]
    assert elapsed_s < BOUND_S


@pytest.mark.parametrize("statuses", [[500, 502, 503], [429]], ids=["5xx", "429"])
def test_storm_on_every_route(fleet, statuses):
    """Half of all client API calls (run, status, cancel, ...) fail, the coordinator's too."""
    fleet.faults.api_error_statuses = statuses
    fleet.faults.api_error_rate = 0.5
    # 12 s of work: more than the submit breaker's first pause (5 s) after three refused /run
    # in a row (1 in 8 at this rate), so its probes come before the local runner is done
    final, elapsed_s, _ = submit_and_wait(fleet, synthetic_input(24, 0.5))
    out = accounted(final, 24)
    assert out["ok"] is True, out["errors"]
    fan = json.dumps(out["fanout"])
    # the storm did not stop the fan-out, unless the breaker says why it gave up on the API
    assert out["fanout"]["siblings_submitted"] >= 1 or out["fanout"]["submissions_stopped"], fan
    assert elapsed_s < BOUND_S


def test_an_endpoint_refusing_every_submission(fleet):
    """Every /run answers 503: the coordinator stops submitting and does the work itself
    (submitted through /runsync, which the storm spares)."""
    fleet.faults.api_error_routes = ["run"]
    fleet.faults.api_error_statuses = [503]
    fleet.faults.api_error_rate = 1.0
    final, elapsed_s, siblings = submit_and_wait(fleet, synthetic_input(12, 0.2), sync=True)
    out = accounted(final, 12)
    fan = out["fanout"]
    assert out["ok"] is True and not siblings
    assert fan["siblings_submitted"] == 0 and fan["chunks_local"] == fan["chunks"]
    assert fan["submit_errors"] <= 8  # the breaker, not ~180 resubmissions
    assert elapsed_s < 60


def test_throttled_endpoint(fleet):
    """Two of four workers allowed: the coordinator's and one for siblings."""
    fleet.faults.max_workers = 2
    final, elapsed_s, _ = submit_and_wait(fleet, synthetic_input(12, 0.3))
    out = accounted(final, 12)
    assert out["ok"] is True, out["errors"]
    assert elapsed_s < BOUND_S


def test_a_wrong_api_key(misconfigured):
    """The workers' RUNPOD_API_KEY is wrong: the first /run answers 401 and the coordinator
    stops submitting at once (it used to resubmit every second: ~180 errors, 80-180 s)."""
    with misconfigured(RUNPOD_API_KEY="wrong-key-9876543210") as emu:
        final, elapsed_s, siblings = submit_and_wait(emu, synthetic_input(6, 0.2))
        text = emu.log_path.read_text()
    out = accounted(final, 6)
    fan = out["fanout"]
    assert out["ok"] is True and not siblings
    assert "RUNPOD_API_KEY" in fan["submissions_stopped"]
    assert fan["submit_errors"] <= 4
    assert "wrong-key-9876543210" not in text  # the key itself never reaches a log line
    assert elapsed_s < 30


def test_an_unreachable_api(misconfigured):
    """The workers' API base URL points at a closed port: every call is refused."""
    with misconfigured(RUNPOD_ENDPOINT_BASE_URL=f"http://127.0.0.1:{closed_port()}/v2") as emu:
        final, elapsed_s, siblings = submit_and_wait(emu, synthetic_input(6, 0.2))
    out = accounted(final, 6)
    fan = out["fanout"]
    assert out["ok"] is True and not siblings
    assert fan["siblings_submitted"] == 0 and fan["chunks_local"] == fan["chunks"]
    assert elapsed_s < 60


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"pipeline": "p" * 100_000, "items": [{"id": "a"}]}, "pipeline"),
        ({"pipeline": "synthetic", "items": [{"id": "i" * 150_000}]}, "items.0.id"),
        ({"items": [{"id": "a", "title": "a://b:" * 50_000, "sources": []}]}, "items.0.title"),
    ],
    ids=["pipeline-100k", "item-id-150k", "title-300k"],
)
def test_huge_inputs_are_refused_promptly_and_the_worker_stays_well(fleet, payload, field):
    """Defect 1: a 150k-character item id was TIMED_OUT at 20 s and its worker stayed stuck
    (quadratic log redaction); the next job finished at 127 s."""
    with client_for(fleet) as client:
        t0 = time.monotonic()
        bad = client.wait(client.run({"mode": "worker", **payload}).id, timeout_s=60)
        bad_s = time.monotonic() - t0
        quick = {**synthetic_input(2, 0.0, workers=1), "mode": "worker"}
        good = client.wait(client.run(quick).id, timeout_s=60)
        good_s = time.monotonic() - t0
    assert bad.status == "FAILED" and str(bad.error).startswith(f"{field}: "), bad.error
    assert len(str(bad.error)) < 2_000
    assert good.status == "COMPLETED" and good.output["ok"] is True
    assert bad_s < 15 and good_s < 30, (bad_s, good_s)
