"""pricefeed: suppliers' price lists (CSV) -> validated rows in one currency, per-feed statistics,
and an idempotent SQLite table of the day's prices. A podfleet pipeline in a package of its own."""

from pricefeed.pipeline import PRICEFEED

__all__ = ["PRICEFEED"]
