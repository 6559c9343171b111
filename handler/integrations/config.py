"""Configuration of the caller-side integrations (FastAPI, Celery): one model, passed in.

Built from podfleet's settings for the endpoint part (`CallerConfig.from_settings`), plus the
Redis URL of the submission ledger and the polling, retry and webhook choices. Nothing here reads
the environment.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from podfleet.api import EndpointClient, Policy, RetryPolicy
from podfleet.settings import Settings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["KEY_PATTERN", "CallerConfig", "check_key"]

# Client keys end up in Redis keys, Celery task ids and webhook URLs: keep them plain.
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
_KEY = re.compile(KEY_PATTERN)


def check_key(key: str, field: str = "idempotency_key") -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(
            f"{field}: expected 1-200 characters of letters, digits and . _ : - "
            f"(starting with a letter or digit), got {key!r}"
        )
    return key


class CallerConfig(BaseModel):
    """Everything the integrations need; durations in seconds."""

    model_config = ConfigDict(extra="forbid")

    # --- the endpoint ---------------------------------------------------------------------
    endpoint_id: str = Field(min_length=1)
    base_url: str = "https://api.runpod.ai/v2"
    api_key: SecretStr | None = None
    api_timeout_s: float = Field(30.0, gt=0, description="Timeout of one API request.")
    api_max_retries: int = Field(5, ge=0, description="Retries of reads (status, health, cancel).")
    policy: Policy | None = Field(None, description="Default policy of submitted jobs.")

    # --- the submission ledger (Redis) ----------------------------------------------------
    redis_url: str = Field("redis://127.0.0.1:6379/0", repr=False)  # may hold a password
    key_prefix: str = Field("podfleet", pattern=r"^[A-Za-z0-9._:-]+$")
    result_expires_s: float = Field(3600, gt=0, description="Final results kept this long.")
    record_ttl_s: float = Field(
        90_000, gt=0, description="An unfinished record is kept this long (RunPod ttl: 24 h)."
    )
    submit_lease_s: float = Field(
        120, gt=0, description="A submitter's claim on a key; renewed before every /run try."
    )

    # --- POST /run ------------------------------------------------------------------------
    run_retries: int = Field(5, ge=0, description="/run retries after a definite rejection.")
    retry_run_on_server_error: bool = Field(
        False,
        description="Take a 5xx reply to /run as 'no job created' and retry it. RunPod does not "
        "say whether a 5xx can follow an accepted job, so the default treats it as ambiguous.",
    )
    on_ambiguous: Literal["fail", "resubmit"] = Field(
        "fail",
        description="A /run that may or may not have created a job (timeout, dropped "
        "connection, a submitter that died while sending): fail = never submit again "
        "(at most once); resubmit = submit again (at least once).",
    )

    # --- waiting --------------------------------------------------------------------------
    first_poll_s: float = Field(0.5, gt=0, description="First status poll after submission.")
    poll_interval_s: float = Field(5.0, gt=0, description="Polls back off up to this.")
    wait_timeout_s: float = Field(300.0, gt=0, description="Give up waiting after this.")
    cancel_on_timeout: bool = Field(True, description="Cancel a job whose wait timed out.")
    webhook_base_url: str | None = Field(
        None,
        description="Public URL of the FastAPI router (incl. its prefix); set = every job "
        "gets a webhook with its own secret token, and polls slow down to webhook_poll_s.",
    )
    webhook_poll_s: float = Field(60.0, gt=0, description="Safety-net polls with webhooks.")

    # --- Celery ---------------------------------------------------------------------------
    error_retries: int = Field(3, ge=0, description="Task retries on transient errors.")
    error_backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles, jitter.")
    error_backoff_max_s: float = Field(60.0, gt=0)
    batch_concurrency: int = Field(16, ge=1, description="Submissions in flight in a batch.")
    queue: str = Field("podfleet", description="Celery queue of normal jobs.")
    high_priority_queue: str = Field("podfleet.high", description="Celery queue served first.")

    @field_validator("base_url", "webhook_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CallerConfig:
        kw: dict[str, Any] = {
            "endpoint_id": settings.runpod_endpoint_id or "",
            "base_url": settings.runpod_endpoint_base_url,
            "api_key": settings.runpod_api_key,
            "api_timeout_s": settings.api_timeout_s,
            "api_max_retries": settings.api_max_retries,
            "wait_timeout_s": settings.wait_timeout_s,
            "poll_interval_s": settings.wait_interval_s,
        }
        kw.update(overrides)
        return cls(**kw)

    def client(self, **overrides: Any) -> EndpointClient:
        """An EndpointClient for reads (status, cancel, health), with the usual retries."""
        kw: dict[str, Any] = {
            "endpoint_id": self.endpoint_id,
            "base_url": self.base_url,
            "api_key": self.api_key,
            "timeout_s": self.api_timeout_s,
            "retry": RetryPolicy(max_retries=self.api_max_retries),
            "wait_timeout_s": self.wait_timeout_s,
            "wait_interval_s": self.poll_interval_s,
        }
        kw.update(overrides)
        return EndpointClient(**kw)

    def run_client(self, **overrides: Any) -> EndpointClient:
        """An EndpointClient for /run with no retries of its own: the submitter decides."""
        return self.client(retry=RetryPolicy(max_retries=0), **overrides)
