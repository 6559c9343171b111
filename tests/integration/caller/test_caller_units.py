"""Small pure pieces of the caller side: keys, webhook URLs and tokens, log redaction, the
visibility-timeout guard, the views."""

from __future__ import annotations

import logging

import pytest
from podfleet.integrations import CallerConfig, Record, check_key
from podfleet.integrations.celery import create_celery_app
from podfleet.integrations.fastapi import RedactTokens
from podfleet.integrations.ledger import token_digest
from podfleet.integrations.models import JobView
from podfleet.integrations.submit import webhook_url


def test_keys_are_checked_and_named() -> None:
    assert check_key("batch-1:07") == "batch-1:07"
    for bad in ("", "-x", "a b", "a/b", "x" * 201):
        with pytest.raises(ValueError, match="idempotency_key: expected"):
            check_key(bad)


def test_webhook_url_and_token_check() -> None:
    url = webhook_url("http://127.0.0.1:8000/podfleet", "k:1", "tok")
    assert url == "http://127.0.0.1:8000/podfleet/webhooks/runpod/k%3A1?token=tok"
    rec = Record(key="k", state="submitted", token_digests=[token_digest("a"), token_digest("b")])
    assert rec.accepts_token("a") and rec.accepts_token("b")
    assert not rec.accepts_token("c") and not rec.accepts_token("")
    assert token_digest("s3cret") != "s3cret" and len(token_digest("s3cret")) == 64  # sha256


def test_access_log_lines_lose_their_tokens() -> None:
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s" %d',
        ("127.0.0.1", "POST", "/webhooks/runpod/k?token=s3cret&x=1", 200), None,
    )  # fmt: skip
    assert RedactTokens().filter(record)
    assert "s3cret" not in record.getMessage() and "token=***&x=1" in record.getMessage()


def test_countdowns_must_stay_under_the_visibility_timeout() -> None:
    cfg = CallerConfig(endpoint_id="e", webhook_poll_s=60)
    with pytest.raises(ValueError, match=r"visibility_timeout_s \(30\) must exceed"):
        create_celery_app(cfg, broker_url="memory://", visibility_timeout_s=30)
    app = create_celery_app(cfg, broker_url="memory://", visibility_timeout_s=120)
    assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
    assert app.conf.result_expires == 3600 and app.conf.worker_prefetch_multiplier == 1
    assert [q.name for q in app.conf.task_queues] == ["podfleet.high", "podfleet"]
    assert {q.routing_key for q in app.conf.task_queues} == {"podfleet.high", "podfleet"}
    assert {"podfleet.submit", "podfleet.wait", "podfleet.batch"} <= set(app.tasks)


def test_a_final_view_shows_the_jobs_error_not_the_submission_history() -> None:
    rec = Record(
        key="k",
        state="final",
        job_id="j",
        status="COMPLETED",
        result={"output": {"x": 1}, "error": None},
        error="/run outcome unknown (502); not submitted again",
    )
    view = JobView.from_record(rec, "/p")
    assert view.done and view.error is None and view.output == {"x": 1}
    assert view.status_url == "/p/jobs/k"
    pending = JobView.from_record(Record(key="k", state="ambiguous", error="why"), "")
    assert pending.error == "why" and pending.done


def test_config_never_shows_its_secrets() -> None:
    cfg = CallerConfig(endpoint_id="e", api_key="k3y-secret", redis_url="redis://:pw-secret@h:1/0")
    for text in (repr(cfg), str(cfg)):
        assert "k3y-secret" not in text and "pw-secret" not in text
