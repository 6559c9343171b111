"""The stages. Each gets every live feed of the job (or of its chunk) at once and fails a feed
with `state.fail(...)`; one bad feed never costs the others their results."""

from __future__ import annotations

import csv
import io
import math

from podfleet import ItemState, RunContext

from pricefeed.models import FeedOptions, FeedWork, Row
from pricefeed.settings import PricefeedSettings

__all__ = ["ConvertStage", "ParseStage"]

REQUIRED = ("sku", "price")


class ParseStage:
    """CSV text -> rows. A bad row is rejected (and listed); a feed with no usable row fails."""

    name = "parse"

    async def run(self, items: list[ItemState[FeedWork]], ctx: RunContext) -> None:
        settings: PricefeedSettings = ctx.settings  # type: ignore[assignment]
        opts: FeedOptions = ctx.options  # type: ignore[assignment]
        for state in items:
            work = state.work
            reader = csv.DictReader(io.StringIO(work.feed.csv))
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                state.fail(self.name, f"csv header lacks column(s) {', '.join(missing)}")
                continue
            reader.fieldnames = header
            for line, raw in enumerate(reader, start=2):
                if len(work.rows) >= settings.max_rows:
                    state.fail(self.name, f"more than {settings.max_rows} rows")
                    break
                reason = _reject_reason(raw, opts)
                if reason:
                    work.rejected.append({"line": line, "reason": reason})
                    continue
                sku = (raw.get("sku") or "").strip()
                work.rows.append(
                    Row(line, sku, (raw.get("name") or "").strip(), float(raw["price"]))
                )
            if state.alive and not work.rows:
                state.fail(self.name, f"no valid rows ({len(work.rejected)} rejected)")


def _reject_reason(raw: dict[str, str | None], opts: FeedOptions) -> str | None:
    if not (raw.get("sku") or "").strip():
        return "empty sku"
    text = (raw.get("price") or "").strip()
    try:
        price = float(text)
    except ValueError:
        return f"price {text!r} is not a number"
    if not math.isfinite(price) or price < 0:
        return f"price {text!r} must be a non-negative number"
    return None


class ConvertStage:
    """Every row of every feed into the target currency, in one pass over the whole batch (the
    way a model stage would make one call for all texts). Unknown currency -> that feed fails."""

    name = "convert"

    async def run(self, items: list[ItemState[FeedWork]], ctx: RunContext) -> None:
        settings: PricefeedSettings = ctx.settings  # type: ignore[assignment]
        opts: FeedOptions = ctx.options  # type: ignore[assignment]
        rates = {k.upper(): v for k, v in settings.rates.items()}
        if opts.target_currency not in rates:
            raise ValueError(f"no rate for the target currency {opts.target_currency}")
        batch: list[tuple[Row, float]] = []
        for state in items:
            rate = rates.get(state.work.feed.currency.upper())
            if rate is None:
                state.fail(self.name, f"no rate for currency {state.work.feed.currency!r}")
                continue
            factor = rate / rates[opts.target_currency]
            batch.extend((row, factor) for row in state.work.rows)
            state.work.currency = opts.target_currency
        for row, factor in batch:
            row.price = round(row.price * factor, 2)
        if opts.max_price is not None:
            for state in items:
                if not state.alive:
                    continue
                keep = []
                for row in state.work.rows:
                    if row.price > opts.max_price:
                        state.work.rejected.append(
                            {"line": row.line, "reason": f"price above {opts.max_price}"}
                        )
                    else:
                        keep.append(row)
                state.work.rows = keep
                if not keep:
                    state.fail(self.name, "every row is above max_price")
