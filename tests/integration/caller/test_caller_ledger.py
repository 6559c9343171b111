"""The submission ledger and the Submitter on a real Redis, against the in-process emulator."""

from __future__ import annotations

import asyncio

import pytest
from podfleet.emulator import EmulatorConfig, run_in_process
from podfleet.integrations import CallerConfig, Ledger, Submitter, TransientSubmitError

JOB = {"mode": "worker", "pipeline": "synthetic", "items": [{"id": "a"}]}


async def echo(job):
    await asyncio.sleep(0.01)
    return {"echo": job["input"]}


def caller_config(emu, redis_url: str, prefix: str, **extra) -> CallerConfig:
    return CallerConfig(
        endpoint_id=emu.endpoint_id,
        base_url=emu.base_url,
        redis_url=redis_url,
        key_prefix=prefix,
        **extra,
    )


async def test_claim_is_won_once_and_a_recorded_job_is_picked_up(redis_url, prefix) -> None:
    ledger = Ledger(redis_url, prefix=prefix)
    try:
        claims = await asyncio.gather(*(ledger.claim("k1", f"o{i}", 30) for i in range(20)))
        assert sum(c.won for c in claims) == 1
        winner = f"o{next(i for i, c in enumerate(claims) if c.won)}"
        assert {c.result for c in claims if not c.won} == {"pending"}
        assert all(0 < c.lease_left_s <= 30 for c in claims if not c.won)
        assert not await ledger.mark_sending("k1", "intruder", 30, None)
        assert await ledger.mark_sending("k1", winner, 30, "tok")
        assert await ledger.record_job("k1", winner, "job-1") == "ok"
        again = await ledger.claim("k1", "late", 30)
        assert not again.won and again.result == "submitted"
        rec = await ledger.get("k1")
        assert rec.job_id == "job-1" and rec.attempts == 1 and rec.state == "submitted"
        assert rec.accepts_token("tok") and not rec.accepts_token("tok2")
        assert await ledger.record_job("k1", "late", "job-2") == "duplicate"
        assert (await ledger.get("k1")).duplicates == ["job-2"]
    finally:
        await ledger.aclose()


async def test_lease_expiry_takeover_only_when_nothing_was_in_flight(redis_url, prefix) -> None:
    ledger = Ledger(redis_url, prefix=prefix)
    try:
        assert (await ledger.claim("quiet", "dead", 0.05)).won  # died before sending
        assert (await ledger.claim("loud", "dead", 10)).won
        assert await ledger.mark_sending("loud", "dead", 0.05, None)  # died while sending
        await asyncio.sleep(0.2)
        assert (await ledger.claim("quiet", "next", 10)).result == "taken_over"
        assert (await ledger.claim("loud", "next", 10)).result == "stale_sending"
        assert (await ledger.claim("loud", "next", 10, force=True)).result == "forced"
    finally:
        await ledger.aclose()


async def test_submitter_submits_once_per_key_under_concurrent_callers(redis_url, prefix) -> None:
    async with run_in_process(EmulatorConfig(workers=2), handler=echo) as emu:
        cfg = caller_config(emu, redis_url, prefix)
        async with Submitter(cfg, transport=emu.transport) as sub:
            outs = await asyncio.gather(*(sub.submit("same", JOB) for _ in range(10)))
            kinds = sorted(o.kind for o in outs)
            assert kinds.count("submitted") == 1, kinds
            assert set(kinds) <= {"submitted", "existing", "busy"}
            await emu.wait_idle(10)
            assert len(emu.jobs()) == 1
            rec = await sub.refresh("same")
            assert rec.state == "final" and rec.status == "COMPLETED"
            assert rec.result["output"] == {"echo": JOB}


