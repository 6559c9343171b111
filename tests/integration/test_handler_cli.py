"""`python handler.py` as RunPod users run it: the real SDK's local mode, in a subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest


def run(repo_root, tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'fp.db'}"
    return subprocess.run(
        [sys.executable, *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_handler_py_runs_test_input(repo_root, tmp_path) -> None:
    proc = run(repo_root, tmp_path, "handler.py")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "completed successfully" in proc.stdout + proc.stderr
    with sqlite3.connect(tmp_path / "fp.db") as conn:
        assert conn.execute("select count(*) from flashpoints").fetchone()[0] == 3


@pytest.mark.parametrize("entry", [["handler.py"], ["-m", "handler"]])
def test_test_input_flag_and_exit_codes(repo_root, tmp_path, entry) -> None:
    good = {"input": {"pipeline": "synthetic", "items": [{"id": "a"}, {"id": "b"}]}}
    proc = run(repo_root, tmp_path, *entry, "--test_input", json.dumps(good))
    assert proc.returncode == 0, proc.stderr[-3000:]

    bad = {"input": {"pipeline": "synthetic", "items": [{"id": "a", "duration_s": "slow"}]}}
    proc = run(repo_root, tmp_path, *entry, "--test_input", json.dumps(bad))
    assert proc.returncode == 1
    assert "items.0.duration_s" in proc.stdout + proc.stderr
