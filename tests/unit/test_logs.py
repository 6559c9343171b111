"""Log redaction is linear in the line's length, log lines are bounded, exceptions redacted."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time

import pytest
from loguru import logger
from podfleet.logs import (
    MAX_EXTRA_CHARS,
    MAX_MESSAGE_CHARS,
    Redactor,
    bound,
    configure_logging,
    redact_url_passwords,
)
from podfleet.settings import Settings

MB = 1_000_000

# Inputs that made the old URL-password regex quadratic: long runs of scheme characters, many
# "://" with no "@", user:password pairs with no "@" after them.
ADVERSARIAL = {
    "letters": lambda n: "a" * n,
    "schemes": lambda n: "a://b:" * (n // 6),
    "no_at": lambda n: "x://u:" + "p" * n,
    "spaced": lambda n: "x://u:p " * (n // 8),
    "auth": lambda n: "authorization: " * (n // 15),
}


def _best_time_s(fn, text: str, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - t0)
    return best


@pytest.mark.parametrize("kind", sorted(ADVERSARIAL))
def test_redaction_of_one_megabyte_is_fast_and_linear(kind: str) -> None:
    redact = Redactor(["rpa_SECRETKEY123"])
    make = ADVERSARIAL[kind]
    big, small = make(MB), make(MB // 4)
    big_s = _best_time_s(redact, big)
    small_s = _best_time_s(redact, small)
    # The old pattern took 1.7 s for 16 kB of "a"; linear code does 1 MB in ~0.02-0.2 s here.
    assert big_s < 2.0, f"{kind}: 1 MB took {big_s:.2f} s"
    # 4x the size: ~4x the time when linear, ~16x when quadratic (floor for timer noise).
    assert big_s < 10 * max(small_s, 0.005), f"{kind}: {small_s:.4f} s -> {big_s:.4f} s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://user:hunter2@db:5432/x", "postgresql://user:***@db:5432/x"),
        ("redis://:pw@cache:6379", "redis://:***@cache:6379"),
        ("x://u:p@ss@host/p", "x://u:***@host/p"),  # an "@" in the password
        ("a://b:c a://d:e@f", "a://b:c a://d:***@f"),  # no "@" before the space
        ("http://example.com/path?q=1", "http://example.com/path?q=1"),
        ("a://b:@c", "a://b:@c"),
        ("no url at all", "no url at all"),
    ],
)
def test_url_passwords(text: str, expected: str) -> None:
    assert redact_url_passwords(text) == expected


def test_redaction_finds_a_secret_deep_in_a_long_line() -> None:
    redact = Redactor(["rpa_SECRETKEY123"])
    text = "a://b:" * 10_000 + " rpa_SECRETKEY123 " + "postgresql://u:pw9@h/x" + "z" * 100_000
    out = redact(text)
    assert "SECRETKEY" not in out and "pw9" not in out


def test_bound_marks_what_it_cut() -> None:
    assert bound("abc", 5) == "abc"
    assert bound("x" * 10, 4) == "xxxx…[truncated 6 chars]"


@pytest.fixture
def json_sink(clean_env, monkeypatch):
    monkeypatch.setenv("RUNPOD_API_KEY", "rpa_TOPSECRET999")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:dbpass777@localhost/x")
    monkeypatch.setenv("LOG_FORMAT", "json")
    configure_logging(Settings(), worker_id="w-1")
    sink = io.StringIO()
    logger.add(sink, serialize=True, backtrace=False, diagnose=False)
    yield sink
    logger.remove()


def _records(sink: io.StringIO) -> list[dict]:
    return [json.loads(line)["record"] for line in sink.getvalue().splitlines()]


def test_long_values_are_cut_after_redaction(json_sink) -> None:
    long_id = "j" * 150_000
    with logger.contextualize(job_id=long_id):
        logger.info("item {} and key rpa_TOPSECRET999", "i" * 200_000)
    (record,) = _records(json_sink)
    assert len(record["message"]) < MAX_MESSAGE_CHARS + 50
    assert record["message"].endswith("chars]") and "truncated" in record["message"]
    assert len(record["extra"]["job_id"]) < MAX_EXTRA_CHARS + 50
    assert "TOPSECRET" not in json_sink.getvalue()


def test_a_secret_cut_in_half_by_the_bound_is_still_redacted(json_sink) -> None:
    pad = "p" * (MAX_MESSAGE_CHARS - 8)  # the key straddles the cut
    logger.info(pad + "rpa_TOPSECRET999")
    assert "rpa_TOP" not in json_sink.getvalue()


def test_exception_messages_are_redacted(json_sink) -> None:
    key, url = Settings().runpod_api_key, Settings().database_url  # not in this source's lines
    try:
        try:
            raise KeyError(f"inner {url.get_secret_value()}")
        except KeyError as exc:
            raise RuntimeError(f"outer {key.get_secret_value()} " + "z" * 50_000) from exc
    except RuntimeError as exc:
        logger.opt(exception=exc).error("unexpected error")
    text = json_sink.getvalue()
    assert "TOPSECRET" not in text and "dbpass777" not in text
    (record,) = _records(json_sink)
    assert record["exception"]["type"] == "RuntimeError"
    assert "inner" in record["exception"]["value"]  # the cause is kept, redacted
    assert len(record["exception"]["value"]) < MAX_MESSAGE_CHARS + 50


def test_a_job_with_a_huge_pipeline_name_answers_promptly(repo_root, clean_env) -> None:
    """Defect 1: a 100,000-character `pipeline` took 58 s through `handler.py --test_input`."""
    job = {"input": {"pipeline": "p" * 100_000, "items": [{"id": "a"}]}}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(repo_root / "handler.py"), "--test_input", json.dumps(job)],
        cwd=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed_s = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "pipeline" in out and "Traceback" not in out
    assert len(out) < 60_000  # the 100 kB name is not echoed back in full
    assert elapsed_s < 30, f"took {elapsed_s:.1f} s"
