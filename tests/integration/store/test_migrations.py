"""Migrations on real SQLite and PostgreSQL: a database made by the previous schema (today's
`create_all`, kept in legacy_schema.py, or revision 0001) with rows in it upgrades to head and
keeps every row; the head matches schema.py; the upgrade command (issue 11 item 6)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from array import array

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from podfleet.entry import handler
from podfleet.pipeline.store.db import dispose_engines, engine_for, get_engine
from podfleet.pipeline.store.migrate import alembic_config, current_revision, head_revision
from podfleet.pipeline.store.migrate import upgrade as upgrade_db
from podfleet.pipeline.store.schema import metadata
from sqlalchemy import inspect, text

from tests.integration.store import legacy_schema as legacy
from tests.integration.store.helpers import assert_rows_match, item, job, read_rows, source

DAY = dt.date(2026, 11, 20)
EARLY = dt.datetime(2026, 11, 20, 6, tzinfo=dt.UTC)
LATE = dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC)
VECTOR = array("f", [0.5] * 384).tobytes()


def legacy_rows() -> dict[str, list[dict]]:
    doc = {
        "date": DAY,
        "http_status": 200,
        "text": "some text",
        "word_count": 2,
        "content_hash": "a" * 64,
        "duplicate_of": None,
        "near_duplicate_of": None,
        "is_near_duplicate": False,
        "relevance": 0.5,
        "links": ["https://x.example/1"],
        "updated_at": LATE,
    }
    return {
        "runs": [
            {
                "job_id": j,
                "date": DAY,
                "trigger": "api",
                "worker_id": "w",
                "items": 2,
                "loaded_at": LATE,
            }
            for j in ("old-1", "old-2")
        ],
        "flashpoints": [
            {
                "date": DAY,
                "flashpoint_id": "fp-a",
                "title": "A",
                "documents": 2,
                "words": 4,
                "centroid": VECTOR,
                "job_id": "old-2",
                "updated_at": LATE,
            },
            {
                "date": DAY,
                "flashpoint_id": "fp-b",
                "title": "B ✓",
                "documents": 1,
                "words": 2,
                "centroid": None,
                "job_id": "old-2",
                "updated_at": LATE,
            },
        ],
        "documents": [
            {
                **doc,
                "flashpoint_id": "fp-a",
                "source_key": "https://a.example/1",
                "source_index": 0,
                "url": "https://a.example/1",
                "final_url": "https://a.example/1",
                "title": "a1",
                "embedding": VECTOR,
            },
            {
                **doc,
                "flashpoint_id": "fp-a",
                "source_key": "inline:1",
                "source_index": 1,
                "url": None,
                "final_url": None,
                "title": "a2",
                "embedding": None,
            },
            {
                **doc,
                "flashpoint_id": "fp-b",
                "source_key": "https://b.example/1",
                "source_index": 0,
                "url": "https://b.example/1",
                "final_url": "https://b.example/1",
                "title": "b1",
                "embedding": None,
            },
        ],
    }


# Left by a re-run of fp-a with fewer sources under the old load (defect 8): older than its
# flashpoint row, not counted in `documents`, and on source index 0 like a live row.
STALE = {
    **legacy_rows()["documents"][0],
    "source_key": "https://a.example/gone",
    "url": "https://a.example/gone",
    "updated_at": EARLY,
}


def same(stored: dict, old: dict) -> bool:
    """`stored` holds `old`'s values (SQLite hands datetimes back without their UTC offset)."""

    def norm(v):
        return v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v

    return {k: norm(stored[k]) for k in old} == {k: norm(v) for k, v in old.items()}


def fill(engine, tables) -> None:
    with engine.begin() as conn:
        for name, rows in legacy_rows().items():
            conn.execute(tables[name].insert(), rows)
        conn.execute(tables["documents"].insert(), [STALE])


def make_revision_1(engine) -> None:
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.commit()


