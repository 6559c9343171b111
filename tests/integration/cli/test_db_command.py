"""`podfleet db upgrade|current`: the store's migrations from the CLI, on a real database."""

from __future__ import annotations

import os
import subprocess

from cli_helpers import podfleet_cmd
from sqlalchemy import create_engine, inspect


def _podfleet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*podfleet_cmd(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_db_upgrade_creates_the_schema_and_current_reports_the_head(database_url: str) -> None:
    before = _podfleet("db", "current", "--url", database_url)
    assert before.returncode == 0, before.stderr
    head = before.stdout.strip().rsplit("head is ", 1)[1]
    up = _podfleet("db", "upgrade", env={"DATABASE_URL": database_url})  # from the settings
    assert up.returncode == 0, up.stderr
    assert f"at revision {head} (head)" in up.stdout
    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"runs", "flashpoints", "documents", "alembic_version"} <= tables
    after = _podfleet("db", "current", "--url", database_url)
    assert f"at revision {head}; head is {head}" in after.stdout


def test_db_upgrade_on_an_unreachable_database_fails_without_its_password() -> None:
    url = "postgresql://podfleet:hunter2-secret@127.0.0.1:1/podfleet"
    proc = _podfleet("db", "upgrade", "--url", url)
    assert proc.returncode == 1
    assert "hunter2-secret" not in proc.stdout + proc.stderr
    assert "error:" in proc.stderr
