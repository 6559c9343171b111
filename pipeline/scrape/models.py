"""What the scraping stage takes and gives: one `PageRequest` in, one `PageResult` out."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PageRequest", "PageResult"]


class PageRequest(BaseModel):
    """A page to fetch (`url`), or inline HTML to render (`html`, with `url` as its address)."""

    model_config = ConfigDict(frozen=True)
    url: str | None = None
    html: str | None = None


class PageResult(BaseModel):
    url: str | None = None
    final_url: str | None = None
    status: int | None = None  # HTTP status of the main document; None for inline HTML
    title: str | None = None
    html: str | None = None  # rendered HTML, at most max_page_bytes (UTF-8)
    error: str | None = None
    retryable: bool = False
    attempts: int = 0
    truncated: bool = False  # the rendered HTML was cut to max_page_bytes
    html_bytes: int | None = None  # size of the rendered HTML before any cut
    warnings: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)  # navigate, render, total

    @property
    def ok(self) -> bool:
        return self.error is None
