"""The images, built for real (buildah, no Docker engine) from the repository's unchanged
Dockerfiles over a stand-in base image, then run: the full image's CMD on test_input.json with no
network, an emulator worker whose process runs inside the image, the slim image as a coordinator
endpoint and as the CLI, and a build context without a file the image needs, which must fail.
Heavy (minutes): marked `image`; each image is built once per session (conftest.py)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import httpx
import image_kit as kit
import pytest

pytestmark = pytest.mark.image

OK_RESULT = "Job result: {'output': "


def test_full_image_builds_from_the_unchanged_dockerfile(
    full_image: kit.Built, base_image: str
) -> None:
    log = full_image.log
    # The Dockerfile's own steps ran in the build: system packages, pins, bake, smoke test.
    assert "setup.sh: ready (Python 3.11" in log
    assert "baked all-MiniLM-L6-v2" in log
    assert "smoke_test.sh: ok (test_input.json ran through python -u handler.py)" in log
    config = kit.inspect(full_image.tag)["OCIv1"]["config"]
    assert config["Cmd"] == ["python", "-u", "handler.py"]
    assert config["WorkingDir"] == "/app"
    assert "CHROMIUM_PATH=/usr/bin/chromium" in config["Env"]
    # Built from the repository's own Dockerfile, unchanged: the steps the build echoed are its
    # instructions, one for one, in order.
    steps = [
        kit.normalized(line.split(": ", 1)[1])
        for line in log.splitlines()
        if line.startswith("STEP ")
    ]
    assert steps == kit.dockerfile_instructions(kit.REPO_ROOT / "Dockerfile")
    # One layer per file-changing step (COPY, RUN) above the base's.
    changing = sum(1 for step in steps if step.startswith(("COPY", "RUN")))
    assert len(kit.layers(full_image.tag)) == changing + len(kit.layers(base_image))


def test_image_holds_the_context_minus_dockerignore(full_image: kit.Built) -> None:
    proc = kit.run(
        full_image.tag,
        "sh",
        "-c",
        "ls -A /app; ls /app/builder; test ! -e /app/tests && test ! -e /app/.git "
        "&& test ! -e /app/docs && test ! -e /app/.env && sha256sum /app/handler.py",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    listing = proc.stdout.split()
    for needed in ("handler.py", "handler", "pipeline", "builder", "pyproject.toml", "README.md"):
        assert needed in listing
    assert "test_input.json" in listing
    digest = hashlib.sha256((kit.REPO_ROOT / "handler.py").read_bytes()).hexdigest()
    assert digest in proc.stdout


def test_cmd_runs_test_input_offline(full_image: kit.Built) -> None:
    """The image's CMD, as RunPod's local test mode runs it: ./test_input.json, no network."""
    proc = kit.run(full_image.tag, network="none", timeout_s=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    result = kit.job_result(proc.stdout)
    assert OK_RESULT in result and "'ok': True" in result, proc.stdout[-3000:]
    assert "'succeeded': 3" in result  # the three flashpoints of test_input.json
    # ...and the container really had no network: only a loopback interface.
    probe = kit.run(
        full_image.tag,
        "python",
        "-c",
        "import socket; print(sorted(n for _, n in socket.if_nameindex()))",
        network="none",
    )
    assert probe.returncode == 0, probe.stdout
    assert probe.stdout.strip().splitlines()[-1] == "['lo']"


def test_emulator_worker_runs_inside_the_image(full_image: kit.Built, tmp_path: Path) -> None:
    """One emulator worker whose process is the image's CMD inside the image takes a job from the
    emulator on the host. Its database is a file under /data, a directory only the container
    has (bound from tmp_path): the rows arriving there show where the job ran."""
    from podfleet.emulator import EmulatorConfig, run_emulator

    data = tmp_path / "data"
    data.mkdir()
    job = json.loads((kit.REPO_ROOT / "test_input.json").read_text())
    job["input"]["mode"] = "worker"
    config = EmulatorConfig(
        workers=1,
        worker_cmd=kit.worker_cmd(full_image.tag, f"{data}:/data"),
        worker_env={
            "DATABASE_URL": "sqlite:////data/podfleet.db",
            "PODFLEET_IMAGE_ENV": "DATABASE_URL",
        },
        worker_log_path=tmp_path / "workers.log",
    )
    with run_emulator(config) as emu:
        emu.wait_ready(300)
        job_id = httpx.post(f"{emu.url}/run", json=job, timeout=30).json()["id"]
        info = emu.wait_job(job_id, timeout_s=300)
    log = (tmp_path / "workers.log").read_text(errors="replace")
    assert info["status"] == "COMPLETED", (info, log[-3000:])
    output = info["output"]
    assert output["ok"] is True and output["succeeded"] == 3, output
    assert [r["id"] for r in output["results"]] == [i["id"] for i in job["input"]["items"]]
    with sqlite3.connect(data / "podfleet.db") as db:
        documents = db.execute("select count(*) from documents").fetchone()[0]
    assert documents >= 7, documents  # test_input.json's sources, written from inside


def test_slim_image_builds_and_holds_no_torch_or_chromium(
    slim_image: kit.Built, full_image: kit.Built
) -> None:
    assert "smoke_test.sh: ok (builder/image/slim_test_input.json" in slim_image.log
    steps = [
        kit.normalized(line.split(": ", 1)[1])
        for line in slim_image.log.splitlines()
        if line.startswith("STEP ")
    ]
    assert steps == kit.dockerfile_instructions(kit.REPO_ROOT / "builder" / "slim.Dockerfile")
    proc = kit.run(
        slim_image.tag,
        "python",
        "-c",
        "import importlib.util as u, shutil; import podfleet, podfleet.integrations, runpod;"
        "print([m for m in ('torch', 'playwright', 'sentence_transformers', 'fastapi', 'celery',"
        " 'sqlalchemy') if u.find_spec(m)], shutil.which('chromium'))",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "['fastapi', 'celery', 'sqlalchemy'] None"
    full, slim = kit.SIZES["full"]["total"], kit.SIZES["slim"]["total"]
    assert slim < full / 3, (slim, full)


def test_slim_image_coordinates_and_runs_the_cli(slim_image: kit.Built, tmp_path: Path) -> None:
    """A coordinator endpoint on the slim image: a coordinator job whose chunks run as sibling
    jobs on the same endpoint's workers (all in the slim image); then the CLI, inside the image,
    against the same emulator: `podfleet health` and `podfleet submit --wait`."""
    from podfleet.emulator import EmulatorConfig, run_emulator

    items = [{"id": f"c{n}", "duration_s": 1.0} for n in range(6)]
    job = {"input": {"mode": "coordinator", "pipeline": "synthetic", "workers": 2, "items": items}}
    config = EmulatorConfig(
        workers=2,
        worker_cmd=kit.worker_cmd(slim_image.tag),
        worker_log_path=tmp_path / "workers.log",
    )
    with run_emulator(config) as emu:
        emu.wait_ready(300, polling=True)
        job_id = httpx.post(f"{emu.url}/run", json=job, timeout=30).json()["id"]
        info = emu.wait_job(job_id, timeout_s=300)
        log = (tmp_path / "workers.log").read_text(errors="replace")
        assert info["status"] == "COMPLETED", (info, log[-3000:])
        output = info["output"]
        assert output["ok"] is True and output["mode"] == "coordinator", output
        assert [r["id"] for r in output["results"]] == [i["id"] for i in items]
        assert output["fanout"]["siblings_submitted"] >= 1, output["fanout"]
        # Siblings ran on the slim workers; one still queued when the coordinator's own runner
        # was free is taken back (cancelled) and run by the coordinator instead.
        siblings = [j for j in emu.jobs() if j["id"] != job_id]
        statuses = [j["status"] for j in siblings]
        assert "COMPLETED" in statuses, siblings
        assert set(statuses) <= {"COMPLETED", "CANCELLED"}, siblings

        client_env = emu.client_env()
        health = kit.run(
            slim_image.tag, "podfleet", "health", "--json", network="host", env=client_env
        )
        assert health.returncode == 0, health.stdout[-3000:]
        counts = json.loads(health.stdout[health.stdout.index("{") :])
        assert counts["jobs"]["completed"] >= 1 + statuses.count("COMPLETED"), counts
        submit = kit.run(
            slim_image.tag,
            "podfleet",
            "submit",
            "builder/image/slim_test_input.json",
            "--wait",
            network="host",
            env=client_env,
        )
        assert submit.returncode == 0, submit.stdout[-3000:]
        assert "slim-a" in submit.stdout and "slim-b" in submit.stdout, submit.stdout[-3000:]


@pytest.mark.parametrize(
    ("missing", "failure"),
    [
        ("builder/bake_model.py", "bake_model.py"),  # a COPY source: the build stops there
        ("handler/envelope.py", "smoke_test.sh: FAILED"),  # code the CMD imports: the smoke test
    ],
)
def test_build_fails_when_the_context_lacks_a_needed_file(
    full_image: kit.Built, tmp_path: Path, missing: str, failure: str
) -> None:
    context = tmp_path / "context"
    kit.stage_context(context, missing)
    tag = f"{full_image.tag}-broken"
    try:
        proc, seconds = kit.build(tag, context=context)
        kit.TIMINGS_S[f"build without {missing} (fails)"] = seconds
        assert proc.returncode != 0, proc.stdout[-3000:]
        assert failure in proc.stdout, proc.stdout[-3000:]
        assert kit.buildah("inspect", "--type", "image", tag, check=False).returncode != 0
    finally:
        kit.buildah("rmi", tag, check=False)


def test_run_sh_returns_the_command_status(full_image: kit.Built) -> None:
    proc = kit.run(full_image.tag, "sh", "-c", "echo in-image; exit 7")
    assert proc.returncode == 7
    assert "in-image" in proc.stdout
