"""The pricefeed pipeline: parse -> convert, then load. Registered by import; podfleet finds it
through this package's entry point (`podfleet.pipelines` in pyproject.toml)."""

from __future__ import annotations

import statistics
from typing import Any

from podfleet import Pipeline, RunContext, register

from pricefeed.models import Feed, FeedOptions, FeedWork
from pricefeed.settings import PricefeedSettings
from pricefeed.stages import ConvertStage, ParseStage
from pricefeed.store import load_prices

__all__ = ["PRICEFEED"]


def start(feed: Feed, ctx: RunContext) -> FeedWork:
    return FeedWork(feed=feed)


def finish(work: FeedWork, ctx: RunContext) -> dict[str, Any]:
    prices = [row.price for row in work.rows]
    cheapest = min(work.rows, key=lambda row: (row.price, row.sku))
    out: dict[str, Any] = {
        "id": work.feed.id,
        "currency": work.currency,
        "rows": len(work.rows),
        "rejected": work.rejected,
        "min": min(prices),
        "max": max(prices),
        "median": round(statistics.median(prices), 2),
        "cheapest": {"sku": cheapest.sku, "price": cheapest.price},
    }
    if ctx.options.return_rows:  # type: ignore[attr-defined]
        out["items"] = [{"sku": r.sku, "name": r.name, "price": r.price} for r in work.rows]
    return out


def record(work: FeedWork) -> dict[str, Any]:
    return {
        "supplier": work.feed.id,
        "currency": work.currency,
        "rows": [{"sku": r.sku, "name": r.name, "price": r.price} for r in work.rows],
    }


PRICEFEED = register(
    Pipeline(
        name="pricefeed",
        item_model=Feed,
        options_model=FeedOptions,
        stages=(ParseStage(), ConvertStage()),
        start=start,
        finish=finish,
        record=record,
        load=load_prices,
        settings_model=PricefeedSettings,
        resources=frozenset(),  # no browser, no model, no database engine: a light worker
        description="suppliers' CSV price lists -> one currency, statistics, SQLite",
    )
)
