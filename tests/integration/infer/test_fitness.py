"""The model fitness check through the real SDK (runpod 1.12.0): it loads the model into the warm
resources before jobs, kills the worker (exit 1) on a broken model, does not run in the one-shot
local mode, and can be switched off. Each case runs in its own interpreter: the SDK keeps its
checks in a process-wide list and exits the process on failure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from podfleet.fitness import register_checks
from podfleet.settings import Settings

pytestmark = pytest.mark.model

RUN_CHECKS = r"""
import asyncio, json, sys
from podfleet.fitness import register_checks
from runpod.serverless.modules.rp_fitness import run_fitness_checks
names = register_checks()
asyncio.run(run_fitness_checks())
from podfleet.worker import RESOURCES
heavy = [m for m in ("torch", "sentence_transformers") if m in sys.modules]
print(json.dumps({"names": names, "created": RESOURCES.created, "heavy": heavy}))
"""


def run(args: list[str], cwd, repo_root, **env: str) -> subprocess.CompletedProcess:
    base = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(repo_root),
        "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",  # the SDK's RAM/DNS checks are not ours
        "RUNPOD_SKIP_GPU_CHECK": "true",
        "LOG_LEVEL": "INFO",
    }
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**base, **env},
    )


def test_fitness_check_loads_the_model_before_jobs(repo_root, clean_env) -> None:
    done = run(["-c", RUN_CHECKS], clean_env, repo_root)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["names"] == ["model_fitness_check"]
    assert report["created"] == {"model:all-MiniLM-L6-v2": 1}  # warm for the first job
    assert "torch" in report["heavy"]  # (and the no-torch probe would have seen it)


def test_broken_model_kills_the_worker_before_it_takes_a_job(repo_root, clean_env) -> None:
    done = run(["-c", RUN_CHECKS], clean_env, repo_root, MODEL_NAME="no-such-model")
    assert done.returncode == 1
    logs = done.stdout + done.stderr
    assert "Fitness check failed: model_fitness_check" in logs
    assert "unknown model 'no-such-model' (MODEL_NAME)" in logs


def test_local_test_input_mode_skips_the_check(repo_root, clean_env) -> None:
    job = {"input": {"pipeline": "synthetic", "items": [{"id": "a"}]}}
    done = run(
        [str(repo_root / "handler.py"), "--test_input", json.dumps(job)],
        clean_env,
        repo_root,
        MODEL_NAME="no-such-model",  # would exit 1 if the check ran
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "Fitness check" not in done.stdout + done.stderr


def test_fitness_check_can_be_switched_off(clean_env) -> None:
    assert register_checks(Settings(infer_fitness_check=False)) == []
