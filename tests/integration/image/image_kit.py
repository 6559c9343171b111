"""Helpers of the image tests: build with builder/build_image.sh, run with builder/image/run.sh,
read sizes from buildah's store (builder/image/buildah.sh), stage a build context."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILDAH = ["bash", str(REPO_ROOT / "builder" / "image" / "buildah.sh")]
RUN = ["bash", str(REPO_ROOT / "builder" / "image" / "run.sh")]
BUILD = ["bash", str(REPO_ROOT / "builder" / "build_image.sh")]
BASE = ["bash", str(REPO_ROOT / "builder" / "base_image.sh")]
# Where the store and the build lock live (builder/image/buildah.sh, builder/build_image.sh).
STORE_DIR = Path(os.environ.get("PODFLEET_BUILDAH_ROOT", "/var/lib/podfleet-image/storage")).parent

# What the tests measured, for the terminal summary (conftest.py prints it).
TIMINGS_S: dict[str, float] = {}
SIZES: dict[str, dict] = {}


@dataclass
class Built:
    tag: str
    dockerfile: str
    seconds: float
    log: str


def host_env() -> dict[str, str]:
    """This environment without RunPod's or podfleet's run-time variables."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RUNPOD_") and k not in ("DATABASE_URL", "PODFLEET_IMAGE_ENV")
    }


def buildah(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BUILDAH, *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def build(
    tag: str, *, slim: bool = False, context: Path | None = None, timeout_s: float = 2400
) -> tuple[subprocess.CompletedProcess, float]:
    """builder/build_image.sh, its output (stdout + stderr) and wall time."""
    argv = [*BUILD, "--tag", tag]
    if slim:
        argv.append("--slim")
    if context is not None:
        argv += ["--context", str(context)]
    started = time.monotonic()
    proc = subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=host_env(),
        timeout=timeout_s,
    )
    return proc, time.monotonic() - started


def run(
    image: str,
    *cmd: str,
    network: str = "none",
    env: dict[str, str] | None = None,
    volumes: list[str] | None = None,
    timeout_s: float = 300,
) -> subprocess.CompletedProcess:
    """`docker run --rm` of image (its CMD without cmd); env goes in explicitly."""
    argv = [*RUN, f"--network={network}"]
    argv += [f"--env={k}={v}" for k, v in (env or {}).items()]
    argv += [f"--volume={v}" for v in volumes or []]
    argv.append(image)
    if cmd:
        argv += ["--", *cmd]
    return subprocess.run(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=host_env(),
        timeout=timeout_s,
    )


def worker_cmd(image: str, *volumes: str) -> list[str]:
    """An emulator worker command that runs the image's CMD inside it, on the host's network
    (the emulator listens on 127.0.0.1); run.sh passes the RUNPOD_* variables in."""
    return [*RUN, "--network=host", *(f"--volume={v}" for v in volumes), image]


def inspect(image: str) -> dict:
    return json.loads(buildah("inspect", "--type", "image", image).stdout)


def layers(image: str) -> list[tuple[int, str]]:
    """(uncompressed bytes, instruction) per layer, base layers first."""
    info = inspect(image)
    sizes = [layer["size"] for layer in json.loads(info["Manifest"])["layers"]]
    steps = [h for h in info["OCIv1"].get("history", []) if not h.get("empty_layer")]
    names = [h.get("created_by", "?") for h in steps]
    if len(names) != len(sizes):  # history without one entry per layer: number them
        names = [f"layer {n}" for n in range(len(sizes))]
    return list(zip(sizes, names, strict=True))


def normalized(instruction: str) -> str:
    """An instruction with line continuations joined and whitespace collapsed."""
    return " ".join(instruction.replace("\\\n", " ").split())


def dockerfile_instructions(path: Path) -> list[str]:
    """The Dockerfile's instructions as a build echoes them (`STEP n/m: ...`), normalized."""
    from dockerfile_parse import DockerfileParser

    parsed = DockerfileParser(str(path)).structure
    return [
        normalized(f"{ins['instruction']} {ins['value']}")
        for ins in parsed
        if ins["instruction"] != "COMMENT"
    ]


def job_result(output: str) -> str:
    """The SDK's `Job result: {...}` line of a local run ('' if absent)."""
    lines = [line for line in output.splitlines() if "Job result: " in line]
    return lines[-1] if lines else ""


def stage_context(dest: Path, drop: str) -> None:
    """A copy of the build context (what .dockerignore keeps is decided by buildah, as by
    Docker) without the one file `drop`. mtimes are kept, so unchanged layers stay cached."""
    skip = shutil.ignore_patterns(".git", "__pycache__", "data", ".pytest_cache", ".ruff_cache")
    shutil.copytree(REPO_ROOT, dest, ignore=skip, symlinks=True)
    (dest / drop).unlink()


def remove_images(*tags: str) -> None:
    """Remove our images and every container made from them, then the layers only they used
    (dangling intermediate images); the cached base image stays."""
    for line in buildah("containers", "--format", "{{.ContainerID}} {{.ImageName}}").stdout.split(
        "\n"
    ):
        parts = line.split()
        if len(parts) == 2 and any(parts[1].endswith(t.split("/")[-1]) for t in tags):
            buildah("rm", parts[0], check=False)
    for tag in tags:
        buildah("rmi", tag, check=False)
    # Dangling images are the layer cache of builds: prune under the build lock, never mid-build.
    subprocess.run(
        ["flock", "-w", "3600", str(STORE_DIR / "build.lock"), *BUILDAH, "rmi", "--prune"],
        capture_output=True,
        timeout=3700,
    )
