"""The pipeline's settings point at a throwaway SQLite file, before anything reads them: the test
process and the emulated workers (they inherit this environment) share it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
os.environ["PRICEFEED_DB_PATH"] = str(Path(tempfile.mkdtemp(prefix="pricefeed-")) / "prices.db")


@pytest.fixture(scope="session")
def test_input() -> dict:
    return json.loads((PROJECT / "test_input.json").read_text())


@pytest.fixture(scope="session")
def db_path() -> Path:
    return Path(os.environ["PRICEFEED_DB_PATH"])