async def test_storm_of_429_and_5xx_on_run_still_submits_each_key_once(redis_url, prefix) -> None:
    async with run_in_process(EmulatorConfig(workers=2), handler=echo) as emu:
        emu.faults.api_error_rate = 0.5
        emu.faults.api_error_statuses = [429, 500, 503]
        emu.faults.seed = 7
        # api_error_rate answers before the call has any effect, so here a 5xx means "no job"
        cfg = caller_config(emu, redis_url, prefix, run_retries=12, retry_run_on_server_error=True)
        async with Submitter(cfg, transport=emu.transport) as sub:
            sub._backoff = sub._backoff.__class__(max_retries=12, base_s=0.01, max_s=0.05)
            outs = await asyncio.gather(*(sub.submit(f"k{i}", {"n": i}) for i in range(12)))
            assert [o.kind for o in outs] == ["submitted"] * 12
            emu.faults.api_error_rate = 0.0
            await emu.wait_idle(10)
        inputs = sorted(j["output"]["echo"]["n"] for j in emu.jobs())
        assert inputs == list(range(12))  # one job per key, none twice


async def test_a_5xx_after_the_job_was_accepted_is_ambiguous_not_a_duplicate(
    redis_url, prefix
) -> None:
    async with run_in_process(EmulatorConfig(workers=1), handler=echo) as emu:
        emu.faults.run_accepted_error_rate = 1.0  # job created, caller sees 502
        async with Submitter(caller_config(emu, redis_url, prefix), transport=emu.transport) as sub:
            out = await sub.submit("k", JOB)
            assert out.kind == "ambiguous" and "502" in out.error
            assert (await sub.submit("k", JOB)).kind == "ambiguous"  # asked again: still no
            assert (await sub.ledger.get("k")).state == "ambiguous"
        naive_cfg = caller_config(
            emu, redis_url, prefix + "n", retry_run_on_server_error=True, run_retries=2
        )
        async with Submitter(naive_cfg, transport=emu.transport) as naive:
            naive._backoff = naive._backoff.__class__(max_retries=2, base_s=0.01, max_s=0.02)
            with pytest.raises(TransientSubmitError):
                await naive.submit("k", JOB)  # retrying a 5xx: three /run, three jobs
        await emu.wait_idle(10)
        assert len(emu.jobs()) == 1 + 3


async def test_a_rejected_run_is_recorded_with_its_reason(redis_url, prefix) -> None:
    async with run_in_process(EmulatorConfig(workers=1), handler=echo) as emu:
        cfg = caller_config(emu, redis_url, prefix)
        async with Submitter(cfg, transport=emu.transport) as sub:
            out = await sub.submit("huge", {"blob": "x" * 11_000_000})
            assert out.kind == "rejected" and "413" in out.error
            with pytest.raises(ValueError, match="input: must not be empty"):
                await sub.submit("empty", {})
        assert emu.jobs() == []


async def test_cancel_before_submission_means_never_submitted(redis_url, prefix) -> None:
    async with run_in_process(EmulatorConfig(workers=1), handler=echo) as emu:
        async with Submitter(caller_config(emu, redis_url, prefix), transport=emu.transport) as sub:
            assert await sub.ledger.enqueue("early")  # accepted, its task not run yet
            rec = await sub.cancel("early")
            assert rec.state == "cancelled" and rec.job_id is None
            out = await sub.submit("early", JOB)  # the task arrives late
            assert out.kind == "cancelled" and out.job_id is None
        assert emu.jobs() == []


async def test_a_wait_that_times_out_cancels_the_job(redis_url, prefix) -> None:
    async def slow(job):
        await asyncio.sleep(30)

    async with run_in_process(EmulatorConfig(workers=1), handler=slow) as emu:
        cfg = caller_config(emu, redis_url, prefix)
        async with Submitter(cfg, transport=emu.transport) as sub:
            out = await sub.submit("slow", JOB)
            await emu.wait_job(out.job_id, lambda j: j["status"] == "IN_PROGRESS", 10)
            await sub.finish_timed_out("slow", out.job_id, 0.1)
            rec = await sub.ledger.get("slow")
            assert rec.state == "final" and rec.status == "CANCELLED"
            assert rec.result["error"] == "no result within 0.1s (job cancelled)"
            assert emu.job(out.job_id)["status"] == "CANCELLED"
