"""Session fixtures of the image tests: the stand-in base image (cached across runs), the full and
the slim image, each built once per session from the repository's unchanged Dockerfiles, and
removed at the end with every container and layer only they used (the base stays cached).

They need root, buildah and debootstrap (builder/setup.sh --dev installs them); without those
the tests skip, unless the run promises them (PODFLEET_REQUIRE_IMAGE=1, set by builder/test.sh).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import image_kit as kit
import pytest

# Keep the whole build log of a failed build in the failure message's tail.
LOG_TAIL_CHARS = 6000


def _missing(what: str) -> None:
    if os.environ.get("PODFLEET_REQUIRE_IMAGE") == "1":
        pytest.fail(f"{what} is required by this run (PODFLEET_REQUIRE_IMAGE=1)")
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def image_tools() -> None:
    if os.geteuid() != 0:
        _missing("root (buildah with chroot isolation)")
    for tool in ("buildah", "debootstrap", "unshare"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            _missing(tool)
    # chroot isolation mounts and makes namespaces: an unprivileged container (e.g. a GitHub
    # container job without --privileged) cannot.
    probe = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True)
    if probe.returncode != 0:
        _missing("mount and network namespaces (a VM or a privileged container)")


@pytest.fixture(scope="session")
def image_session(image_tools: None) -> Iterator[dict[str, str]]:
    """Names of this session's images; everything they left in the store is removed at the end.
    One image test session at a time on a machine: a second one waits here (up to 90 min) rather
    than building beside the first (both cores, GBs of disk) or pruning its layers."""
    kit.STORE_DIR.mkdir(parents=True, exist_ok=True)
    with (kit.STORE_DIR / "session.lock").open("w") as lock:
        deadline = time.monotonic() + 90 * 60
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail("another image test session held the machine for 90 min")
                time.sleep(5)
        tags = {
            "full": f"localhost/podfleet-test:full-{os.getpid()}",
            "slim": f"localhost/podfleet-test:slim-{os.getpid()}",
        }
        yield tags
        kit.remove_images(*tags.values())


@pytest.fixture(scope="session")
def base_image(image_tools: None) -> str:
    started = time.monotonic()
    proc = subprocess.run(kit.BASE, capture_output=True, text=True, timeout=1200)
    kit.TIMINGS_S["base image (cached unless base_image.sh changed)"] = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-LOG_TAIL_CHARS:]
    return proc.stdout.strip().splitlines()[-1]


def _build(tag: str, *, slim: bool) -> kit.Built:
    proc, seconds = kit.build(tag, slim=slim)
    name = "slim" if slim else "full"
    kit.TIMINGS_S[f"{name} image build"] = seconds
    if proc.returncode != 0:
        pytest.fail(f"the {name} image did not build:\n{proc.stdout[-LOG_TAIL_CHARS:]}")
    layers = kit.layers(tag)
    kit.SIZES[name] = {"total": sum(size for size, _ in layers), "layers": layers}
    dockerfile = "builder/slim.Dockerfile" if slim else "Dockerfile"
    return kit.Built(tag=tag, dockerfile=dockerfile, seconds=seconds, log=proc.stdout)


@pytest.fixture(scope="session")
def full_image(image_session: dict[str, str], base_image: str) -> kit.Built:
    return _build(image_session["full"], slim=False)


@pytest.fixture(scope="session")
def slim_image(image_session: dict[str, str], base_image: str) -> kit.Built:
    return _build(image_session["slim"], slim=True)


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each image test's own wall time (its session fixtures' builds are timed apart)."""
    started = time.monotonic()
    yield
    if request.node.get_closest_marker("image"):
        kit.TIMINGS_S[f"test {request.node.name}"] = time.monotonic() - started


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def pytest_terminal_summary(terminalreporter) -> None:
    if not kit.TIMINGS_S and not kit.SIZES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("image builds")
    for what, seconds in kit.TIMINGS_S.items():
        write(f"{what}: {seconds:.0f} s")
    for name, sizes in kit.SIZES.items():
        write(f"{name} image: {_mb(sizes['total'])} (uncompressed layers)")
        for size, step in sizes["layers"]:
            write(f"  {_mb(size):>12}  {step.replace('/bin/sh -c ', '')[:90]}")
