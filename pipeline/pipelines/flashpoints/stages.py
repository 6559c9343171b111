"""The flashpoints stages that need no browser and no model: scrape adapter, extract, transform."""

from __future__ import annotations

import asyncio
import hashlib

from podfleet.pipeline.etl.extract import clean_text, extract_page
from podfleet.pipeline.pipelines.flashpoints.models import FlashpointWork, SourceWork
from podfleet.pipeline.stage import ItemState, RunContext

__all__ = ["ExtractStage", "ScrapeStage", "TransformStage", "fail_items_without_sources"]


def fail_items_without_sources(items: list[ItemState[FlashpointWork]], stage: str) -> None:
    """An item whose every source has failed fails itself, naming the first few reasons."""
    for state in items:
        if state.alive and not state.work.live_sources:
            reasons = "; ".join(
                f"source {s.index}: {s.error}" for s in state.work.sources[:3] if s.error
            )
            state.fail(stage, f"all {len(state.work.sources)} sources failed ({reasons})")


class ScrapeStage:
    """Fetch URL sources and render inline HTML, for every source of every item in one go."""

    name = "scrape"

    async def run(self, items: list[ItemState[FlashpointWork]], ctx: RunContext) -> None:
        from podfleet.pipeline.scrape import PageRequest, fetch_pages

        sources: list[SourceWork] = [s for st in items for s in st.work.sources if s.ok]
        requests = [PageRequest(url=s.url, html=s.inline_html) for s in sources]
        budget_s = ctx.remaining_s(ctx.config.scrape.stage_timeout_s)
        pages = await fetch_pages(requests, ctx.config.scrape, ctx.resources, budget_s=budget_s)
        for source, page in zip(sources, pages, strict=True):
            if page.ok:
                source.html = page.html
                source.final_url = page.final_url or source.url
                source.http_status = page.status
                source.title = page.title
                source.fetch_ms = page.timings_ms.get("total")
            else:
                source.fail(self.name, page.error or "fetch failed")
        fail_items_without_sources(items, self.name)


class ExtractStage:
    """Main text, title and links of each source's HTML."""

    name = "extract"

    async def run(self, items: list[ItemState[FlashpointWork]], ctx: RunContext) -> None:
        sources = [s for st in items for s in st.work.live_sources]

        def extract_all() -> None:
            for s in sources:
                try:
                    found = extract_page(s.html or "", s.final_url or s.url)
                except Exception as exc:  # a parser choking on one page fails that page only
                    s.fail(self.name, f"extraction failed: {type(exc).__name__}: {exc}")
                    continue
                if not found.text:
                    s.fail(self.name, "no main text found in the page")
                    continue
                s.text = found.text
                s.title = found.title or s.title
                s.links = found.links

        await asyncio.to_thread(extract_all)
        fail_items_without_sources(items, self.name)


class TransformStage:
    """Clean text, count words, mark exact duplicates, drop pages too short to be articles."""

    name = "transform"

    async def run(self, items: list[ItemState[FlashpointWork]], ctx: RunContext) -> None:
        min_words = getattr(ctx.options, "min_words", 0)
        for state in items:
            seen: dict[str, int] = {}
            for s in state.work.live_sources:
                s.text = clean_text(s.text or "")
                s.word_count = len(s.text.split())
                if s.word_count < min_words:
                    s.fail(self.name, f"only {s.word_count} words of main text (min {min_words})")
                    continue
                s.content_hash = hashlib.sha256(s.text.lower().encode()).hexdigest()
                if s.content_hash in seen:
                    s.duplicate_of = seen[s.content_hash]
                else:
                    seen[s.content_hash] = s.index
        fail_items_without_sources(items, self.name)
