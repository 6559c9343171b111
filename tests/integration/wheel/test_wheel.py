"""Done-when of issue 10, as a user meets podfleet: installed from a wheel, used from a project
of their own outside the repository.

- the client-only venv has no torch, Playwright, SQLAlchemy or RunPod SDK, and `podfleet health`
  answers from an emulator;
- the example project's own handler.py runs a job locally (`--test_input`) with the wheel;
- `podfleet emulate` started in the project's directory runs its handler.py on 4 workers, and a
  job fans out over 3 of them with its results in input order;
- the project's own tests pass with the fixtures the wheel ships (podfleet.testing)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, Venv, run

pytestmark = pytest.mark.emulator

HEAVY = ("torch", "playwright", "sqlalchemy", "runpod", "sentence_transformers", "uvicorn")


def test_client_venv_has_only_the_client(client_venv: Venv) -> None:
    probe = f"""
import importlib.util, json, sys
import podfleet, podfleet.cli, podfleet.cli.health, podfleet.cli.jobs, podfleet.api
from podfleet import SyncEndpointClient
print(json.dumps({{
    "file": podfleet.__file__,
    "installed": [m for m in {HEAVY!r} if importlib.util.find_spec(m) is not None],
    "imported": [m for m in {HEAVY!r} if m in sys.modules],
}}))
"""
    done = run([client_venv.python, "-c", probe], env=client_venv.env(), cwd="/")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["file"].startswith(str(client_venv.root)), report
    assert report["installed"] == [] and report["imported"] == []


def test_example_runs_locally_with_its_own_handler(full_venv: Venv, project: Path) -> None:
    probe = "import podfleet, pricefeed; print(podfleet.__file__, pricefeed.__file__)"
    files = run([full_venv.python, "-c", probe], env=full_venv.env(), cwd="/").stdout.split()
    assert files[0].startswith(str(full_venv.root)) and not files[0].startswith(str(REPO_ROOT))
    assert files[1].startswith(str(full_venv.root)), files  # the installed project, not the copy
    job = {
        "input": {
            "pipeline": "pricefeed",
            "items": [
                {"id": "a", "currency": "USD", "csv": "sku,name,price\nX-1,Bolt,10.00\n"},
                {"id": "b", "currency": "EUR", "csv": "sku,name,price\nX-1,Bolt,9.00\nX-2,,oops"},
            ],
        }
    }
    env = full_venv.env(PRICEFEED_DB_PATH=str(project / "data" / "local.db"))
    done = run(
        [full_venv.python, "handler.py", "--test_input", json.dumps(job)], env=env, cwd=project
    )
    assert "'min': 9.2" in done.stdout and "'cheapest': {'sku': 'X-1', 'price': 9.0}" in done.stdout
    assert "price 'oops' is not a number" in done.stdout
    assert "flashpoints" not in done.stdout + done.stderr  # only the project's pipeline is served
    # ./test_input.json, RunPod's other local mode
    done = run([full_venv.python, "handler.py"], env=env, cwd=project)
    assert "'id': 'crown-uk'" in done.stdout and "no rate for currency 'AUD'" in done.stdout


def _start_emulator(full_venv: Venv, project: Path, log: Path) -> tuple[subprocess.Popen, str]:
    # started in the project's directory: its workers run that directory's handler.py
    cmd = [str(full_venv.bin / "podfleet"), "emulate", "--workers", "4", "--log-file", str(log)]
    env = full_venv.env(PRICEFEED_DB_PATH=str(project / "data" / "fanout.db"))
    proc = subprocess.Popen(
        cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+/v2)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise AssertionError("podfleet emulate printed no URL:\n" + "".join(seen))


def _client(client_venv: Venv, base_url: str, *args: str) -> subprocess.CompletedProcess:
    env = client_venv.env(
        RUNPOD_ENDPOINT_BASE_URL=base_url,
        RUNPOD_ENDPOINT_ID="local-endpoint",
        RUNPOD_API_KEY="emulator-no-key",
    )
    return subprocess.run([*args], capture_output=True, text=True, timeout=240, env=env, cwd="/")


SUBMIT = """
import json, sys
from podfleet import SyncEndpointClient
from podfleet.settings import load_settings
with SyncEndpointClient.from_settings(load_settings()) as client:
    job = client.run(json.loads(sys.argv[1]))
    state = client.wait(job.id, timeout_s=180, interval_s=0.25)
print(json.dumps({"id": job.id, "status": str(state.status), "output": state.output}))
"""


def test_health_from_client_venv_and_fanout_from_podfleet_emulate(
    client_venv: Venv, full_venv: Venv, project: Path, tmp_path: Path
) -> None:
    proc, base_url = _start_emulator(full_venv, project, tmp_path / "workers.log")
    try:
        health = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # workers start, import podfleet, poll for jobs
            done = _client(client_venv, base_url, str(client_venv.bin / "podfleet"), "health")
            done_json = _client(
                client_venv, base_url, str(client_venv.bin / "podfleet"), "health", "--json"
            )
            assert done.returncode == 0 and done_json.returncode == 0, done.stderr + done.stdout
            health = json.loads(done_json.stdout)
            if health["workers"].get("idle", 0) >= 4:
                break
            time.sleep(0.5)
        assert health and health["workers"].get("idle", 0) >= 4, (health, proc.poll())
        assert "local-endpoint" in done.stdout and "idle" in done.stdout

        csv = "sku,name,price\nS-{0},Item {0},{0}.50\n"
        feeds = [{"id": f"s{i}", "currency": "GBP", "csv": csv.format(i)} for i in range(1, 10)]
        job = {"pipeline": "pricefeed", "items": feeds, "workers": 3}
        done = _client(client_venv, base_url, client_venv.python, "-c", SUBMIT, json.dumps(job))
        assert done.returncode == 0, done.stderr[-3000:]
        final = json.loads(done.stdout.strip().splitlines()[-1])
        out = final["output"]
        assert final["status"].endswith("COMPLETED") and out["ok"] is True, final
        assert [r["id"] for r in out["results"]] == [f["id"] for f in feeds]
        assert [r["min"] for r in out["results"]] == [
            round((i + 0.5) * 1.17, 2) for i in range(1, 10)
        ]
        assert out["mode"] == "coordinator" and out["fanout"]["siblings_submitted"] >= 3
        # the CLI's submit and status from the client-only venv
        small = {"input": {"pipeline": "pricefeed", "items": feeds[:2]}}
        (tmp_path / "job.json").write_text(json.dumps(small))
        cli = str(client_venv.bin / "podfleet")
        done = _client(client_venv, base_url, cli, "submit", str(tmp_path / "job.json"), "--wait")
        assert done.returncode == 0 and "COMPLETED" in done.stdout + done.stderr, done
        done = _client(client_venv, base_url, cli, "status", final["id"])
        assert done.returncode == 0 and "COMPLETED" in done.stdout, done
        log = (tmp_path / "workers.log").read_text()
        assert "flashpoints" not in log  # the project's worker registers its own pipeline only
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_example_projects_own_tests_pass_with_the_shipped_fixtures(
    full_venv: Venv, project: Path
) -> None:
    done = subprocess.run(
        [full_venv.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=project,
        env=full_venv.env(),
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\b4 passed\b", done.stdout), done.stdout[-2000:]
