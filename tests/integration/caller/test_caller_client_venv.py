"""A client-only install runs the integrations: the wheel built from this checkout, installed
with the extras `fastapi,celery` into a fresh venv (no system packages), has no torch,
Playwright, SQLAlchemy or RunPod SDK, and its FastAPI app submits a job to the emulator and
returns the result. (~75 s, most of it pip installing from the package index.)"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
import uuid

import pytest
from podfleet.emulator import run_emulator

from tests.integration.caller.stack import REPO_ROOT
from tests.integration.emulator.helpers import API_KEY, config
from tests.integration.wheel.conftest import Venv, build_wheel, clean_env, run

pytestmark = pytest.mark.emulator

SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys
    from fastapi.testclient import TestClient
    from podfleet.integrations import CallerConfig
    from podfleet.integrations.celery import create_celery_app
    from podfleet.integrations.fastapi import create_app

    cfg = CallerConfig(**json.loads(sys.argv[1]))
    create_celery_app(cfg, broker_url=cfg.redis_url)  # importable and configurable
    absent = [m for m in ("torch", "playwright", "sqlalchemy", "runpod", "sentence_transformers")
              if importlib.util.find_spec(m) is not None]
    job = {"mode": "worker", "pipeline": "synthetic", "items": [{"id": "venv"}]}
    with TestClient(create_app(cfg)) as client:
        r = client.post("/jobs", params={"wait_s": 30}, json={"input": job})
    print(json.dumps({"installed": absent, "code": r.status_code, "body": r.json()}))
    """
)


def test_client_only_venv_runs_the_integrations(tmp_path, redis_url) -> None:
    src = tmp_path / "src" / "podfleet"
    shutil.copytree(
        REPO_ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "data", "__pycache__", "*.egg-info", "build", "bench", "tests", "examples"
        ),
    )
    build_wheel(src, tmp_path / "wheel")
    (wheel,) = (tmp_path / "wheel").glob("podfleet-*.whl")
    venv = Venv(tmp_path / "venv")
    run([sys.executable, "-m", "venv", str(venv.root)], env=clean_env())
    venv.pip("--no-compile", f"podfleet[fastapi,celery] @ {wheel.as_uri()}")
    with run_emulator(config(tmp_path, workers=1)) as emu:
        cfg = {
            "endpoint_id": emu.endpoint_id,
            "base_url": emu.base_url,
            "api_key": API_KEY,
            "redis_url": redis_url,
            "key_prefix": f"pft-venv-{uuid.uuid4().hex[:8]}",
        }
        done = run([venv.python, "-c", SCRIPT, json.dumps(cfg)], env=venv.env(), cwd=tmp_path)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["installed"] == []
    assert out["code"] == 200 and out["body"]["status"] == "COMPLETED", out
    assert out["body"]["output"]["results"] == [{"id": "venv", "duration_s": 0.0}]
