"""Input models of the flashpoints pipeline (validated at the edge) and its per-item work state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

__all__ = ["Flashpoint", "FlashpointWork", "FlashpointsOptions", "Source", "SourceWork"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Text fields are stripped of surrounding whitespace; ids are not (they come back exactly as
# given, and "a" and "a " are two items).
_Stripped = Annotated[str, StringConstraints(strip_whitespace=True)]


class Source(_Strict):
    """A page to read: `{url}` to fetch, or `{html, url?}` when the caller already holds it."""

    url: _Stripped | None = Field(None, min_length=1, max_length=8192)
    html: _Stripped | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _url_or_html(self) -> Source:
        if self.url is None and self.html is None:
            raise ValueError("a source needs `url` or `html`")
        if self.url is not None and "://" not in self.url:
            shown = self.url if len(self.url) <= 100 else f"{self.url[:100]}..."
            raise ValueError(f"url must be absolute (scheme://host/...), got {shown!r}")
        return self


class Flashpoint(_Strict):
    id: str = Field(min_length=1, max_length=200)
    title: _Stripped = Field(min_length=1, max_length=1000)
    sources: list[Source] = Field(min_length=1, max_length=500)


class FlashpointsOptions(_Strict):
    min_words: int = Field(
        default_factory=lambda: _settings_default("min_words"),
        ge=0,
        description="A source with fewer words of main text fails (default FLASHPOINTS_MIN_WORDS).",
    )
    return_text: bool = Field(False, description="Put each document's text in the output.")
    return_vectors: bool = Field(False, description="Put each document's embedding in the output.")
    embed: bool = Field(True, description="Run the inference stage (embed, score, dedupe).")


def _settings_default(name: str) -> Any:
    """A job's option left out takes the deployment's FLASHPOINTS_* setting."""
    from podfleet.pipeline.pipelines.flashpoints import FLASHPOINTS  # at validation, not import

    return getattr(FLASHPOINTS.settings(), name)


@dataclass
class SourceWork:
    index: int
    url: str | None
    inline_html: str | None
    html: str | None = None  # what extraction reads (fetched, rendered or inline)
    final_url: str | None = None
    http_status: int | None = None
    fetch_ms: float | None = None
    title: str | None = None
    text: str | None = None
    links: list[str] = field(default_factory=list)
    word_count: int = 0
    content_hash: str | None = None
    duplicate_of: int | None = None  # index of an earlier source with the same text
    near_duplicate_of: int | None = None  # index of an earlier source with a near-same embedding
    relevance: float | None = None
    embedding: list[float] | None = None
    error: str | None = None
    error_stage: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def fail(self, stage: str, message: str) -> None:
        if self.error is None:
            self.error, self.error_stage = message, stage

    @property
    def key(self) -> str:
        """Stable identity of the source within its flashpoint, used for idempotent upserts."""
        return self.url or f"inline:{self.index}"


@dataclass
class FlashpointWork:
    item: Flashpoint
    sources: list[SourceWork]
    centroid: list[float] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def live_sources(self) -> list[SourceWork]:
        return [s for s in self.sources if s.ok]
