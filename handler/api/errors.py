"""The endpoint API client's exception tree, documented in one place.

ApiError                       any failed API call (has .status_code, .operation)
├── AuthError                  401/403: missing or wrong API key (never retried)
├── JobNotFound                404: unknown job id, or its result expired (ttl, retention)
├── BadRequest                 other 4xx (payload too large, bad body...; never retried)
├── RateLimited                429 after the retries ran out (.retry_after_s if the server said)
├── ServerError                5xx after the retries ran out
├── ApiConnectionError         connect/read errors after the retries ran out
└── ApiTimeout                 wait()/runsync gave up, or one request timed out (.last_state)
"""

from __future__ import annotations

from typing import Any

from podfleet.pipeline.backoff import parse_retry_after_s

__all__ = [
    "ApiConnectionError",
    "ApiError",
    "ApiTimeout",
    "AuthError",
    "BadRequest",
    "JobNotFound",
    "RateLimited",
    "ServerError",
    "error_for_status",
]


class ApiError(Exception):
    """A RunPod endpoint API call that did not succeed."""

    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None, operation: str = ""):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.operation = operation


class AuthError(ApiError):
    """401/403: the API key is missing or wrong for this endpoint."""


class JobNotFound(ApiError):
    """404: the job id is unknown, or the job and its result expired."""


class BadRequest(ApiError):
    """A 4xx other than 401/403/404/429: the request itself is wrong."""


class RateLimited(ApiError):
    """429: over the endpoint's rate limit."""

    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class ServerError(ApiError):
    """5xx from the API."""

    retryable = True


class ApiConnectionError(ApiError):
    """The API could not be reached (connect, read or protocol error)."""

    retryable = True


class ApiTimeout(ApiError):
    """A request or a wait() ran out of time; `last_state` is the last status seen."""

    retryable = True

    def __init__(self, message: str, *, last_state: Any = None, **kw: Any):
        super().__init__(message, **kw)
        self.last_state = last_state


def _detail(body: str) -> str:
    body = body.strip().replace("\n", " ")
    return f": {body[:200]}" if body else ""


def error_for_status(
    status_code: int, operation: str, body: str = "", retry_after: str | None = None
) -> ApiError:
    """The typed error for a non-2xx reply (body quoted, shortened; it never holds the key)."""
    where = f"{operation}: HTTP {status_code}"
    kw: dict[str, Any] = {"status_code": status_code, "operation": operation}
    if status_code in (401, 403):
        return AuthError(f"{where}: API key missing or not valid for this endpoint", **kw)
    if status_code == 404:
        return JobNotFound(f"{where}: job unknown or expired{_detail(body)}", **kw)
    if status_code == 429:
        return RateLimited(
            f"{where}: rate limited", retry_after_s=parse_retry_after_s(retry_after), **kw
        )
    if status_code >= 500:
        return ServerError(f"{where}{_detail(body)}", **kw)
    return BadRequest(f"{where}{_detail(body)}", **kw)
