"""The database going away mid-load (issue 12 defect 9): on a throwaway PostgreSQL, a server
restarting during a job and a connection killed inside the load's transaction are retried with
backoff and the rows match the output; a server down past the job's deadline fails the items as
retryable, in time. On SQLite a writer holding the lock delays the load instead of failing it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import threading
import time

import pytest
from podfleet.entry import handler
from podfleet.pipeline.store.db import dispose_engines, normalise_url
from sqlalchemy import create_engine, text

from tests.integration.store.helpers import assert_rows_match, item, job, source

pytestmark = pytest.mark.postgres


def items(n: int, tag: str) -> list[dict]:
    return [item(f"{tag}-{i}", source(f"{tag}{i}a"), source(f"{tag}{i}b")) for i in range(n)]


@pytest.fixture
def pg(throwaway_postgres, clean_env, monkeypatch):
    """DATABASE_URL on the throwaway server, in a fresh database; the server up again after."""
    server = throwaway_postgres
    name = f"t{time.monotonic_ns()}"
    admin = create_engine(normalise_url(server.url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    url = f"postgresql://postgres@127.0.0.1:{server.port}/{name}?application_name=podfleet-load"
    monkeypatch.setenv("DATABASE_URL", url)
    dispose_engines()
    yield server, url
    dispose_engines()
    with contextlib.suppress(subprocess.CalledProcessError):
        server.start()  # unless it is running
    admin.dispose()


async def test_server_restarting_during_the_job_is_retried(pg) -> None:
    server, url = pg
    first = await handler(job("warm", items(2, "w")))  # engine made, pool holds connections
    assert first["ok"] is True, first
    server.stop("fast")
    restart = threading.Timer(2.0, server.start)
    restart.start()
    t0 = time.monotonic()
    out = await handler(job("during-restart", items(10, "r")))
    restart.join()
    assert out["ok"] is True, out
    assert time.monotonic() - t0 >= 1.5  # it did wait for the server
    assert_rows_match(url, out, only_this_job=False)


async def test_connection_killed_inside_the_load_is_retried(pg) -> None:
    server, url = pg
    await handler(job("warm", items(1, "w")))
    admin = create_engine(normalise_url(server.url), isolation_level="AUTOCOMMIT")
    killed: list[str] = []
    stop = threading.Event()

    def killer() -> None:  # terminate the load's backend while its transaction is open
        with admin.connect() as conn:
            while not stop.is_set() and not killed:
                rows = conn.execute(
                    text(
                        "SELECT pid, state FROM pg_stat_activity WHERE application_name ="
                        " 'podfleet-load' AND xact_start IS NOT NULL AND backend_xid IS NOT NULL"
                    )
                ).all()
                for pid, state in rows:
                    conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
                    killed.append(state)

    thread = threading.Thread(target=killer)
    thread.start()
    try:
        out = await handler(job("killed", items(60, "k")))
    finally:
        stop.set()
        thread.join()
        admin.dispose()
    assert killed, "the load finished before its connection could be killed"
    assert out["ok"] is True, out
    assert_rows_match(url, out, only_this_job=False)


async def test_server_down_past_the_deadline_fails_items_retryable(pg, monkeypatch) -> None:
    server, _ = pg
    server.stop("fast")
    monkeypatch.setenv("REQUEST_TIMEOUT", "4")
    t0 = time.monotonic()
    out = await handler(job("down", items(3, "d")))
    elapsed = time.monotonic() - t0
    assert out["ok"] is False
    assert [e["stage"] for e in out["errors"]] == ["load"] * 3
    assert all(e["retryable"] for e in out["errors"]), out["errors"]
    assert "Connection refused" in out["errors"][0]["message"]
    assert elapsed < 4 + 10, f"the load kept retrying past the job's deadline ({elapsed:.1f}s)"


async def test_no_retries_with_db_retry_s_zero(pg, monkeypatch) -> None:
    server, _ = pg
    server.stop("fast")
    monkeypatch.setenv("DB_RETRY_S", "0")
    t0 = time.monotonic()
    out = await handler(job("no-retry", items(2, "n")))
    assert [e["retryable"] for e in out["errors"]] == [True, True]
    assert time.monotonic() - t0 < 10  # one try each for the engine, no backoff


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_writer_holding_the_lock_delays_the_load(database_url) -> None:
    assert (await handler(job("warm", items(1, "w"))))["ok"]
    path = database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(2.0, holder.rollback).start()
    out = await asyncio.wait_for(handler(job("locked", items(3, "l"))), timeout=60)
    holder.close()
    assert out["ok"] is True, out
    assert_rows_match(database_url, out, only_this_job=False)
