"""The reference pipeline: for a date, each flashpoint's sources are scraped, extracted, embedded,
scored and stored. Stages: scrape → extract → transform → embed; then load."""

from __future__ import annotations

from typing import Any

from podfleet.pipeline.pipelines.flashpoints.models import (
    Flashpoint,
    FlashpointsOptions,
    FlashpointWork,
    SourceWork,
)
from podfleet.pipeline.pipelines.flashpoints.settings import FlashpointsSettings
from podfleet.pipeline.pipelines.flashpoints.stage_embed import EmbedStage
from podfleet.pipeline.pipelines.flashpoints.stages import ExtractStage, ScrapeStage, TransformStage
from podfleet.pipeline.pipelines.flashpoints.store import load_flashpoints
from podfleet.pipeline.registry import register
from podfleet.pipeline.resources import Resource
from podfleet.pipeline.stage import Pipeline, RunContext

__all__ = ["FLASHPOINTS", "Flashpoint", "FlashpointsOptions", "FlashpointsSettings"]


def start(item: Flashpoint, ctx: RunContext) -> FlashpointWork:
    sources = [SourceWork(i, s.url, s.html) for i, s in enumerate(item.sources)]
    return FlashpointWork(item=item, sources=sources)


def finish(work: FlashpointWork, ctx: RunContext) -> dict[str, Any]:
    opts: FlashpointsOptions = ctx.options  # type: ignore[assignment]
    out_sources = []
    for s in work.sources:
        entry: dict[str, Any] = {"index": s.index, "url": s.url}
        if s.ok:
            entry.update(
                final_url=s.final_url,
                http_status=s.http_status,
                title=s.title,
                word_count=s.word_count,
                duplicate_of=s.duplicate_of,
                near_duplicate_of=s.near_duplicate_of,
                relevance=s.relevance,
                links=len(s.links),
            )
            if opts.return_text:
                entry["text"] = s.text
            if opts.return_vectors:
                entry["embedding"] = s.embedding
        else:
            entry.update(error=s.error, stage=s.error_stage)
        out_sources.append(entry)
    live = work.live_sources
    scores = [s.relevance for s in live if s.relevance is not None]
    return {
        "id": work.item.id,
        "title": work.item.title,
        "documents": len(live),
        "failed_sources": len(work.sources) - len(live),
        "words": sum(s.word_count for s in live),
        "relevance": round(max(scores), 4) if scores else None,
        "near_duplicates": sum(1 for s in live if s.near_duplicate_of is not None),
        "sources": out_sources,
    }


def record(work: FlashpointWork) -> dict[str, Any]:
    return {
        "id": work.item.id,
        "title": work.item.title,
        "centroid": work.centroid,
        "embedding_model": work.extras.get("embedding_model"),  # what made the vectors below
        "documents": [
            {
                "index": s.index,
                "source_key": s.key,
                "url": s.url,
                "final_url": s.final_url,
                "http_status": s.http_status,
                "title": s.title,
                "text": s.text,
                "word_count": s.word_count,
                "content_hash": s.content_hash,
                "duplicate_of": s.duplicate_of,
                "near_duplicate_of": s.near_duplicate_of,
                "relevance": s.relevance,
                "embedding": s.embedding,
                "links": s.links,
            }
            for s in work.live_sources
        ],
    }


FLASHPOINTS = register(
    Pipeline(
        name="flashpoints",
        item_model=Flashpoint,
        options_model=FlashpointsOptions,
        stages=(ScrapeStage(), ExtractStage(), TransformStage(), EmbedStage()),
        start=start,
        finish=finish,
        record=record,
        load=load_flashpoints,
        description="scrape → extract → transform → embed/score → store",
        resources=frozenset({Resource.BROWSER, Resource.MODEL, Resource.DATABASE}),
        settings_model=FlashpointsSettings,
    )
)
