"""The one delay rule and the one Retry-After reader, shared by every retrying part."""

from __future__ import annotations

import email.utils
import random
import time

import pytest
from podfleet.api.errors import RateLimited, error_for_status
from podfleet.api.retry import RetryPolicy
from podfleet.pipeline.backoff import Backoff, full_jitter_s, parse_retry_after_s


def test_full_jitter_stays_under_the_doubling_cap_and_spreads_over_it() -> None:
    rng = random.Random(5)
    for attempt, cap in ((1, 0.5), (2, 1.0), (3, 2.0), (6, 10.0), (30, 10.0)):
        draws = [full_jitter_s(attempt, 0.5, 10.0, rng) for _ in range(400)]
        assert all(0 <= d <= cap for d in draws), attempt
        assert max(draws) > 0.9 * cap and min(draws) < 0.1 * cap, attempt  # full, not equal jitter


def test_every_policy_draws_from_the_same_rule() -> None:
    client = RetryPolicy(base_s=0.5, max_s=10.0, rng=random.Random(9))
    store = Backoff(base_s=0.5, max_s=10.0, rng=random.Random(9))
    rule = random.Random(9)
    for attempt in range(1, 8):
        expected = full_jitter_s(attempt, 0.5, 10.0, rule)
        assert client.delay_s(attempt, None) == store.delay_s(attempt) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (" 2.5 ", 2.5), ("-3", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after_s(header) == expected


def test_retry_after_http_date_is_read_by_the_client_too() -> None:
    """The client used to ignore an HTTP-date Retry-After (its own second parser)."""
    header = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after_s(header) or 0) <= 31
    exc = error_for_status(429, "run", "", header)
    assert isinstance(exc, RateLimited) and exc.retry_after_s is not None
    assert 25 <= exc.retry_after_s <= 31
    assert RetryPolicy(max_retry_after_s=60).delay_s(1, exc) == exc.retry_after_s
