"""Playwright and Chromium failures → one clear sentence per page, and whether to try again.

Scrape-specific on purpose: pipeline/translate.py maps exceptions in general; here we know which
URL was being loaded, what the guard refused and which limit was hit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from podfleet.pipeline.scrape.guard import AddressGuard

__all__ = ["Failure", "describe_failure"]

_NET_ERROR = re.compile(r"net::(ERR_[A-Z_]+)")
# Worth another attempt in the same call: the server or the network may do better next time.
_RETRY_NET = frozenset(
    {
        "ERR_CONNECTION_REFUSED",
        "ERR_CONNECTION_RESET",
        "ERR_CONNECTION_CLOSED",
        "ERR_CONNECTION_ABORTED",
        "ERR_CONNECTION_FAILED",
        "ERR_CONNECTION_TIMED_OUT",
        "ERR_TIMED_OUT",
        "ERR_EMPTY_RESPONSE",
        "ERR_NETWORK_CHANGED",
        "ERR_ADDRESS_UNREACHABLE",
        "ERR_INTERNET_DISCONNECTED",
        "ERR_TUNNEL_CONNECTION_FAILED",
        "ERR_PROXY_CONNECTION_FAILED",
        "ERR_HTTP2_PROTOCOL_ERROR",
        "ERR_INCOMPLETE_CHUNKED_ENCODING",
        "ERR_CONTENT_LENGTH_MISMATCH",
        "ERR_SOCKET_NOT_CONNECTED",
    }
)
_NET_TEXT = {
    "ERR_NAME_NOT_RESOLVED": "host name could not be resolved",
    "ERR_CONNECTION_REFUSED": "connection refused",
    "ERR_CONNECTION_RESET": "connection reset",
    "ERR_CONNECTION_CLOSED": "connection closed",
    "ERR_EMPTY_RESPONSE": "the server closed the connection without answering",
    "ERR_TOO_MANY_REDIRECTS": "too many redirects",
    "ERR_ABORTED": "navigation aborted",
    "ERR_TUNNEL_CONNECTION_FAILED": "could not connect",
    "ERR_CERT_AUTHORITY_INVALID": "TLS certificate not trusted",
    "ERR_CERT_COMMON_NAME_INVALID": "TLS certificate is for another host",
    "ERR_CERT_DATE_INVALID": "TLS certificate expired or not yet valid",
    "ERR_SSL_PROTOCOL_ERROR": "TLS handshake failed",
    "ERR_INVALID_RESPONSE": "invalid HTTP response",
    "ERR_UNSAFE_PORT": "the port is blocked by the browser as unsafe",
}


@dataclass(frozen=True)
class Failure:
    message: str
    retryable: bool  # trying later may help (reported to the caller)
    retry_now: bool = False  # worth another attempt within this call
    browser_lost: bool = False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line.removeprefix("Page.goto: ").removeprefix("Page.content: ")[:300]


def describe_failure(
    exc: BaseException,
    *,
    nav_url: str | None,
    guard: AddressGuard,
    too_large: int | None,
    max_page_bytes: int,
    crashed: bool,
    browser_gone: bool,
    navigation_timeout_s: float,
    navigating: bool,
) -> Failure:
    text = str(exc)
    where = f" ({nav_url})" if nav_url else ""
    if too_large is not None:
        return Failure(
            f"refused: the page is {too_large} bytes (Content-Length), over the "
            f"SCRAPE_MAX_PAGE_BYTES cap of {max_page_bytes}{where}",
            retryable=False,
        )
    if browser_gone:
        return Failure("the browser crashed or disconnected", retryable=True, browser_lost=True)
    if crashed or "crash" in text.lower():
        return Failure(f"the page crashed while loading{where}", retryable=True, retry_now=True)
    refused = guard.reason_for_url(nav_url) if nav_url else None
    if refused:
        transient = refused.startswith("could not resolve")
        return Failure(f"{refused}{where}", retryable=transient)
    if "Download is starting" in text:
        return Failure(
            f"refused: the URL starts a file download, not a page (downloads are off){where}",
            retryable=False,
        )
    name = type(exc).__name__
    if name == "TimeoutError":
        if navigating:
            return Failure(
                f"navigation timed out after {navigation_timeout_s:.1f}s "
                f"(NAVIGATION_TIMEOUT_S or the scrape budget){where}",
                retryable=True,
            )
        return Failure(f"reading the rendered page timed out{where}", retryable=True)
    if "has been closed" in text or "Target closed" in text:
        return Failure(f"the page was closed while loading{where}", retryable=True, retry_now=True)
    match = _NET_ERROR.search(text)
    if match:
        code = match.group(1)
        meaning = _NET_TEXT.get(code, code)
        retry = code in _RETRY_NET
        return Failure(f"{meaning} ({code}){where}", retryable=retry, retry_now=retry)
    return Failure(f"{name}: {_first_line(exc)}", retryable=False)
