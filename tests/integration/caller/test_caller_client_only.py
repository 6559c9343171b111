"""The integrations load without the worker side: no torch, Playwright, SQLAlchemy or RunPod SDK
(what a FastAPI or Celery process that only calls an endpoint installs: extras fastapi, celery)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ["torch", "playwright", "sqlalchemy", "runpod", "sentence_transformers", "trafilatura"]


def test_integrations_import_no_worker_packages() -> None:
    code = (
        "import sys, json\n"
        "import podfleet.integrations.fastapi, podfleet.integrations.celery\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_extras_declare_what_the_integrations_import() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    fastapi = " ".join(extras["fastapi"])
    celery = " ".join(extras["celery"])
    for dist in ("fastapi", "redis", "uvicorn"):
        assert dist in fastapi, dist
    for dist in ("celery", "redis", "kombu"):
        assert dist in celery, dist
