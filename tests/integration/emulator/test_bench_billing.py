"""bench/bench_billing.py runs end to end at toy size (dynamic fan-out and static slices, each on a
fresh scaling endpoint), so it cannot rot between full runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.emulator


def test_billing_bench_reports_both_schemes(repo_root, tmp_path) -> None:
    out = tmp_path / "billing.json"
    cmd = [sys.executable, "bench/bench_billing.py", "--workers", "2", "--items", "6"]
    cmd += ["--idle-timeout", "1", "--out", str(out)]
    done = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    [row] = json.loads(out.read_text())["rows"]
    for scheme in ("dynamic", "static"):
        r = row[scheme]
        assert r["billed_worker_s"] == pytest.approx(r["running_s"] + r["idle_s"], abs=0.05)
        assert r["running_s"] >= row["total_work_s"] * 0.9  # every item's work was billed
        assert r["idle_s"] >= 1.0  # at least one idle timeout was paid
    assert row["static_over_dynamic_billed"] > 0
    assert "static/dynamic" in done.stdout
