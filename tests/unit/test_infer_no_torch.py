"""A coordinator never imports torch: the edge, the coordinator, the registry, the flashpoints
pipeline, job parsing and mode choice all stay clear of torch and sentence-transformers. Run in a
fresh interpreter, since this test process may have loaded the model already. (That the probe
does see torch after a model load is shown by tests/integration/infer/test_fitness.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "sentence_transformers", "transformers")

SCRIPT = r"""
import importlib, importlib.util, json, sys
job = json.loads(sys.argv[1])
import podfleet.entry, podfleet.main, podfleet.fitness, podfleet.modes, podfleet.worker
import pkgutil
for name in ("podfleet.coordinator", "podfleet.api", "podfleet.cli"):
    if importlib.util.find_spec(name) is not None:
        package = importlib.import_module(name)
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if info.name != "__main__":  # that one runs the command line
                importlib.import_module(f"{name}.{info.name}")  # every submodule
import podfleet.pipeline, podfleet.pipeline.infer
import podfleet
for name in podfleet.__all__:  # the whole public API, resolved
    getattr(podfleet, name)
from podfleet.pipeline.registry import get_pipeline, known_pipelines
from podfleet.envelope import parse_job
from podfleet.modes import choose_mode
from podfleet.settings import load_settings
from podfleet.fitness import register_checks
flashpoints = get_pipeline("flashpoints")
assert [s.name for s in flashpoints.stages][-1] == "embed"
known_pipelines()
parsed = parse_job(job)
mode = choose_mode(parsed, load_settings())
register_checks()  # registering the model check must not load the model either
print(json.dumps({"mode": mode, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def test_coordinator_paths_never_import_torch(repo_root, clean_env) -> None:
    job = json.loads((repo_root / "test_input.json").read_text())
    job["id"] = "coordinator-job"
    job["input"]["workers"] = 4
    job["input"]["mode"] = "coordinator"
    env = {
        "PATH": "/usr/bin:/bin",
        "RUNPOD_ENDPOINT_ID": "ep-test",
        "RUNPOD_API_KEY": "test-key",
        "PYTHONPATH": str(repo_root),
    }
    script = f"HEAVY = {HEAVY!r}\n" + SCRIPT
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=clean_env,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["mode"] == "coordinator"
    assert report["heavy"] == []


LIGHT_SCRIPT = r"""
import json, sys
import podfleet
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)))
"""


def test_import_podfleet_is_light(repo_root, clean_env) -> None:
    """`import podfleet` loads no heavy or worker-only package: its API resolves on first use."""
    heavy = (*HEAVY, "playwright", "sqlalchemy", "runpod", "uvicorn", "starlette", "httpx")
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {heavy!r}\n" + LIGHT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=clean_env,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_public_api_lists_every_export() -> None:
    import podfleet

    assert podfleet.__all__ == sorted(podfleet._EXPORTS)
    assert {"Pipeline", "Stage", "ItemState", "RunContext", "register", "serve"} <= set(
        podfleet.__all__
    )
