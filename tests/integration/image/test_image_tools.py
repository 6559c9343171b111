"""The image build's own helpers, without building: this machine's pip configuration turned into a
build-time pip.conf and bind mounts (builder/image/pip_config.py), and the slim image's pinned
extras (builder/image/extras.py). Fast; no buildah needed."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO_ROOT / "builder" / "image"))

import extras  # noqa: E402
import pip_config  # noqa: E402


def test_pip_config_binds_local_locations_under_one_prefix(tmp_path: Path) -> None:
    index = tmp_path / "pypi" / "simple"
    index.mkdir(parents=True)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2.14.1\n")
    cert = tmp_path / "ca.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = {
        "global": {
            "extra-index-url": f"file://{index} file://{tmp_path}/gone/simple https://x.test/s",
            "find-links": str(wheels),
            "constraint": str(constraints),
            "cert": str(cert),
            "default-timeout": "180",
        },
        "install": {"find-links": str(tmp_path / "missing")},
    }
    text, binds = pip_config.plan(settings)
    prefix = pip_config.PREFIX
    # A file:// index is bound with its parent (its pages link to ../../files/...).
    assert index.parent in binds and wheels in binds and constraints in binds and cert in binds
    assert f"extra-index-url = file://{prefix}{index} https://x.test/s" in text
    assert f"find-links = {prefix}{wheels}" in text
    assert f"constraint = {prefix}{constraints}" in text
    assert f"cert = {prefix}{cert}" in text  # never over the image's own CA bundle
    assert "default-timeout = 180" in text
    assert "gone" not in text and "missing" not in text and "[install]" not in text


def test_pip_config_binds_a_directory_once(tmp_path: Path) -> None:
    (tmp_path / "a" / "simple").mkdir(parents=True)
    (tmp_path / "a" / "wheels").mkdir()
    settings = {
        "global": {
            "index-url": f"file://{tmp_path}/a/simple",
            "find-links": f"{tmp_path}/a/wheels {tmp_path}/a",
        }
    }
    _, binds = pip_config.plan(settings)
    assert binds == [tmp_path / "a"]


def test_pip_config_cli_prints_volume_options(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "builder" / "image" / "pip_config.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == f"--volume={tmp_path}/pip.conf:/etc/pip.conf:ro"
    for line in lines[1:]:
        host, inside, mode = line.removeprefix("--volume=").split(":")
        assert Path(host).exists() and inside == pip_config.PREFIX + host and mode == "ro"
    assert (tmp_path / "pip.conf").is_file()


def test_extras_expand_self_references_and_keep_the_base() -> None:
    with (REPO_ROOT / "pyproject.toml").open("rb") as f:
        pyproject = tomllib.load(f)
    reqs = extras.requirements(pyproject, ["worker", "store", "fastapi", "celery"])
    names = {r.split(">")[0].split("[")[0].split("=")[0].lower() for r in reqs}
    assert {"pydantic", "httpx", "runpod", "sqlalchemy", "fastapi", "celery"} <= names
    assert not names & {"torch", "playwright", "sentence-transformers", "transformers"}
    assert not any(r.startswith("podfleet") for r in reqs)
    flashpoints = extras.requirements(pyproject, ["flashpoints"])
    assert any(r.startswith("torch") for r in flashpoints)  # podfleet[...,infer,...] expanded
    with pytest.raises(SystemExit, match="no extra 'nope'"):
        extras.requirements(pyproject, ["nope"])


def test_extras_constraints_drop_extras_markers(tmp_path: Path) -> None:
    pins = tmp_path / "requirements.txt"
    pins.write_text("# c\npsycopg[binary]==3.3.9  # db\n\ntorch==2.13.0\n")
    assert extras.constraints([pins]) == ["psycopg==3.3.9", "torch==2.13.0"]
