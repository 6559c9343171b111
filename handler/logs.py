"""Logging: loguru with the job id and worker id on every line, secrets redacted, values bounded.

JSON lines on RunPod (its log viewer parses them), readable text elsewhere. Any text that reaches
a log line may come from a job's input, so redaction is linear in its length (no regex that can
backtrack over the whole line) and a line is cut to `MAX_MESSAGE_CHARS` after redaction (cutting
first could leave half a secret that no longer matches).
"""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import Any

from loguru import logger
from podfleet.settings import Settings

__all__ = [
    "MAX_EXTRA_CHARS",
    "MAX_MESSAGE_CHARS",
    "Redactor",
    "bound",
    "configure_logging",
    "redact_url_passwords",
]

MAX_MESSAGE_CHARS = 4000  # a log line's message; the rest is replaced by a marker
MAX_EXTRA_CHARS = 200  # a bound context value (job id, worker id)

# Both patterns start with a literal or a bounded run: each start position costs O(1) amortised.
_USER = re.compile(r"[^:/@\s]*:")  # a URL's user name and its colon, right after "://"
_SPACE = re.compile(r"\s")
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+")
_TEXT_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[worker_id]}</cyan>/<cyan>{extra[job_id]}</cyan> {message}"
)


def bound(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters with a marker saying how many were dropped."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated {len(text) - limit} chars]"


def redact_url_passwords(text: str) -> str:
    """`scheme://user:PASSWORD@host` → `scheme://user:***@host`, in time linear in len(text).

    The password runs to the last `@` before the next whitespace (a raw `@` or `/` in a password
    is redacted too; over-redacting a log line is harmless). Scans only move forward: the
    whitespace and no-`@` answers are cached for the run they cover."""
    if "://" not in text:
        return text
    n = len(text)
    out: list[str] = []
    last = 0
    ws_from = ws_at = -1  # the first whitespace at or after any p in [ws_from, ws_at] is ws_at
    bare_from = bare_to = -1  # there is no "@" in [bare_from, bare_to)
    i = text.find("://")
    while i != -1:
        user = _USER.match(text, i + 3)
        if user:
            p = user.end()
            if not ws_from <= p <= ws_at:
                space = _SPACE.search(text, p)
                ws_from, ws_at = p, space.start() if space else n
            end = ws_at
            at = -1 if bare_from <= p and end <= bare_to else text.rfind("@", p, end)
            if at > p:
                out.append(text[last:p])
                out.append("***")
                last = at
                i = text.find("://", at)
                continue
            bare_from, bare_to = (p + 1 if at == p else p), end
        i = text.find("://", i + 1)
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


class Redactor:
    """Replaces known secret values, URL passwords and Authorization headers with `***`."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = redact_url_passwords(text)
        return _AUTH_HEADER.sub(r"\1***", text)


def _secrets_of(settings: Settings) -> list[str]:
    from sqlalchemy import make_url

    found = []
    if settings.runpod_api_key:
        found.append(settings.runpod_api_key.get_secret_value())
    try:
        password = make_url(settings.database_url.get_secret_value()).password
        if password:
            found.append(str(password))
    except Exception:
        pass
    return found


@lru_cache(maxsize=64)
def _redacted_type(original: type) -> type[Exception]:
    """A stand-in exception class that prints with the original's name."""
    return type(original.__name__, (Exception,), {"__module__": original.__module__})


def _chain_text(exc: BaseException, redact: Redactor) -> str:
    """The exception's message and its causes', each redacted, then bounded."""
    limit = MAX_MESSAGE_CHARS // 4
    parts: list[str] = []
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen and len(parts) < 4:
        seen.add(id(cause))
        try:
            text = str(cause)
        except Exception:  # a __str__ that raises
            text = "<unprintable>"
        text = bound(redact(text), limit)
        parts.append(text if cause is exc else f"(from {type(cause).__name__}: {text})")
        cause = cause.__cause__ or cause.__context__
    return " ".join(parts)


def _redact_exception(record_exc: Any, redact: Redactor) -> Any:
    """The record's exception with its message (and its causes') redacted and bounded; the
    traceback's frames stay (diagnose is off, so they hold no values)."""
    from loguru._recattrs import RecordException

    typ, value, traceback = record_exc
    if value is None or typ is None:
        return record_exc
    return RecordException(typ, _redacted_type(typ)(_chain_text(value, redact)), traceback)


def _patcher(redact: Redactor):
    def patch(record: Any) -> None:
        record["message"] = bound(redact(record["message"]))
        extra = record["extra"]
        for key, value in extra.items():
            if isinstance(value, str) and len(value) > 8:
                extra[key] = bound(redact(value), MAX_EXTRA_CHARS)
        if record["exception"] is not None:
            record["exception"] = _redact_exception(record["exception"], redact)
            extra["exc_redacted"] = True

    return patch


def configure_logging(settings: Settings, *, worker_id: str | None = None) -> Redactor:
    """Replace loguru's default sink. Safe to call more than once."""
    redact = Redactor(_secrets_of(settings))
    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and settings.on_runpod
    )
    logger.remove()
    logger.configure(
        extra={"job_id": "-", "worker_id": worker_id or settings.runpod_pod_id or "local"},
        patcher=_patcher(redact),
    )
    logger.add(
        sys.stderr,
        level=settings.log_level.upper(),
        serialize=use_json,
        format="{message}" if use_json else _TEXT_FORMAT,
        backtrace=False,
        diagnose=False,  # diagnose would print local variables, secrets among them
    )
    return redact
