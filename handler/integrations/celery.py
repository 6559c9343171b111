"""Celery tasks that call a podfleet (RunPod) endpoint without ever submitting a job twice.

    app = create_celery_app(CallerConfig(...), broker_url="redis://...", result_backend="redis://...")
    celery -A mymodule worker -Q podfleet.high,podfleet     # high-priority queue served first

Tasks (names are stable, so a FastAPI process can `send_task` without importing this module):

    podfleet.submit           claim the key, POST /run once, record the job id, schedule the wait
    podfleet.wait             one status poll; not final -> re-schedules itself with a countdown
    podfleet.batch            a submit task per item (keys `{batch}:{i}`)
    podfleet.test_connection  the endpoint's /health, timed

Why two steps: no task holds a worker slot while a job runs for hours; a poll is a short task that
re-schedules itself (`self.retry(countdown=...)`, same task id). Late acks with
`reject_on_worker_lost`: a worker killed mid-task leaves the message unacknowledged, so it is
redelivered; the ledger (podfleet.integrations.ledger) then turns the redelivered submit into a
pick-up of the recorded job instead of a second /run. Transient errors (429/5xx/connection,
Redis) are retried `error_retries` times with exponential backoff and full jitter; others fail the
task at once. Results (Celery's and the ledger's) expire after `result_expires_s`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from typing import Any

from celery import Celery, Task
from celery.utils.dispatch import Signal
from kombu import Exchange, Queue
from kombu.exceptions import ChannelError
from podfleet.api import ApiError, Policy, RetryPolicy
from podfleet.integrations.config import CallerConfig
from podfleet.integrations.ledger import Record
from podfleet.integrations.submit import Submitter, TransientSubmitError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = [
    "SubmissionFailed",
    "create_celery_app",
    "job_submitted",
    "queue_lengths",
    "record_view",
    "register_tasks",
    "submit_task_id",
]

# Sent in the worker right after /run answered and its job id was recorded, before the task
# returns (kwargs: key, job_id, payload). Tests use it to kill a worker at that very point.
job_submitted = Signal(name="podfleet.job_submitted")

_TRANSIENT = (TransientSubmitError, RedisConnectionError, RedisTimeoutError, ConnectionError)


class SubmissionFailed(Exception):
    """The key's job was not (or may not have been) created: rejected, ambiguous, cancelled."""


def submit_task_id(key: str) -> str:
    return f"podfleet-submit:{key}"


def record_view(rec: Record | None, key: str) -> dict[str, Any]:
    """A task's return value: the key's record as plain JSON."""
    if rec is None:
        return {"key": key, "state": "unknown"}
    return {
        "key": rec.key,
        "state": rec.state,
        "job_id": rec.job_id,
        "status": rec.status,
        "result": rec.result,
        "error": rec.error,
        "duplicates": rec.duplicates,
    }


