"""The example project's tests against this checkout's podfleet (no wheel, no install): the
pipeline comes in through PODFLEET_PIPELINES instead of the entry point. Quick feedback for the
plugin and the example; test_wheel.py runs the same tests from a built wheel."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLE

pytestmark = pytest.mark.emulator


def test_example_tests_pass_on_the_checkout(tmp_path: Path) -> None:
    project = tmp_path / "pricefeed"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(project),  # the project's package, importable as if installed
        "PODFLEET_PIPELINES": "pricefeed.pipeline",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\b4 passed\b", done.stdout), done.stdout[-2000:]