@pytest.mark.parametrize("made_by", ["create_all", "revision_0001"])
async def test_previous_schema_with_rows_upgrades_losing_nothing(database_url, made_by) -> None:
    engine = engine_for(database_url)
    if made_by == "create_all":
        legacy.metadata.create_all(engine)  # no alembic_version: adopted as 0001
    else:
        make_revision_1(engine)
    fill(engine, legacy.metadata.tables)
    engine.dispose()

    assert upgrade_db(database_url) == head_revision()
    rows = read_rows(database_url)
    before = legacy_rows()
    assert sorted(r["job_id"] for r in rows["runs"]) == ["old-1", "old-2"]
    fps = {r["flashpoint_id"]: r for r in rows["flashpoints"]}
    for old in before["flashpoints"]:
        assert same(fps[old["flashpoint_id"]], old)
    assert (fps["fp-a"]["embedding_dim"], fps["fp-a"]["embedding_model"]) == (384, None)
    assert (fps["fp-b"]["embedding_dim"], fps["fp-b"]["embedding_model"]) == (None, None)
    docs = {(r["flashpoint_id"], r["source_index"]): r for r in rows["documents"]}
    assert len(docs) == len(before["documents"])  # the stale row is gone, every live one kept
    for old in before["documents"]:
        new = docs[(old["flashpoint_id"], old["source_index"])]
        assert same(new, old)
        assert new["embedding_dim"] == (384 if old["embedding"] else None)
    for fp_id, fp in fps.items():
        assert fp["documents"] == sum(1 for k in docs if k[0] == fp_id)

    # the upgraded database takes new loads; other dates' and flashpoints' rows stay
    out = await handler(job("new-1", [item("fp-a", source("x"), source("y"))]))
    assert out["ok"] is True, out
    assert_rows_match(database_url, out)
    assert len(read_rows(database_url)["documents"]) == len(before["documents"]) + 2


def test_half_made_database_is_completed(database_url) -> None:
    """A first start that crashed after creating one table (the old create_all race)."""
    engine = engine_for(database_url)
    legacy.metadata.tables["runs"].create(engine)
    engine.dispose()
    get_engine(database_url)
    engine = engine_for(database_url)
    try:
        assert set(inspect(engine).get_table_names()) >= {"runs", "flashpoints", "documents"}
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()


def test_head_matches_schema_py(database_url) -> None:
    get_engine(database_url)
    engine = engine_for(database_url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_up_again(database_url) -> None:
    get_engine(database_url)
    engine = engine_for(database_url)
    try:
        with engine.connect() as conn:
            command.downgrade(alembic_config(conn), "base")
            conn.commit()
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
            command.upgrade(alembic_config(conn), "head")
            conn.commit()
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()


async def test_database_from_a_newer_version_is_refused_clearly(database_url) -> None:
    get_engine(database_url)
    engine = engine_for(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    dispose_engines()
    out = await handler(job("rolled-back", [item("fp", source("a"))]))
    [error] = out["errors"]
    assert "schema revision '0999'" in error["message"] and error["retryable"] is False
    assert read_rows(database_url)["flashpoints"] == []


def test_upgrade_command(database_url, repo_root) -> None:
    env = {**os.environ, "DATABASE_URL": "sqlite:////nonexistent/never-used.db"}
    cmd = [sys.executable, "-m", "podfleet.pipeline.store"]
    proc = subprocess.run(
        [*cmd, "upgrade", database_url], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert f"at revision {head_revision()}" in proc.stdout
    proc = subprocess.run(
        [*cmd, "current", database_url], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert f"at revision {head_revision()}; head is {head_revision()}" in proc.stdout
    assert "podfleet-test" not in proc.stdout + proc.stderr  # the test role's password


def test_upgrade_command_error_names_no_password() -> None:
    url = "postgresql://user:sekrit-pw@127.0.0.1:1/nodb"
    proc = subprocess.run(
        [sys.executable, "-m", "podfleet.pipeline.store", "upgrade", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Connection refused" in proc.stderr
    assert "sekrit" not in proc.stdout + proc.stderr
