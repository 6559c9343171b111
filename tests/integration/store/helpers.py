"""Shared by the data-integrity suite: a flashpoints pipeline that reads inline HTML without a
browser (its extract, transform, record and load are the real flashpoints ones), jobs, and the
check that the rows in the database are exactly what a job's output says."""

from __future__ import annotations

import datetime as dt
from typing import Any

from podfleet.pipeline.pipelines.flashpoints import finish, record, start
from podfleet.pipeline.pipelines.flashpoints.models import Flashpoint, FlashpointsOptions
from podfleet.pipeline.pipelines.flashpoints.stages import ExtractStage, TransformStage
from podfleet.pipeline.pipelines.flashpoints.store import load_flashpoints
from podfleet.pipeline.registry import register
from podfleet.pipeline.resources import Resource
from podfleet.pipeline.stage import ItemState, Pipeline, RunContext
from podfleet.pipeline.store.db import normalise_url
from podfleet.pipeline.store.schema import documents, flashpoints, runs
from sqlalchemy import create_engine, select

PIPELINE = "flashpoints_inline"
DATE = "2026-11-23"


class InlineStage:
    """Stands in for the scrape stage: the page is the source's inline HTML, as given."""

    name = "scrape"

    async def run(self, items: list[ItemState], ctx: RunContext) -> None:
        for st in items:
            for s in st.work.sources:
                s.html, s.final_url, s.http_status = s.inline_html, s.url, 200


INLINE = register(
    Pipeline(
        name=PIPELINE,
        item_model=Flashpoint,
        options_model=FlashpointsOptions,
        stages=(InlineStage(), ExtractStage(), TransformStage()),
        start=start,
        finish=finish,
        record=record,
        load=load_flashpoints,
        description="flashpoints over inline HTML only (tests/integration/store)",
        resources=frozenset({Resource.DATABASE}),
    )
)


def article(topic: str, words: int = 60) -> str:
    body = " ".join(f"{topic}{i % 17} harbour shipping report" for i in range(words // 4))
    return (
        f"<html><head><title>{topic} report</title></head><body><article><h1>{topic}</h1>"
        f"<p>{body}.</p><p>Further {topic} coverage followed later that day.</p>"
        "</article></body></html>"
    )


def source(topic: str, url: str | None = None) -> dict[str, Any]:
    return {"url": url or f"https://news.example.org/{topic}", "html": article(topic)}


def job(job_id: str, items: list[dict[str, Any]], **input_: Any) -> dict[str, Any]:
    body = {"pipeline": PIPELINE, "date": DATE, "items": items, "options": {"min_words": 5}}
    body.update(input_)
    return {"id": job_id, "input": body}


def item(item_id: str, *sources: dict[str, Any], title: str = "A flashpoint") -> dict[str, Any]:
    return {"id": item_id, "title": title, "sources": list(sources)}


def read_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return {
                t.name: [dict(r._mapping) for r in conn.execute(select(t))]
                for t in (runs, flashpoints, documents)
            }
    finally:
        engine.dispose()


def assert_rows_match(
    url: str,
    out: dict[str, Any],
    *,
    only_this_job: bool = True,
    overwritten: frozenset = frozenset(),
) -> None:
    """The flashpoint and document rows of `out`'s date are exactly what `out` reports stored
    (`overwritten`: ids a later job has stored again since, not compared)."""
    assert "error" not in out, out
    rows = read_rows(url)
    date = dt.date.fromisoformat(out.get("date", DATE))
    stored = {r["flashpoint_id"]: r for r in rows["flashpoints"] if r["date"] == date}
    docs: dict[str, set[int]] = {}
    for d in rows["documents"]:
        if d["date"] == date:
            docs.setdefault(d["flashpoint_id"], set()).add(d["source_index"])
    reported = [r for r in out["results"] if r is not None]
    for result in reported:
        if result["id"] in overwritten:
            continue
        fp = stored.get(result["id"])
        assert fp is not None, f"{result['id']} reported but has no row"
        live = {s["index"] for s in result["sources"] if "error" not in s}
        assert fp["documents"] == result["documents"] == len(live)
        assert docs.get(result["id"], set()) == live, result["id"]
    for fp_id, fp in stored.items():  # every flashpoint row agrees with its documents
        assert fp["documents"] == len(docs.get(fp_id, set())), fp_id
    assert set(docs) <= set(stored), "document rows without their flashpoint row"
    if only_this_job:
        failed = {e["item_id"] for e in out["errors"]}
        assert set(stored) == {r["id"] for r in reported}, (set(stored), failed)
    load = out.get("load") or {}
    assert load.get("flashpoints") == len(reported), load
    assert load.get("documents") == sum(r["documents"] for r in reported), load
