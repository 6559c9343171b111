"""The model fitness check through the real SDK (runpod 1.12.0): it loads the model into the warm
resources before jobs (also when the load was started in a thread at process start), kills the
worker (exit 1) on a broken model, does not run in the one-shot local mode, can be switched off,
and loads nothing when no registered pipeline declares the model. Each case runs in its own
interpreter: the SDK keeps its checks in a process-wide list and exits the process on failure."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from podfleet.fitness import register_checks, startup_resources
from podfleet.pipeline.resources import Resource
from podfleet.settings import Settings

pytestmark = pytest.mark.model

RUN_CHECKS = r"""
import asyncio, json, sys, threading
from podfleet.pipeline import registry
if "--only-synthetic" in sys.argv:  # a worker whose registered pipelines use no model
    registry.configure(builtins=False, modules=["podfleet.pipeline.pipelines.synthetic"])
from podfleet.fitness import register_checks, start_warm_up
from podfleet.settings import load_settings
started = "--warm-up" in sys.argv and start_warm_up(load_settings())  # as main() does
import runpod
from runpod.serverless.modules.rp_fitness import run_fitness_checks
names = register_checks()
asyncio.run(run_fitness_checks())
from podfleet.worker import RESOURCES
heavy = [m for m in ("torch", "sentence_transformers") if m in sys.modules]
print(json.dumps({"names": names, "created": RESOURCES.created, "heavy": heavy,
                  "started": started, "pipelines": registry.known_pipelines()}))
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


def test_model_load_started_at_process_start_is_what_the_check_waits_for(
    repo_root, clean_env
) -> None:
    done = run(["-c", RUN_CHECKS, "--warm-up"], clean_env, repo_root)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["started"] is True and report["names"] == ["model_fitness_check"]
    assert report["created"] == {"model:all-MiniLM-L6-v2": 1}  # loaded once, by the thread


def test_a_worker_whose_pipelines_use_no_model_loads_none(repo_root, clean_env) -> None:
    done = run(["-c", RUN_CHECKS, "--only-synthetic", "--warm-up"], clean_env, repo_root)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["pipelines"] == ["synthetic"]
    assert report["names"] == [] and report["started"] is False
    assert report["created"] == {} and report["heavy"] == []  # torch never imported


def test_startup_resources_follow_the_pipelines_and_the_switch(clean_env) -> None:
    on, off = Settings(), Settings(infer_fitness_check=False)
    everything = frozenset(Resource)
    assert startup_resources(on, everything) == {Resource.MODEL}
    assert startup_resources(on, frozenset({Resource.BROWSER, Resource.DATABASE})) == set()
    assert startup_resources(on, frozenset()) == set()
    assert startup_resources(off, everything) == set()
    assert register_checks(on, frozenset()) == []


@pytest.mark.parametrize("warm_up", [False, True], ids=["in-check", "started-at-start"])
def test_broken_model_kills_the_worker_before_it_takes_a_job(repo_root, clean_env, warm_up) -> None:
    args = ["-c", RUN_CHECKS, *(["--warm-up"] if warm_up else [])]
    done = run(args, clean_env, repo_root, MODEL_NAME="no-such-model")
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
