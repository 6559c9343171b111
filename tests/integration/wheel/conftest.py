"""podfleet as a user gets it: a wheel built from this checkout, installed into fresh virtual
environments (a client-only one, and a full worker one), and the example project copied out of
the repository. Built once per test session; the venvs live in the session's tmp directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = REPO_ROOT / "examples" / "pricefeed"


def run(cmd: list[str], *, timeout_s: float = 300, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, **kwargs)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, cmd))} exited {done.returncode}\n"
            f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
        )
    return done


def clean_env(**extra: str) -> dict[str, str]:
    """No RunPod/podfleet variables of the developer's shell; no PYTHONPATH onto the checkout."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    keep.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT"):
        if name in os.environ:
            keep[name] = os.environ[name]
    return {**keep, **extra}


def build_wheel(src: Path, out: Path) -> None:
    """With this Python's setuptools when it can build (>= 68 with bdist_wheel), else in pip's
    isolated build environment (setuptools from the package index)."""
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out)]
    try:
        run([*pip_wheel, "--no-build-isolation", str(src)], env=clean_env())
    except AssertionError:
        run([*pip_wheel, str(src)], env=clean_env())


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> str:
        return str(self.root / "bin" / "python")

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(PATH=f"{self.bin}:/usr/bin:/bin", VIRTUAL_ENV=str(self.root), **extra)

    def pip(self, *args: str, timeout_s: float = 600) -> None:
        run([self.python, "-m", "pip", "install", "-q", *args], timeout_s=timeout_s, env=self.env())


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("wheel-src")
    # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    src = build / "podfleet"
    shutil.copytree(
        REPO_ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "data", "__pycache__", "*.egg-info", "build", "bench", "tests", "examples"
        ),
    )
    build_wheel(src, out)
    (path,) = out.glob("podfleet-*.whl")
    return path


@pytest.fixture(scope="session")
def client_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Venv:
    """A fresh venv with `podfleet[client]` only, its dependencies from the package index."""
    venv = Venv(tmp_path_factory.mktemp("venv-client") / "venv")
    run([sys.executable, "-m", "venv", str(venv.root)])
    venv.pip(f"podfleet[client] @ {wheel.as_uri()}")
    return venv


@pytest.fixture(scope="session")
def full_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Venv:
    """A worker venv: this machine's packages (torch and the rest are not reinstalled), the wheel
    itself installed over them (not the editable checkout), and pytest for the example's tests."""
    venv = Venv(tmp_path_factory.mktemp("venv-full") / "venv")
    run([sys.executable, "-m", "venv", "--system-site-packages", str(venv.root)])
    venv.pip("--no-deps", "--force-reinstall", str(wheel))
    venv.pip(f"podfleet[worker,emulator,testing] @ {wheel.as_uri()}")  # all present: a no-op
    return venv


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, full_venv: Venv) -> Path:
    """The example project copied outside the repository, installed (no deps) into full_venv."""
    dest = tmp_path_factory.mktemp("user") / "pricefeed"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp_path_factory.mktemp("user-wheel")
    build_wheel(dest, wheels)
    for leftover in ("build", "pricefeed.egg-info"):
        shutil.rmtree(dest / leftover, ignore_errors=True)
    (built,) = wheels.glob("pricefeed-*.whl")
    full_venv.pip("--no-deps", str(built))
    return dest
