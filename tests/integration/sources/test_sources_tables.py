"""items_from.table on real SQLite and PostgreSQL (the job's DATABASE_URL): key ranges, JSON and
text columns, bad rows, and the errors naming items_from.table / .key / .column."""

from __future__ import annotations

import json

import pytest
from podfleet.envelope import ItemsSource
from podfleet.pipeline.errors import InputError
from podfleet.pipeline.store.db import get_engine
from podfleet.settings import Settings
from podfleet.sources import plan_source, read_rows
from sqlalchemy import JSON, BigInteger, Column, Integer, MetaData, String, Table, Text, insert


def _sizes(size: int):
    return lambda n: [min(size, n - i) for i in range(0, n, size)]


def _make(url: str, name: str, item_type, rows: list[tuple[int | None, object]], key_type=Integer):
    engine = get_engine(url)
    table = Table(
        name,
        MetaData(),
        Column("id", key_type, primary_key=False, unique=True),
        Column("item", item_type),
        Column("note", String(20)),
    )
    table.create(engine)
    with engine.begin() as conn:
        if rows:
            conn.execute(insert(table), [{"id": k, "item": v, "note": "n"} for k, v in rows])
    return table


async def test_json_column_planned_and_read_by_key_range(database_url):
    keys = [k * 3 + 7 for k in range(95)]  # gaps: keys are not positions
    _make(database_url, "jobs_in", JSON, [(k, {"k": k}) for k in reversed(keys)])
    settings = Settings(database_url=database_url)
    source = ItemsSource(table="jobs_in")
    rows, refs = await plan_source(source, settings, _sizes(20))
    assert rows == 95
    assert [(r.start, r.stop, r.key_from, r.key_to) for r in refs][:2] == [
        (0, 20, keys[0], keys[19]),
        (20, 40, keys[20], keys[39]),
    ]
    assert refs[-1].stop == 95 and refs[-1].key_to == keys[-1]
    seen = []
    for ref in refs:
        seen += await read_rows(source, ref, settings)
    assert seen == [(i, {"k": k}) for i, k in enumerate(keys)]
    assert (await read_rows(source, None, settings)) == seen


async def test_text_column_with_bad_rows(database_url):
    secret = "pw-hidden-123"
    values = [
        json.dumps({"ok": 1}),
        f'{{"x": "{secret}"',
        json.dumps([secret]),
        None,
        "",
        json.dumps({"ok": 2}),
    ]
    _make(database_url, "texts", Text, list(enumerate(values, start=100)), key_type=BigInteger)
    # rows with a NULL key are not items
    engine = get_engine(database_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO texts (id, item) VALUES (NULL, '{\"skip\": 1}')")
    settings = Settings(database_url=database_url)
    source = ItemsSource(table="texts", key="id", column="item")
    rows, refs = await plan_source(source, settings, _sizes(4))
    assert rows == 6 and [(r.key_from, r.key_to) for r in refs] == [(100, 103), (104, 105)]
    got = await read_rows(source, None, settings)
    assert got[0] == (0, {"ok": 1}) and got[5] == (5, {"ok": 2})
    assert got[1][1].startswith("items_from row 1 (key 101): expected a JSON object, got invalid")
    assert got[2][1] == "items_from row 2 (key 102): expected a JSON object, got an array"
    assert got[3][1] == "items_from row 3 (key 103): expected a JSON object, got null"
    assert "blank" in got[4][1]
    assert all(secret not in str(r) for _p, r in got)


async def test_table_errors_name_the_field(database_url):
    _make(database_url, "t1", JSON, [(1, {"a": 1})])
    _make(database_url, "t_strkey", JSON, [(1, {"a": 1})], key_type=String(10))
    _make(database_url, "t_empty", JSON, [])
    settings = Settings(database_url=database_url)
    cases = [
        (ItemsSource(table="nope"), "items_from.table", "no table 'nope'"),
        (ItemsSource(table="t1", column="missing"), "items_from.column", "no column 'missing'"),
        (ItemsSource(table="t1", key="nokey"), "items_from.key", "no column 'nokey'"),
        (ItemsSource(table="t_strkey"), "items_from.key", "expected an integer column"),
        (ItemsSource(table="t1", key="id", column="id"), "items_from.column", "JSON or text"),
        (ItemsSource(table="t_empty"), "items_from", "holds no items"),
    ]
    for source, field, text in cases:
        with pytest.raises(InputError, match=text) as err:
            await plan_source(source, settings, _sizes(5))
        assert err.value.field == field


async def test_duplicate_keys_refused(database_url):
    engine = get_engine(database_url)
    table = Table("dups", MetaData(), Column("id", Integer), Column("item", JSON))
    table.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": 1, "item": {}}, {"id": 1, "item": {}}])
    with pytest.raises(InputError, match="unique keys") as err:
        await plan_source(ItemsSource(table="dups"), Settings(database_url=database_url), _sizes(5))
    assert err.value.field == "items_from.key"
