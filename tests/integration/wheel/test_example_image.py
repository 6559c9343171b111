"""The example's Dockerfile builds on podfleet's image: it lints clean, copies only files the
project has, installs the project and runs its handler.py as RunPod's CMD. (No Docker here:
tests/integration/image covers podfleet's own image recipe the same way.)"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import EXAMPLE


def test_example_dockerfile() -> None:
    dockerfile_parse = pytest.importorskip("dockerfile_parse")
    parsed = dockerfile_parse.DockerfileParser(path=str(EXAMPLE / "Dockerfile"))
    steps = [(s["instruction"], s["value"]) for s in parsed.structure]
    assert ("FROM", "${PODFLEET_IMAGE}") in steps
    assert ("ARG", "PODFLEET_IMAGE=podfleet:latest") in steps
    for instruction, value in steps:
        if instruction == "COPY":
            *sources, _dest = value.split()
            for source in sources:
                assert (EXAMPLE / source).exists(), f"COPY {source}: not in the project"
    runs = [v for i, v in steps if i == "RUN"]
    assert any("pip install" in r and "--no-deps" in r for r in runs)  # podfleet is in the base
    assert json.loads(next(v for i, v in steps if i == "CMD")) == ["python", "-u", "handler.py"]
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (builder/requirements-dev.txt)")
    done = subprocess.run(
        [hadolint, str(EXAMPLE / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
