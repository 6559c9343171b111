"""Concurrent first use of a fresh database by real processes (issue 12 defect 6): every
process migrates under the lock or waits for it, every job loads, rows match every output, and
concurrent loads of one flashpoint leave exactly one job's documents."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from podfleet.pipeline.store.db import engine_for
from podfleet.pipeline.store.migrate import current_revision, head_revision

from tests.integration.store.helpers import assert_rows_match, item, job, read_rows, source

PROCESSES = 4


def run_at_once(repo_root: Path, tmp: Path, url: str, jobs: list[dict]) -> list[dict]:
    start = tmp / "go"
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(repo_root)}
    env = {k: v for k, v in env.items() if not k.startswith("RUNPOD_")}
    procs = []
    for i, body in enumerate(jobs):
        path = tmp / f"job{i}.json"
        path.write_text(json.dumps(body))
        cmd = [sys.executable, "-m", "tests.integration.store.run_job", str(path), str(start)]
        procs.append(
            subprocess.Popen(
                cmd, cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    deadline = time.monotonic() + 90
    while len(list(tmp.glob("ready-*"))) < len(procs):  # all imported: first use together
        assert time.monotonic() < deadline, "worker processes did not get ready"
        assert all(p.poll() is None for p in procs), "a worker process died before the start"
        time.sleep(0.05)
    start.touch()
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        lines = [ln for ln in stdout.decode().splitlines() if ln.startswith("OUTPUT ")]
        assert p.returncode == 0 and lines, stderr.decode()[-3000:]
        outs.append(json.loads(lines[-1].removeprefix("OUTPUT ")))
    return outs


def test_first_use_by_four_processes_at_once(database_url, repo_root, tmp_path) -> None:
    """Each job has flashpoints of its own and one, `shared`, that all four load at once with
    different sources: the rows hold every job's own flashpoints and the last writer's `shared`."""
    jobs = [
        job(
            f"first-{i}",
            [
                item(f"fp-{i}-a", source(f"t{i}a")),
                item(f"fp-{i}-b", source(f"t{i}b"), source(f"t{i}c")),
                item("shared", *[source(f"s{i}x{k}") for k in range(i + 1)]),
            ],
        )
        for i in range(PROCESSES)
    ]
    outs = run_at_once(repo_root, tmp_path, database_url, jobs)
    assert all(out["ok"] is True for out in outs), outs
    for out in outs:
        assert_rows_match(database_url, out, only_this_job=False, overwritten=frozenset({"shared"}))
    rows = read_rows(database_url)
    assert len(rows["runs"]) == PROCESSES
    assert len(rows["flashpoints"]) == 2 * PROCESSES + 1
    [shared] = [fp for fp in rows["flashpoints"] if fp["flashpoint_id"] == "shared"]
    last = {j["id"]: o for j, o in zip(jobs, outs, strict=True)}[shared["job_id"]]
    assert_rows_match(database_url, last, only_this_job=False)  # all of its documents, only its
    engine = engine_for(database_url)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    engine.dispose()