class _Runtime:
    """One event loop and one Submitter per worker process (created after the fork) and
    thread (`--pool threads`); not for gevent/eventlet pools."""

    def __init__(self, config: CallerConfig) -> None:
        self.config = config
        self._local = threading.local()

    def run(self, make_coro: Any) -> Any:
        """Run `make_coro(submitter)` on this process's (and thread's) loop."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.runner = asyncio.Runner()
            local.submitter = local.runner.run(self._make())
            local.pid = os.getpid()
        return local.runner.run(make_coro(local.submitter))

    async def _make(self) -> Submitter:
        return Submitter(self.config)


def _policy(raw: dict[str, Any] | None) -> Policy | None:
    return Policy.model_validate(raw) if raw else None


def register_tasks(app: Celery, config: CallerConfig) -> dict[str, Task]:
    """Register podfleet's tasks on `app`; returns them by short name."""
    rt = _Runtime(config)
    backoff = RetryPolicy(base_s=config.error_backoff_s, max_s=config.error_backoff_max_s)
    common = {
        "bind": True,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "max_retries": None,
        "shared": False,  # this app only: several apps in one process each get their own
    }

    def retry_error(task: Task, exc: BaseException, kwargs: dict[str, Any]) -> None:
        errors = int(kwargs.get("errors", 0))
        if errors >= config.error_retries:
            raise exc
        countdown = backoff.delay_s(errors + 1, None)
        raise task.retry(exc=exc, countdown=countdown, kwargs={**kwargs, "errors": errors + 1})

    def queue_for(priority: str) -> str:
        return config.high_priority_queue if priority == "high" else config.queue

    @app.task(name="podfleet.submit", **common)
    def submit(
        self: Task,
        payload: Any,
        key: str | None = None,
        policy: dict[str, Any] | None = None,
        priority: str = "normal",
        errors: int = 0,
    ) -> dict[str, Any]:
        key = key or self.request.id
        kwargs = {"payload": payload, "key": key, "policy": policy, "priority": priority}
        try:
            out = rt.run(lambda s: s.submit(key, payload, policy=_policy(policy)))
        except _TRANSIENT as exc:
            retry_error(self, exc, {**kwargs, "errors": errors})
            raise
        if out.kind == "busy":  # another delivery of this key is mid-submission
            countdown = max(0.5, min(out.retry_in_s, config.poll_interval_s))
            raise self.retry(countdown=countdown, kwargs=kwargs)
        if out.kind == "ambiguous" and config.webhook_base_url:
            out = dataclasses.replace(out, state="ambiguous")  # its webhook may still attach it
        elif out.job_id is None:
            raise SubmissionFailed(f"key {key}: {out.kind}: {out.error}")
        if out.kind == "submitted":
            job_submitted.send(sender=self, key=key, job_id=out.job_id, payload=payload)
        if out.state != "final":
            wait.apply_async(
                kwargs={"key": key, "started": time.time()},
                countdown=config.first_poll_s,
                task_id=f"podfleet-wait:{key}",
                queue=queue_for(priority),
            )
        return {"key": key, "job_id": out.job_id, "outcome": out.kind}

    @app.task(name="podfleet.wait", **common)
    def wait(
        self: Task, key: str, started: float | None = None, polls: int = 0, errors: int = 0
    ) -> dict[str, Any]:
        started = started or time.time()
        kwargs = {"key": key, "started": started, "polls": polls}
        try:
            rec = rt.run(lambda s: s.refresh(key))
        except ApiError as exc:
            if exc.retryable:
                retry_error(self, exc, {**kwargs, "errors": errors})
            result = {"output": None, "error": f"status failed: {exc.message}"}
            rt.run(lambda s: s.ledger.finish(key, "ERROR", result))
            raise
        except _TRANSIENT as exc:
            retry_error(self, exc, {**kwargs, "errors": errors})
            raise
        if rec is None:
            raise SubmissionFailed(f"key {key}: no record (unknown, or expired)")
        settled = ("final", "rejected", "cancelled")
        if rec.state in settled or (rec.state == "ambiguous" and not config.webhook_base_url):
            return record_view(rec, key)
        waited_s = time.time() - started
        if rec.job_id is None and waited_s > config.wait_timeout_s:
            return record_view(rec, key)  # never submitted (its submit task failed for good)
        if rec.job_id and waited_s > config.wait_timeout_s:
            rt.run(lambda s: s.finish_timed_out(key, rec.job_id, waited_s))
            return record_view(rt.run(lambda s: s.ledger.get(key)), key)
        cap_s = config.webhook_poll_s if config.webhook_base_url else config.poll_interval_s
        countdown = min(cap_s, config.first_poll_s * 1.5**polls)
        raise self.retry(countdown=countdown, kwargs={**kwargs, "polls": polls + 1})

    @app.task(name="podfleet.batch", **common)
    def batch(
        self: Task,
        payloads: list[Any],
        key: str | None = None,
        policy: dict[str, Any] | None = None,
        priority: str = "normal",
    ) -> dict[str, Any]:
        key = key or self.request.id
        keys = [f"{key}:{i}" for i in range(len(payloads))]

        async def remember(s: Submitter) -> None:
            await s.ledger.set_batch(key, keys)
            for k in keys:
                await s.ledger.enqueue(k)

        rt.run(remember)
        for k, payload in zip(keys, payloads, strict=True):  # a redelivery re-sends: harmless
            submit.apply_async(
                kwargs={"payload": payload, "key": k, "policy": policy, "priority": priority},
                task_id=submit_task_id(k),
                queue=queue_for(priority),
            )
        return {"key": key, "keys": keys}

    @app.task(name="podfleet.test_connection", **common)
    def test_connection(self: Task) -> dict[str, Any]:
        t0 = time.perf_counter()
        try:
            health = rt.run(lambda s: s.client.health())
        except ApiError as exc:
            return {"ok": False, "error": exc.message, "latency_ms": None}
        ms = round((time.perf_counter() - t0) * 1000, 1)
        return {"ok": True, "latency_ms": ms, "jobs": health.jobs, "workers": health.workers}

    return {"submit": submit, "wait": wait, "batch": batch, "test_connection": test_connection}


def create_celery_app(
    config: CallerConfig,
    *,
    broker_url: str,
    result_backend: str | None = None,
    name: str = "podfleet",
    visibility_timeout_s: float = 3600,
    transport_options: dict[str, Any] | None = None,
    **conf: Any,
) -> Celery:
    """A Celery app with podfleet's tasks and the settings they rely on.

    `visibility_timeout_s` (Redis/SQS brokers): an unacknowledged message is redelivered after
    this. It must exceed the longest task and every countdown (podfleet's tasks are short and
    their countdowns <= max(poll_interval_s, webhook_poll_s, error_backoff_max_s)). Redis
    looks for such messages every `unacked_restore_interval` x `unacked_restore_throttle`
    seconds (kombu: 10 x 10) and when a worker starts; pass `transport_options` to sweep sooner."""
    longest_s = max(config.poll_interval_s, config.webhook_poll_s, config.error_backoff_max_s)
    if visibility_timeout_s <= longest_s:
        raise ValueError(
            f"visibility_timeout_s ({visibility_timeout_s:g}) must exceed the longest countdown "
            f"({longest_s:g} s), or scheduled polls are redelivered while they wait"
        )
    app = Celery(name)
    app.conf.update(
        broker_url=broker_url,
        result_backend=result_backend,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=int(config.result_expires_s),
        task_default_queue=config.queue,
        task_queues=[  # each its own exchange and key: a message lands in one queue only
            Queue(q, Exchange(q, type="direct"), routing_key=q)
            for q in (config.high_priority_queue, config.queue)
        ],
        task_default_exchange=config.queue,
        task_default_routing_key=config.queue,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s,
            "queue_order_strategy": "priority",  # Redis: queues read in the order listed
            **(transport_options or {}),
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_track_started=True,
        worker_send_task_events=True,  # Flower
        task_send_sent_event=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    app.conf.update(conf)
    register_tasks(app, config)
    return app


def queue_lengths(app: Celery, queues: list[str]) -> dict[str, int]:
    """Messages waiting in each Celery queue (broker-neutral: a passive queue declare)."""
    lengths: dict[str, int] = {}
    with app.connection_for_read() as conn:
        for name in queues:
            channel = conn.channel()
            try:
                lengths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except ChannelError:  # Redis: an empty queue has no list, so "not found"
                lengths[name] = 0
            finally:
                channel.close()
    return lengths
