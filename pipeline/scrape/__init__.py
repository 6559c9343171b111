"""The scraping stage's library: fetch `{url}` sources and render inline `{html}` with Playwright.

FIRST CUT (issue 2): inline HTML passes through unrendered; URL sources fail with a clear message.
Issue 5 replaces `fetch_pages` with the Playwright implementation behind the same signature.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config import ScrapeConfig
from pipeline.resources import WarmResources

__all__ = ["PageRequest", "PageResult", "fetch_pages"]


class PageRequest(BaseModel):
    model_config = ConfigDict(frozen=True)
    url: str | None = None
    html: str | None = None


class PageResult(BaseModel):
    url: str | None = None
    final_url: str | None = None
    status: int | None = None
    title: str | None = None
    html: str | None = None
    error: str | None = None
    retryable: bool = False
    timings_ms: dict[str, float] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


async def fetch_pages(
    requests: list[PageRequest],
    config: ScrapeConfig,
    resources: WarmResources,
    *,
    budget_s: float | None = None,
) -> list[PageResult]:
    """One result per request, same order; a failing page fails only its own result."""
    results = []
    for req in requests:
        if req.html is not None:
            results.append(PageResult(url=req.url, final_url=req.url, html=req.html))
        else:
            results.append(
                PageResult(url=req.url, error="fetching URLs is not available yet (issue 5)")
            )
    return results
