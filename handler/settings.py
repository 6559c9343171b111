"""All configuration, read from the environment (and `.env`) once, at start-up.

This is the only module that reads `os.environ`, and it never does so at import time: call
`load_settings()` where a process starts and pass the result down. The README's table of variables
is checked against this model by a test, so a field added here must be documented there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "endpoint_id_from", "load_settings"]

_ENDPOINT_URL = re.compile(r"/v2/(?P<id>[A-Za-z0-9_-]+)(?:/[a-z_-]+)?/?$")


def endpoint_id_from(value: str) -> str:
    """Accept a bare endpoint id or a full `https://api.runpod.ai/v2/<id>/run` URL."""
    value = value.strip()
    match = _ENDPOINT_URL.search(value)
    if match:
        return match.group("id")
    if "/" in value or not value:
        # Echo the value only when it cannot hold a credential (a URL's user:password@).
        shown = repr(value[:100]) if "@" not in value else "a URL with credentials (not shown)"
        raise ValueError(f"expected an endpoint id or a .../v2/<id>/run URL, got {shown}")
    return value


class Settings(BaseSettings):
    """Environment variables, by name (case-insensitive). Seeds' names and defaults kept."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # A validation error never echoes what was given: the inputs hold the API key and the
        # database password. Errors still name the variable and say what was expected.
        hide_input_in_errors=True,
    )

    # --- the seeds' variables -------------------------------------------------------------
    runpod_workers: int = Field(1, ge=1, description="Sibling jobs a coordinator keeps in flight.")
    runpod_api_key: SecretStr | None = Field(None, description="RunPod API key (Bearer).")
    runpod_endpoint_id: str | None = Field(None, description="Endpoint that runs sibling jobs.")
    runpod_endpoint: str | None = Field(
        None, description="Same as RUNPOD_ENDPOINT_ID; a full .../v2/<id>/run URL is accepted."
    )
    request_timeout: float = Field(7200, gt=0, description="Deadline of a whole job, seconds.")
    gpu_timeout: float = Field(7200, gt=0, description="Budget of the inference stage, seconds.")
    render_timeout_s: float = Field(3600, gt=0, description="Budget to render one page.")
    scrape_timeout_s: float = Field(3600, gt=0, description="Budget of the scraping stage.")
    navigation_timeout_s: float = Field(1800, gt=0, description="Budget of one page navigation.")
    database_url: SecretStr = Field(
        SecretStr("sqlite:///data/podfleet.db"),
        description="SQLAlchemy URL; SQLite file under ./data/ by default, or postgresql://...",
    )
    db_retry_s: float = Field(
        30,
        ge=0,
        description="How long a load retries transient database errors (refused, reset, "
        "restarting), within the job's deadline; 0 = no retries.",
    )
    log_level: str = Field("INFO", description="loguru level.")

    # --- framework: logging and the API ---------------------------------------------------
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto = JSON lines on RunPod (RUNPOD_POD_ID set), text elsewhere."
    )
    runpod_pod_id: str | None = Field(None, description="Set by RunPod: this worker's id.")
    runpod_webhook_get_job: str | None = Field(
        None, description="Set by RunPod: the job-take URL; set, the SDK runs its job loop."
    )
    runpod_endpoint_base_url: str = Field(
        "https://api.runpod.ai/v2", description="API base; point it at the emulator offline."
    )
    api_timeout_s: float = Field(30, gt=0, description="Timeout of one API request.")
    api_max_retries: int = Field(5, ge=0, description="Retries on 429/5xx/connection errors.")
    wait_timeout_s: float = Field(300, gt=0, description="Client wait() default timeout.")
    wait_interval_s: float = Field(5, gt=0, description="Client wait() default poll interval.")

    # --- framework: the worker loop --------------------------------------------------------
    worker_loop: Literal["stock", "prompt"] = Field(
        "prompt",
        description="prompt = take the next job as soon as a slot frees; stock = the SDK's own "
        "loop (up to 1 s between jobs). prompt runs only on runpod 1.12.0 (verified), else stock.",
    )
    worker_concurrency: int = Field(
        1,
        ge=1,
        le=1000,
        description="Jobs one worker runs at once (the SDK's concurrency_modifier); > 1 for "
        "I/O-bound pipelines, e.g. siblings that mostly wait.",
    )

    # --- framework: pipelines -------------------------------------------------------------
    podfleet_pipelines: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Modules (comma-separated, `module` or `module:attr`) holding pipelines to "
        "register, besides entry points (group podfleet.pipelines); see docs/pipelines.md.",
    )

    # --- framework: coordinator -----------------------------------------------------------
    chunk_size: int = Field(0, ge=0, description="Items per sibling job; 0 = from items/workers.")
    chunk_order: Literal["interleaved", "contiguous"] = Field(
        "interleaved",
        description="How items are dealt into chunks: spread (fixed shuffle) or input order.",
    )
    sibling_max_retries: int = Field(2, ge=0, description="Retries of a failed sibling chunk.")
    sibling_execution_timeout_s: float = Field(
        600, gt=0, description="policy.executionTimeout of each sibling job."
    )
    sibling_ttl_s: float = Field(3600, gt=0, description="policy.ttl of each sibling job.")
    pickup_timeout_s: float = Field(
        20, gt=0, description="A chunk no worker took within this is run by the coordinator."
    )
    status_poll_interval_s: float = Field(0.5, gt=0, description="Coordinator status polling.")
    load_mode: Literal["sibling", "coordinator"] = Field(
        "sibling", description="Who writes rows: each sibling, or the coordinator at the end."
    )
    fanout_ledger: bool = Field(
        True,
        description="Keep each fan-out's chunks in the chunk ledger (DATABASE_URL): a job run "
        "again resumes, and no chunk's work is done twice (docs/coordinator.md).",
    )
    items_from_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["/runpod-volume", "data"],
        description="Directories a job's items_from.jsonl path may name (comma-separated; "
        "relative ones from the working directory).",
    )
    inline_results_max_items: int = Field(
        1000,
        ge=0,
        description="A job with items_from returns its per-item results inline up to this many "
        "items; above, they stay in the ledger and the output says where.",
    )
    stream_results: bool = Field(
        True, description="A coordinator posts per-item results to /stream as chunks finish."
    )

    # --- framework: scraping --------------------------------------------------------------
    chromium_path: str | None = Field(None, description="Browser executable for Playwright.")
    scrape_concurrency: int = Field(0, ge=0, description="Pages in parallel; 0 = from memory.")
    scrape_per_domain_concurrency: int = Field(8, ge=1, description="Pages in parallel per host.")
    scrape_retries: int = Field(2, ge=0, description="Retries on network errors and 5xx.")
    scrape_block_resources: bool = Field(
        True, description="Load no images or web fonts; media does not autoplay."
    )
    scrape_wait: Literal["quiet", "load", "networkidle", "domcontentloaded"] = Field(
        "quiet", description="quiet = DOM loaded plus a short network-quiet window."
    )
    scrape_quiet_window_ms: int = Field(150, ge=0, description="Network-quiet window, ms.")
    scrape_user_agent: str = Field(
        "podfleet/0.1 (+https://github.com/podfleet)", description="User-Agent of the browser."
    )
    scrape_respect_robots: bool = Field(False, description="Honour robots.txt.")
    scrape_allow_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts exempt from the private-address block, comma-separated: host (its "
        "ports 80 and 443 only), host:port, host:* (every port), [IPv6]:port, .domain[:port] "
        "(the domain and its subdomains).",
    )
    scrape_max_page_bytes: int = Field(5_000_000, gt=0, description="Rendered HTML cap.")

    # --- framework: inference -------------------------------------------------------------
    model_name: str = Field("all-MiniLM-L6-v2", description="Embedding model (registry name).")
    infer_device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Model device.")
    infer_precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto",
        description="Model weights' precision; auto = fp16 on CUDA, fp32 on CPU (bf16 is ~2.7x "
        "faster on CPUs with AMX, cosine >= 0.99 to fp32).",
    )
    infer_token_budget: int = Field(
        0,
        ge=0,
        description="Tokens (rows x padded length) per inference batch; 0 = by device: "
        "2048 per torch thread on CPU (2048-16384), 16384 on CUDA.",
    )
    near_duplicate_threshold: float = Field(
        0.92, gt=0, le=1, description="Cosine above which two documents are near-duplicates."
    )
    infer_fitness_check: bool = Field(
        True,
        description="At start-up on RunPod, load the model and encode once before taking jobs; "
        "false for an endpoint that only coordinates.",
    )

    @field_validator("scrape_allow_hosts", "podfleet_pipelines", "items_from_roots", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip() for h in value.split(",") if h.strip()]
        return value

    @field_validator("runpod_endpoint_id", "runpod_endpoint")
    @classmethod
    def _endpoint_id(cls, value: str | None) -> str | None:
        # Per field, so that an error names the variable (a model-level error names none).
        return None if value is None else endpoint_id_from(value)

    @model_validator(mode="after")
    def _one_endpoint(self) -> Settings:
        if self.runpod_endpoint and not self.runpod_endpoint_id:
            self.runpod_endpoint_id = self.runpod_endpoint
        return self

    @property
    def on_runpod(self) -> bool:
        return bool(self.runpod_pod_id)

    @property
    def endpoint_configured(self) -> bool:
        return bool(self.runpod_endpoint_id)

    def sqlite_dir(self) -> Path | None:
        url = self.database_url.get_secret_value()
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            return Path(url.removeprefix("sqlite:///")).parent
        return None


def load_settings() -> Settings:
    """The settings, read from the environment (and `.env`) now, never at import.

    Read once where a process starts (`podfleet.main`, the CLI) and passed down: this is not
    cached, so nothing holds a stale copy and tests need no cache to clear."""
    return Settings()
