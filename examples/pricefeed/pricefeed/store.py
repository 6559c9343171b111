"""Load: the day's prices into SQLite (Python's sqlite3). Idempotent: a retried or re-run job
replaces its rows (primary key supplier + sku + date) instead of adding copies."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from podfleet import RunContext

__all__ = ["load_prices"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS prices (
    supplier TEXT NOT NULL,
    sku TEXT NOT NULL,
    day TEXT NOT NULL,
    name TEXT NOT NULL,
    price REAL NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (supplier, sku, day)
)
"""


def load_prices(records: list[dict[str, Any]], ctx: RunContext) -> dict[str, Any]:
    path = Path(ctx.settings.db_path)  # type: ignore[union-attr]
    path.parent.mkdir(parents=True, exist_ok=True)
    day = ctx.date.isoformat()
    rows = [
        (r["supplier"], row["sku"], day, row["name"], row["price"], r["currency"])
        for r in records
        for row in r["rows"]
    ]
    # several workers may load at once: wait for the write lock rather than fail
    with sqlite3.connect(path, timeout=30) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(SCHEMA)
        if ctx.cleanup:
            db.execute("DELETE FROM prices WHERE day = ?", (day,))
        db.executemany(
            "INSERT INTO prices (supplier, sku, day, name, price, currency) VALUES (?,?,?,?,?,?)"
            " ON CONFLICT (supplier, sku, day) DO UPDATE SET"
            " name = excluded.name, price = excluded.price, currency = excluded.currency",
            rows,
        )
    return {"rows": len(rows), "path": str(path)}
