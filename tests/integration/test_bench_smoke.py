"""The benchmarks run end to end at toy sizes (so they do not rot between full runs), and report
what they claim to measure. Figures are not checked: tests assert behaviour, not timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def bench(repo_root: Path, script: str, *args: str, timeout_s: float = 300):
    return subprocess.run(
        [sys.executable, str(repo_root / "bench" / script), *args],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def run_bench(repo_root: Path, script: str, *args: str) -> str:
    proc = bench(repo_root, script, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_scrape_bench_runs_every_scenario(repo_root, chromium_path, tmp_path):
    out = tmp_path / "scrape.json"
    run_bench(
        repo_root,
        "bench_scrape.py",
        *("--pages", "6", "--scenarios", "0,40x2", "--rounds", "1", "--rss-calls", "2"),
        *("--chromium", chromium_path, "--out", str(out)),
    )
    report = json.loads(out.read_text())
    assert list(report["scenarios"]) == ["0ms", "40ms over 2 hosts"]
    for scenario in report["scenarios"].values():
        assert all(scenario[run]["pages_ok"] == 6 for run in ("ours_warm", "crawlee", "naive"))
        assert set(scenario["ratios"]) == {"ours_vs_crawlee", "ours_vs_naive"}
    assert report["scenarios"]["40ms over 2 hosts"]["hosts"] == 2
    assert report["rss"]["calls"] == 2 and report["rss"]["failures"] == 0


def test_scrape_bench_rejects_a_malformed_scenario(repo_root):
    proc = bench(repo_root, "bench_scrape.py", "--scenarios", "300y4", timeout_s=60)
    assert proc.returncode != 0 and "--scenarios" in proc.stderr and "'300y4'" in proc.stderr


def test_fanout_bench_runs_and_accounts_for_every_item(repo_root, tmp_path):
    out = tmp_path / "fanout.json"
    run_bench(
        repo_root,
        "bench_fanout.py",
        *("--workers", "2", "--items", "6", "--orders", "shuffled", "--seeds", "7", "8"),
        *("--out", str(out)),
    )
    rows = json.loads(out.read_text())["rows"]
    assert [(r["seed"], r["order"]) for r in rows] == [(7, "shuffled"), (8, "shuffled")]
    for row in rows:
        assert row["dynamic_makespan_s"] >= row["lower_bound_s"] * 0.99  # no schedule beats it
        assert row["static_makespan_s"] >= row["lower_bound_s"] * 0.99
        assert row["fanout"]["chunks"] >= 2 and row["fanout"]["chunks_failed"] == 0
        # siblings' running time: 2 workers, within the job's makespan
        assert 0 <= row["sibling_workers"]["running_s"] <= 2 * row["dynamic_makespan_s"] + 0.5


def test_fanout_model_runs(repo_root):
    stdout = run_bench(
        repo_root,
        "sim_fanout.py",
        *("--workers", "4", "--gap-s", "0", "--divisors", "1.5", "--draws", "1", "--orders", "2"),
    )
    row = stdout.splitlines()[-1].split()
    assert row[:3] == ["4", "0.00", "1.5"] and float(row[4]) >= 1.0  # mean ÷ bound


def test_fanout_scale_bench_reports_memory_requests_and_resume(repo_root, tmp_path):
    out = tmp_path / "fanout_scale.json"
    run_bench(
        repo_root,
        "bench_fanout_scale.py",
        *("--items", "300", "600", "--workers", "6", "--processes", "1"),
        *("--resume-items", "300", "--resume-item-s", "0.1", "--out", str(out)),
    )
    report = json.loads(out.read_text())
    assert [r["items"] for r in report["rows"]] == [300, 600]
    for row in report["rows"]:
        assert row["fanout"]["chunks"] >= 2 and row["fanout"]["chunks_failed"] == 0
        assert row["rss_peak_mb"] >= row["rss_baseline_mb"] > 0
        assert row["requests_total"] > 0 and row["client_ops"]["run"]["total"] >= 1
    resume = report["resume"]
    assert resume["items"] == 300 and resume["fanout"]["resumed"] is True
    assert resume["kill_to_completed_s"] > 0 and resume["full_run_s"] > 0
