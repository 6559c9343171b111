"""The address guard on its own: names, literals and schemes (no browser, no network)."""

from __future__ import annotations

import pytest
from podfleet.pipeline.scrape.guard import AddressGuard


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("localhost", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.9", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.10", "link-local"),
        ("100.64.1.1", "carrier-grade"),
        ("fd00:ec2::254", "metadata"),
        ("fc00::1", "private"),
        ("fe80::1", "link-local"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "reserved"),
        ("metadata.google.internal", "metadata"),
    ],
)
async def test_unsafe_hosts_refused(host: str, why: str) -> None:
    verdict = await AddressGuard().check_host(host)
    assert not verdict.allowed
    assert why in verdict.reason and host in verdict.reason


async def test_public_literal_allowed_and_allow_list_exempts() -> None:
    assert (await AddressGuard().check_host("93.184.215.14")).allowed
    guard = AddressGuard(["127.0.0.1", ".corp.test"])
    assert (await guard.check_host("127.0.0.1")).allowed
    assert not (await guard.check_host("127.0.0.2")).allowed
    assert guard.is_allowed_host("wiki.corp.test")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "data:text/html,<b>x</b>", "chrome://version", "javascript:1"]
)
async def test_non_http_schemes_refused(url: str) -> None:
    verdict = await AddressGuard(["127.0.0.1"]).check_url(url)
    assert not verdict.allowed and "only http and https" in verdict.reason
