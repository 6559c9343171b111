"""Logging: loguru with the job id and worker id on every line, secrets redacted.

JSON lines on RunPod (its log viewer parses them), readable text elsewhere.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from loguru import logger
from podfleet.settings import Settings

__all__ = ["Redactor", "configure_logging"]

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<pw>[^@\s]+)(?=@)", re.I)
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(bearer\s+)?[^\s'\",}]+")
_TEXT_FORMAT = (
    "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[worker_id]}</cyan>/<cyan>{extra[job_id]}</cyan> {message}"
)


class Redactor:
    """Replaces known secret values, URL passwords and Authorization headers with `***`."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = _URL_PASSWORD.sub(r"\g<scheme>***", text)
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


def configure_logging(settings: Settings, *, worker_id: str | None = None) -> Redactor:
    """Replace loguru's default sink. Safe to call more than once."""
    redact = Redactor(_secrets_of(settings))

    def patch(record: Any) -> None:
        record["message"] = redact(record["message"])
        if record["exception"] is not None:
            record["extra"]["exc_redacted"] = True

    use_json = settings.log_format == "json" or (
        settings.log_format == "auto" and settings.on_runpod
    )
    logger.remove()
    logger.configure(
        extra={"job_id": "-", "worker_id": worker_id or settings.runpod_pod_id or "local"},
        patcher=patch,
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
