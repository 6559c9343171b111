"""Which database errors are retried (real errors from real SQLite and PostgreSQL), the backoff's
bounds, and vectors kept apart by the model that made them."""

from __future__ import annotations

import datetime as dt
import random
import sqlite3

import pytest
from podfleet.pipeline.backoff import Backoff
from podfleet.pipeline.config import PipelineConfig, StoreConfig
from podfleet.pipeline.pipelines.flashpoints.store import document_vectors, load_flashpoints
from podfleet.pipeline.resources import WarmResources
from podfleet.pipeline.stage import RunContext
from podfleet.pipeline.store.db import engine_for, get_engine, normalise_url
from podfleet.pipeline.store.errors import db_error, is_transient
from pydantic import BaseModel
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from tests.conftest import fresh_postgres_schema


def error_of(url: str, sql: str, setup: str | None = None) -> SQLAlchemyError:
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            if setup:
                conn.execute(text(setup))
            conn.execute(text(sql))
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{sql!r} did not fail")


@pytest.fixture
def pg_url(postgres_url):
    with fresh_postgres_schema(postgres_url) as url:
        yield url


def test_postgres_errors_classified(pg_url) -> None:
    refused = error_of("postgresql://u:pw@127.0.0.1:1/x", "SELECT 1")
    assert is_transient(refused) and db_error(refused, "x").retryable
    too_long = error_of(
        pg_url, "INSERT INTO t VALUES (repeat('x', 300))", "CREATE TABLE t (v varchar(200))"
    )
    assert not is_transient(too_long)
    # An index entry over btree's limit: the 8,000-character URL of defect 7, once retryable.
    big = "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(9000))
    btree = error_of(
        pg_url, f"INSERT INTO k VALUES ('{big}')", "CREATE TABLE k (v text PRIMARY KEY)"
    )
    err = db_error(btree, "loading")
    assert "54000" in err.message and err.retryable is False
    unique = error_of(pg_url, "INSERT INTO u VALUES (1), (1)", "CREATE TABLE u (v int PRIMARY KEY)")
    assert not is_transient(unique)
    assert "INSERT" not in db_error(unique, "x").message


def test_sqlite_errors_classified(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert not is_transient(error_of(url, "SELECT * FROM missing"))
    holder = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    holder.execute("CREATE TABLE t (v int)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(url, connect_args={"timeout": 0.1})
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
    except SQLAlchemyError as exc:
        assert "locked" in str(exc) and is_transient(exc)
    else:
        raise AssertionError("the write went through a held exclusive lock")
    finally:
        engine.dispose()
        holder.close()


class Flaky(Exception):
    pass


def test_backoff_jitters_and_stops_before_the_deadline() -> None:
    slept: list[float] = []
    clock = {"left": 3.0}

    def sleep(s: float) -> None:
        slept.append(s)
        clock["left"] -= s

    policy = Backoff(base_s=0.2, max_s=1.0, sleep=sleep, rng=random.Random(7))
    calls = []

    def always_fails() -> None:
        calls.append(1)
        raise Flaky("down")

    with pytest.raises(Flaky):
        policy.call(always_fails, transient=lambda e: isinstance(e, Flaky),
                    remaining_s=lambda: clock["left"])  # fmt: skip
    assert len(calls) == len(slept) + 1 >= 3
    assert sum(slept) < 3.0  # never sleeps past the deadline
    for n, s in enumerate(slept, start=1):
        assert 0 <= s <= min(1.0, 0.2 * 2 ** (n - 1))
    assert len(set(slept)) == len(slept)  # jittered

    calls.clear()
    with pytest.raises(ValueError):
        policy.call(lambda: calls.append(1) or int("x"), transient=lambda e: False)
    assert len(calls) == 1  # a deterministic error is not retried


class _Opts(BaseModel):
    pass


def _ctx(url: str, job_id: str) -> RunContext:
    config = PipelineConfig(store=StoreConfig(database_url=url))
    return RunContext(job_id, config, WarmResources(), _Opts(), dt.date(2026, 11, 23))


def _record(fp: str, model: str | None, vectors: list[list[float] | None]) -> dict:
    docs = [
        {"index": i, "source_key": f"inline:{i}", "url": None, "final_url": None,
         "http_status": 200, "title": "t", "text": "some words", "word_count": 2,
         "content_hash": "0" * 64, "duplicate_of": None, "near_duplicate_of": None,
         "relevance": 0.5, "embedding": v, "links": []}
        for i, v in enumerate(vectors)
    ]  # fmt: skip
    centroid = next((v for v in vectors if v is not None), None)
    return {"id": fp, "title": fp, "centroid": centroid, "embedding_model": model,
            "documents": docs}  # fmt: skip


def test_vectors_of_different_models_never_mix(database_url) -> None:
    stats = load_flashpoints(
        [
            _record("a", "model-a", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
            _record("b", "model-b", [[1.0, 0.0, 0.0, 0.0]]),
            _record("old", None, [[0.5, 0.5, 0.0]]),  # a sibling from before 0002: unknown
            _record("mixed", "model-a", [[1.0, 0.0, 0.0], [1.0, 0.0]]),
        ],
        _ctx(database_url, "vec"),
    )
    assert stats["item_errors"]["mixed"]["message"].startswith("embedding: vectors of [2, 3]")
    assert stats["flashpoints"] == 3
    with get_engine(database_url).connect() as conn:
        a = document_vectors(conn, model="model-a", dim=3)
        b = document_vectors(conn, model="model-b", dim=4)
        assert document_vectors(conn, model="model-a", dim=4) == []
        fps = conn.execute(
            text("SELECT flashpoint_id, embedding_model, embedding_dim FROM flashpoints")
        ).all()
    assert [(fp, i) for fp, i, _ in a] == [("a", 0), ("a", 1)]
    assert [(fp, len(v)) for fp, _, v in b] == [("b", 4)]
    assert sorted(fps) == [("a", "model-a", 3), ("b", "model-b", 4), ("old", None, 3)]


def test_surrogate_and_nul_in_a_source_name_the_field(database_url) -> None:
    bad = _record("s", "m", [[1.0]])
    bad["documents"][0]["title"] = "lone \ud800 surrogate"
    nul = _record("n", "m", [[1.0]])
    nul["documents"][0]["links"] = ["https://x.example/\x00"]
    stats = load_flashpoints([bad, nul, _record("ok", "m", [[1.0]])], _ctx(database_url, "odd"))
    errors = stats["item_errors"]
    assert errors["s"]["message"].startswith("sources.0.title: contains a lone surrogate")
    assert errors["n"]["message"].startswith("sources.0.links.0: contains a NUL character")
    assert not any(e["retryable"] for e in errors.values())
    assert (stats["flashpoints"], stats["documents"]) == (1, 1)
    engine = engine_for(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM documents")).scalar_one() == 1
    engine.dispose()
