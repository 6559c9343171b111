"""Shared fixtures. PostgreSQL and Chromium are real; when the test command promises them
(PODFLEET_REQUIRE_POSTGRES=1 / PODFLEET_REQUIRE_CHROMIUM=1, set by builder/test.sh) a missing one
fails the test instead of skipping it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _missing(what: str, env_flag: str) -> None:
    if os.environ.get(env_flag) == "1":
        pytest.fail(f"{what} is required by this run ({env_flag}=1) but not available")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A real PostgreSQL database (builder/postgres.sh starts one and prints its URL)."""
    url = os.environ.get("PODFLEET_TEST_DATABASE_URL")
    if not url:
        _missing("PostgreSQL (PODFLEET_TEST_DATABASE_URL)", "PODFLEET_REQUIRE_POSTGRES")
    return url


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium, launched by path."""
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")
    if not path:
        _missing("Chromium", "PODFLEET_REQUIRE_CHROMIUM")
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No podfleet/RunPod variables from the developer's shell, a temp cwd (no stray .env)."""
    for name in list(os.environ):
        if name.startswith(("RUNPOD_", "PODFLEET_SETTINGS_")) or name in (
            "DATABASE_URL",
            "REQUEST_TIMEOUT",
            "GPU_TIMEOUT",
            "LOG_LEVEL",
            "CHUNK_SIZE",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    yield tmp_path


@contextmanager
def fresh_postgres_schema(postgres_url: str) -> Iterator[str]:
    """The PostgreSQL URL with its own new, empty schema first on the search path (dropped after),
    so tests running at once on the shared database never see each other's tables."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in postgres_url else "?"
    try:
        yield f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, clean_env, monkeypatch):
    """DATABASE_URL set to a fresh SQLite file, then to the real PostgreSQL in a new empty schema
    (the schema is migrated on first use, like a new deployment's database)."""
    from podfleet.pipeline.store.db import dispose_engines

    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{clean_env / 'data' / 'podfleet.db'}"
        else:
            url = stack.enter_context(
                fresh_postgres_schema(request.getfixturevalue("postgres_url"))
            )
        monkeypatch.setenv("DATABASE_URL", url)
        dispose_engines()
        yield url
        dispose_engines()
