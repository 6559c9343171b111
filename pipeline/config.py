"""Typed configuration of podfleet's shared stage machinery (scraping, inference, the store), built
by the edge from its settings. It is not where a pipeline's own configuration lives: that is the
pipeline's `options_model` (per job) and `settings_model` (per deployment, its own env prefix,
`ctx.settings`), so any pipeline can add its own without editing this file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["InferConfig", "PipelineConfig", "ScrapeConfig", "StoreConfig"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScrapeConfig(_Frozen):
    executable_path: str | None = None
    concurrency: int = 0  # 0 = derived from available memory
    per_domain_concurrency: int = 8
    retries: int = 2
    block_resources: bool = True
    wait: Literal["quiet", "load", "networkidle", "domcontentloaded"] = "quiet"
    quiet_window_ms: int = 150
    user_agent: str = "podfleet/0.1 (+https://github.com/podfleet)"
    respect_robots: bool = False
    allow_hosts: tuple[str, ...] = ()
    max_page_bytes: int = 5_000_000
    navigation_timeout_s: float = 1800
    render_timeout_s: float = 3600
    stage_timeout_s: float = 3600


class InferConfig(_Frozen):
    model_name: str = "all-MiniLM-L6-v2"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # auto: fp16 on CUDA, else fp32
    token_budget: int = Field(0, ge=0)  # rows x padded tokens per batch; 0 = by device
    timeout_s: float = 7200
    near_duplicate_threshold: float = 0.92


class StoreConfig(_Frozen):
    database_url: str = Field("sqlite:///data/podfleet.db", repr=False)  # may hold a password
    retry_s: float = Field(30, ge=0)  # DB_RETRY_S: transient errors retried this long at most


class PipelineConfig(_Frozen):
    scrape: ScrapeConfig = ScrapeConfig()
    infer: InferConfig = InferConfig()
    store: StoreConfig = StoreConfig()
