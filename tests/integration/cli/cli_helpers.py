"""Shared by the CLI tests and their conftest."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def podfleet_cmd() -> list[str]:
    """The installed console script, else the module (same code)."""
    exe = shutil.which("podfleet")
    return [exe] if exe else [sys.executable, "-m", "podfleet.cli"]
