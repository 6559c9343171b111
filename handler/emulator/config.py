"""Configuration of the local RunPod emulator: the endpoint, its workers, and injected faults.

`FaultConfig` is mutable while the emulator runs (`emu.faults.max_workers = 1`): every assignment
is validated and announced to the emulator, so waiting long-polls re-check at once.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = ["REPO_ROOT", "EmulatorConfig", "FaultConfig"]

REPO_ROOT = Path(__file__).resolve().parents[2]

CLIENT_ROUTES = (
    "run",
    "runsync",
    "status",
    "stream",
    "cancel",
    "retry",
    "purge-queue",
    "health",
    "workers",
)


def _default_worker_cmd() -> list[str]:
    """The checkout's handler.py; from a wheel (no handler.py) podfleet's own worker."""
    if (REPO_ROOT / "handler.py").is_file():
        return [sys.executable, "-u", "handler.py"]
    return [sys.executable, "-u", "-m", "podfleet"]


class FaultConfig(BaseModel):
    """Faults the emulator injects; change them at run time, they apply to the next request."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    api_error_rate: float = Field(
        0.0, ge=0, le=1, description="Fraction of client API calls answered with an error."
    )
    api_error_statuses: list[int] = Field(
        default_factory=lambda: [429, 500, 502, 503], min_length=1
    )
    api_error_routes: list[str] | None = Field(
        None, description=f"Client routes that may fail, of {CLIENT_ROUTES}; None = all."
    )
    run_accepted_error_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Fraction of /run calls that create the job but answer 5xx (a retried /run "
        "then makes a duplicate, as on RunPod).",
    )
    rate_limits: bool = Field(
        False,
        description="Answer 429 (Retry-After: 1) to a client call over RunPod's published "
        "per-endpoint rate limit (per 10 s: run 1,000; runsync, status, stream 2,000; cancel "
        "100; purge-queue 2).",
    )
    latency_s: float = Field(0.0, ge=0, description="Added to every client API call.")
    cold_start_s: float = Field(
        0.0, ge=0, description="Delay before a (re)started worker begins taking jobs."
    )
    max_workers: int | None = Field(
        None, ge=0, description="Cap below EmulatorConfig.workers; the rest show as throttled."
    )
    seed: int | None = Field(None, description="Seed of the fault dice (None = random).")

    _on_change: Callable[[], object] | None = PrivateAttr(None)

    @field_validator("api_error_routes")
    @classmethod
    def _known_routes(cls, routes: list[str] | None) -> list[str] | None:
        for route in routes or []:
            if route not in CLIENT_ROUTES:
                raise ValueError(f"unknown route {route!r}; use one of {CLIENT_ROUTES}")
        return routes

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_") and self._on_change is not None:
            self._on_change()

    def restore(self, other: FaultConfig) -> None:
        """Set every fault to `other`'s (e.g. the faults an emulator started with, between tests);
        only the ones that differ are assigned, so the change hook fires for those alone."""
        for name in type(self).model_fields:
            value = getattr(other, name)
            if getattr(self, name) != value:
                setattr(self, name, copy.deepcopy(value))


class EmulatorConfig(BaseModel):
    """One emulated endpoint with `workers` worker processes (or in-process workers)."""

    model_config = ConfigDict(extra="forbid")

    endpoint_id: str = Field("local-endpoint", pattern=r"^[A-Za-z0-9_-]+$")
    api_key: str | None = Field(
        None, description="If set, the client API requires it (Bearer or raw) else 401."
    )
    workers: int = Field(2, ge=0, le=64, description="Worker processes (max workers).")
    workers_min: int | None = Field(
        None,
        ge=0,
        description="Scale between workers_min and workers (workersMin/workersMax) with queue "
        "depth; idle workers stop after idle_timeout_s. None = all `workers` always on.",
    )
    idle_timeout_s: float = Field(
        5.0, gt=0, description="An idle worker above workers_min is stopped after this."
    )
    worker_cmd: list[str] = Field(default_factory=lambda: _default_worker_cmd(), min_length=1)
    worker_cwd: Path = REPO_ROOT
    worker_env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment for workers (wins over ours)."
    )
    inherit_env: bool = Field(
        True, description="Workers inherit this process's environment (minus RUNPOD_*)."
    )
    worker_log_path: Path | None = Field(
        None, description="Append workers' output here (one formatted line each); None = stderr."
    )
    log_events: bool = Field(
        False, description="Also write one line per queue event (queued, started, ended, exits)."
    )
    ping_interval_ms: int = Field(1000, ge=1000, description="RUNPOD_PING_INTERVAL (SDK: >=1000).")
    lost_after_s: float = Field(
        10.0, gt=0, description="A busy worker silent this long is lost: killed, job re-queued."
    )
    max_job_retries: int = Field(1, ge=0, description="Re-queues of a job whose worker died.")
    result_retention_s: float = Field(1800, gt=0, description="Results kept after /run.")
    runsync_retention_s: float = Field(60, gt=0, description="Results kept after /runsync.")
    max_payload_bytes: int = Field(10_000_000, gt=0, description="Body limit of /run.")
    max_runsync_payload_bytes: int = Field(20_000_000, gt=0, description="Body limit, /runsync.")
    max_stream_chunk_bytes: int = Field(
        1_000_000,
        gt=0,
        description="Body limit of one job-stream post; a bigger chunk is refused (413) and "
        "dropped, the job runs on. RunPod publishes no figure: a conservative bound.",
    )
    take_long_poll_s: float = Field(
        20.0,
        gt=0,
        lt=90,
        description="How long job-take/job-stop are held open (SDK gives up at 90 s).",
    )
    stream_long_poll_s: float = Field(
        2.0, ge=0, lt=10, description="How long /stream waits for a new chunk (SDK timeout 10 s)."
    )
    restart_backoff_s: float = Field(0.5, ge=0, description="First restart delay; doubles.")
    max_restart_backoff_s: float = Field(10.0, ge=0, description="Cap of the restart delay.")
    unhealthy_after_crashes: int = Field(
        3, ge=1, description="Exits within crash_window_s that mark a worker unhealthy."
    )
    crash_window_s: float = Field(60.0, gt=0)
    ready_timeout_s: float = Field(
        420.0, gt=0, description="A worker that has not asked for a job this long is unhealthy."
    )
    shutdown_grace_s: float = Field(
        30.0, ge=0, description="On exit, in-flight jobs get this long before SIGKILL."
    )
    default_execution_timeout_ms: int = Field(600_000, gt=0)
    default_ttl_ms: int = Field(86_400_000, gt=0)
    max_runsync_wait_ms: int = Field(300_000, gt=0, description="Cap of /runsync?wait=.")
    faults: FaultConfig = Field(default_factory=FaultConfig)

    @model_validator(mode="after")
    def _consistent(self) -> EmulatorConfig:
        if self.lost_after_s < 2 * self.ping_interval_ms / 1000:
            raise ValueError(
                f"lost_after_s ({self.lost_after_s}) must be at least two ping intervals "
                f"(ping_interval_ms={self.ping_interval_ms})"
            )
        if self.workers_min is not None and self.workers_min > self.workers:
            raise ValueError(
                f"workers_min ({self.workers_min}) must not exceed workers ({self.workers})"
            )
        return self

    @property
    def scaling(self) -> bool:
        """True when workers start and stop with the queue (workers_min < workers)."""
        return self.workers_min is not None and self.workers_min < self.workers
