"""`items_from: {"table": ..., "key": ..., "column": ...}`: items in a table of the job's database.

The table is reflected (SQLAlchemy) from DATABASE_URL. `key` is an integer column, unique: the
items' order and how a chunk names its rows (`WHERE key BETWEEN key_from AND key_to`); rows whose
key is NULL are not items. `column` holds one item as JSON (a JSON/JSONB column or JSON text).
Sync functions: `podfleet.sources` runs them in a thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from podfleet.envelope import ChunkRef, ItemsSource
from podfleet.pipeline.errors import InputError
from podfleet.pipeline.store.db import get_engine
from podfleet.settings import Settings
from podfleet.sources import (
    MAX_WHOLE_SOURCE_ROWS,
    Row,
    check_sizes,
    no_items_error,
    parse_row,
    too_many_error,
)
from sqlalchemy import Column, MetaData, Table, Text, cast, func, select
from sqlalchemy import types as sqltypes
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

__all__ = ["KEY_BATCH", "plan_table", "read_table"]

KEY_BATCH = 5000  # keys fetched per round trip while planning (server-side cursor on PostgreSQL)


def _bad(field: str, what: str) -> InputError:
    return InputError(field, f"invalid input: {field}: {what}")


def _unreadable(source: ItemsSource, exc: Exception) -> InputError:
    return _bad("items_from.table", f"cannot read {source.table!r}: {type(exc).__name__}")


def _reflect(source: ItemsSource, settings: Settings) -> tuple[Any, Table, Column, Column]:
    engine = get_engine(settings.database_url.get_secret_value())
    name = source.table or ""
    try:
        table = Table(name, MetaData(), autoload_with=engine)
    except NoSuchTableError:
        raise _bad(
            "items_from.table", f"no table {name!r} in the job's database (DATABASE_URL)"
        ) from None
    columns = {c.name: c for c in table.columns}
    key, item = columns.get(source.key), columns.get(source.column)
    if key is None:
        raise _bad("items_from.key", f"table {name!r} has no column {source.key!r}")
    if not isinstance(key.type, sqltypes.Integer):
        raise _bad("items_from.key", f"expected an integer column, {source.key!r} is {key.type!s}")
    if item is None:
        raise _bad("items_from.column", f"table {name!r} has no column {source.column!r}")
    if not isinstance(item.type, sqltypes.JSON | sqltypes.String):
        raise _bad(
            "items_from.column",
            f"expected a JSON or text column, {source.column!r} is {item.type!s}",
        )
    return engine, table, key, item


def plan_table(
    source: ItemsSource, settings: Settings, sizes_for: Callable[[int], list[int]]
) -> tuple[int, list[ChunkRef]]:
    """Pass 1 counts the keyed rows; pass 2 streams the keys in order and notes each chunk's
    first and last (keys must be unique: a range names exactly its rows)."""
    engine, table, key, _item = _reflect(source, settings)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(func.count()).select_from(table).where(key.is_not(None))
            ).scalar_one()
            if rows == 0:
                raise no_items_error()
            sizes = check_sizes(sizes_for(rows), rows)
            refs: list[ChunkRef] = []
            position, start, first, previous = 0, 0, None, None
            result = conn.execution_options(yield_per=KEY_BATCH).execute(
                select(key).where(key.is_not(None)).order_by(key)
            )
            for (value,) in result:
                if value == previous:
                    raise _bad("items_from.key", f"expected unique keys, {value} appears twice")
                if len(refs) == len(sizes):
                    break  # the table grew since the count
                first = value if first is None else first
                previous, position = value, position + 1
                if position - start == sizes[len(refs)]:
                    refs.append(ChunkRef(start=start, stop=position, key_from=first, key_to=value))
                    start, first = position, None
            result.close()
    except SQLAlchemyError as exc:
        raise _bad(
            "items_from.table", f"cannot read {source.table!r}: {type(exc).__name__}"
        ) from None
    if len(refs) != len(sizes) or position != rows:
        raise _bad("items_from.table", "the source changed while it was read; keep it unchanged")
    return rows, refs


def read_table(source: ItemsSource, ref: ChunkRef | None, settings: Settings) -> list[Row]:
    """The rows of `ref` (key_from ≤ key ≤ key_to, in key order), or the whole table."""
    engine, _table, key, item = _reflect(source, settings)
    query = select(key, cast(item, Text)).where(key.is_not(None)).order_by(key)
    if ref is not None:
        if ref.key_from is None or ref.key_to is None:
            raise _bad("sibling.ref", "expected key_from and key_to for a table's rows")
        query = query.where(key.between(ref.key_from, ref.key_to)).limit(ref.size)
    else:
        query = query.limit(MAX_WHOLE_SOURCE_ROWS + 1)
    try:
        with engine.connect() as conn:
            fetched = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise _bad(
            "items_from.table", f"cannot read {source.table!r}: {type(exc).__name__}"
        ) from None
    if ref is None and len(fetched) > MAX_WHOLE_SOURCE_ROWS:
        raise too_many_error()
    if ref is None and not fetched:
        raise no_items_error()
    first = ref.start if ref is not None else 0
    out: list[Row] = []
    for i, (value, text) in enumerate(fetched):
        out.append(
            (first + i, parse_row(first + i, "null" if text is None else text, f"key {value}"))
        )
    if ref is not None:
        for position in range(first + len(out), ref.stop):
            out.append((position, parse_row(position, None, "no key")))
    return out
