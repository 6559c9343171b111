"""bench_dispatch (both loops) and bench_coldstart run end to end at toy sizes and report what
they claim to measure. Figures are not checked: tests assert behaviour, not timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run_bench(repo_root: Path, script: str, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(repo_root / "bench" / script), *args],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_dispatch_bench_runs_both_loops_side_by_side(repo_root, tmp_path) -> None:
    out = tmp_path / "dispatch.json"
    run_bench(repo_root, "bench_dispatch.py", "--jobs", "2", "--workers", "1", "--out", str(out))
    run = json.loads(out.read_text())["runs"]["1"]
    assert set(run["sdk_workers"]) == {"stock", "prompt"}
    for loop in run["sdk_workers"].values():
        assert loop["back2back"]["n"] == 2 and loop["post_job_pause"]["n"] >= 2
        assert loop["burst"]["jobs"] == 2
    assert run["back2back_stock_over_prompt"] > 0


def test_coldstart_bench_measures_before_and_after(repo_root, tmp_path) -> None:
    out = tmp_path / "coldstart.json"
    run_bench(
        repo_root, "bench_coldstart.py", "--runs", "1", "--kinds", "no-model", "--out", str(out)
    )
    kinds = json.loads(out.read_text())["kinds"]
    assert list(kinds) == ["no-model"]
    for version in ("before", "after"):
        s = kinds["no-model"][version]
        assert s["runs"] == 1
        assert 0 < s["first_take_s_median"] <= s["first_job_s_median"]
