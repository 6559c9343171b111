"""examples/caller-app as a user runs it: its worker in the emulator, its Celery app in a real
worker, its FastAPI app in a real uvicorn; prompts in, PNGs out, one job per prompt."""

from __future__ import annotations

import base64
import os
import struct
import sys
import uuid

import httpx
import pytest
from podfleet.emulator import EmulatorConfig, run_emulator

from tests.integration.caller.stack import REPO_ROOT, Proc, free_port, wait_for

pytestmark = pytest.mark.emulator

EXAMPLE = REPO_ROOT / "examples" / "caller-app"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_example_app_generates_images_end_to_end(tmp_path, redis_url) -> None:
    config = EmulatorConfig(
        workers=2,
        worker_cmd=[sys.executable, "-u", "handler.py"],
        worker_cwd=EXAMPLE / "worker",
        worker_log_path=tmp_path / "workers.log",
        shutdown_grace_s=5,
    )
    queue = f"imagegen-{uuid.uuid4().hex[:8]}"
    port = free_port()
    procs: list[Proc] = []
    with run_emulator(config) as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOD_")}
        env.update(emu.client_env())
        env.update(
            REDIS_URL=redis_url,
            CELERY_QUEUE=queue,
            PUBLIC_URL=f"http://127.0.0.1:{port}/podfleet",
            PYTHONUNBUFFERED="1",
        )
        celery = [sys.executable, "-m", "celery", "-A", "imagegen_app.tasks", "worker"]
        celery += ["-Q", f"{queue}.high,{queue}", "-c", "2", "--without-gossip", "--without-mingle"]
        app = [sys.executable, "-m", "uvicorn", "imagegen_app.main:app", "--port", str(port)]
        try:
            procs.append(Proc("celery", celery, env, tmp_path / "celery.log", cwd=EXAMPLE))
            procs.append(Proc("app", app, env, tmp_path / "app.log", cwd=EXAMPLE))
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: httpx.get(f"{url}/docs", timeout=2).status_code == 200, 30, "app")
            conn = wait_for(
                lambda: httpx.get(f"{url}/podfleet/connection-test", timeout=15).json()["ok"],
                60,
                "connection test (celery worker up)",
                every_s=0.5,
            )
            assert conn is True

            one = httpx.post(f"{url}/generate", json={"prompt": "a lighthouse", "width": 24})
            assert one.status_code == 202, one.text
            prompts = ["a red fox", "a blue whale", "a green field"]
            batch = httpx.post(f"{url}/generate/batch", json={"prompts": prompts, "height": 16})
            assert batch.status_code == 202, batch.text
            bad = httpx.post(f"{url}/generate", json={"prompt": "", "width": 24})
            assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "prompt"

            key = one.json()["key"]
            done = wait_for(
                lambda: (v := httpx.get(f"{url}/images/{key}").json())["state"] == "final" and v,
                60,
                "the image",
                every_s=0.3,
            )
            assert done["status"] == "COMPLETED", done
            png = httpx.get(f"{url}/images/{key}.png")
            assert png.headers["content-type"] == "image/png"
            assert png_size(png.content) == (24, 64)
            assert png.content == base64.b64decode(done["output"]["image_png_base64"])

            bkey = batch.json()["key"]
            items = wait_for(
                lambda: (
                    (b := httpx.get(f"{url}/podfleet/batches/{bkey}").json())["states"]
                    == {"final": 3}
                    and b["jobs"]
                ),
                60,
                "the batch",
                every_s=0.3,
            )
            assert [v["output"]["prompt"] for v in items] == prompts
            assert all(png_size(base64.b64decode(v["output"]["image_png_base64"])) == (64, 16)
                       for v in items)  # fmt: skip
            assert len(emu.jobs()) == 4  # one job per prompt
            health = httpx.get(f"{url}/podfleet/health").json()
            assert health["ok"] and set(health["celery_queues"]) == {queue, f"{queue}.high"}
        finally:
            for proc in procs:
                proc.stop()
