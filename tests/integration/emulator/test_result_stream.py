"""ResultStream end to end: a real SDK worker posts per-item entries while its (non-generator)
job runs; a caller reads them through /stream (EndpointClient.stream, `podfleet stream`)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from podfleet.api import EndpointClient
from podfleet.coordinator.stream import MAX_STREAM_CHUNK_ENTRIES, ResultStream
from podfleet.emulator import Emulator, run_emulator

from tests.integration.emulator.helpers import API_KEY, REPO_ROOT, client_for, config

WORKER = REPO_ROOT / "tests" / "integration" / "emulator" / "stream_worker.py"


@pytest.fixture(scope="module")
def emu(tmp_path_factory) -> Iterator[Emulator]:
    tmp = tmp_path_factory.mktemp("emu-result-stream")
    with run_emulator(config(tmp, workers=1, cmd=[sys.executable, "-u", str(WORKER)])) as emu:
        emu.wait_ready(60)
        yield emu


def _client(emu: Emulator) -> EndpointClient:
    return EndpointClient(
        endpoint_id=emu.endpoint_id, base_url=emu.base_url, api_key=API_KEY, wait_timeout_s=60
    )


async def _read(emu: Emulator, spec: dict) -> tuple[str, list[dict], list[str], dict]:
    """Submit; read the stream; note the job's status when each chunk arrived."""
    async with _client(emu) as client:
        job_id = (await client.run(spec)).id
        chunks, statuses = [], []
        async for chunk in client.stream(job_id, timeout_s=60):
            chunks.append(chunk)
            statuses.append(str((await client.status(job_id)).status))
        final = await client.status(job_id)
    assert str(final.status) == "COMPLETED", final
    return job_id, chunks, statuses, final.output


def test_entries_arrive_in_order_while_the_job_runs(emu: Emulator) -> None:
    spec = {"n": 12, "delay_s": 0.25, "burst": 1200, "errors_every": 5, "big": True}
    job_id, chunks, statuses, output = asyncio.run(_read(emu, spec))
    assert output == {"streamed": 1213, "enabled": True, "posts": output["posts"]}
    assert all(isinstance(c, dict) and isinstance(c.get("items"), list) for c in chunks)
    entries = [e for c in chunks for e in c["items"]]
    assert [e["index"] for e in entries] == list(range(1213)), "lost, duplicated or reordered"
    # the first entries were read while the job was still running (not only at the end)
    assert statuses[0] == "IN_PROGRESS", statuses
    # batching: no post over 500 entries; the 1,200-entry burst took at least three posts
    assert max(len(c["items"]) for c in chunks) <= MAX_STREAM_CHUNK_ENTRIES
    assert output["posts"] >= 3 + 1 and len(chunks) == output["posts"]
    errors = [e for e in entries if "error" in e]
    assert errors and all(e["error"]["stage"] == "transform" for e in errors)
    assert all(e["index"] % 5 == 4 for e in errors)
    assert entries[4] == {
        "index": 4,
        "id": "item-4",
        "error": {"stage": "transform", "message": "item 4 refused", "retryable": False},
    }
    assert entries[3] == {"index": 3, "id": "item-3", "result": {"value": 9}}
    big = entries[-1]
    assert big["id"] == "big" and "result" not in big and "1000000 bytes" in big["omitted"]
    # nothing refused by the emulator's stream chunk limit (ResultStream stays under 1 MB)
    assert not [p for p in emu.job(job_id)["ignored_posts"] if "too large" in p["reason"]]
    stats = emu.request_stats()
    assert stats["job-stream"]["total"] >= output["posts"]


def test_podfleet_stream_prints_one_line_per_item(emu: Emulator) -> None:
    async def submit() -> str:
        async with _client(emu) as client:
            return (await client.run({"n": 6, "delay_s": 0.3, "errors_every": 3})).id

    job_id = asyncio.run(submit())
    env = {**os.environ, **emu.client_env(), "RUNPOD_API_KEY": API_KEY}
    out = subprocess.run(
        [sys.executable, "-m", "podfleet.cli", "stream", job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "0\titem-0\tok"
    assert lines[2] == "2\titem-2\terror\ttransform: item 2 refused"
    assert [line.split("\t")[0] for line in lines] == [str(i) for i in range(6)]
    assert "6 items streamed, 2 with errors" in out.stderr
    again = subprocess.run(
        [sys.executable, "-m", "podfleet.cli", "stream", job_id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    # the job is final and its chunks were read: the stream ends at once, with no items
    assert again.returncode == 0 and again.stdout == "", again.stderr


def test_disabled_stream_is_a_no_op_and_a_dead_endpoint_cannot_hold_the_job() -> None:
    async def disabled() -> None:
        stream = ResultStream({"id": "job-1"}, enabled=False)
        stream.add([{"index": 0, "id": "a", "result": {}}])
        await stream.aclose()
        assert not stream.enabled and stream.posts == 0

    asyncio.run(disabled())

    # a stream endpoint that accepts connections and never answers
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/v2/ep/job-stream/w/$ID?gpu=x"
    from podfleet.sdk_import import import_sdk

    import_sdk()
    from runpod.serverless.modules import rp_http

    saved = rp_http.JOB_STREAM_URL_TEMPLATE, rp_http.JOB_STREAM_URL

    async def dead() -> float:
        stream = ResultStream({"id": "job-2"}, enabled=True, close_timeout_s=1.0)
        assert stream.enabled
        stream.add([{"index": i, "id": str(i), "result": {}} for i in range(10)])
        t0 = time.monotonic()
        await stream.aclose()
        return time.monotonic() - t0

    try:
        rp_http.JOB_STREAM_URL_TEMPLATE = rp_http.JOB_STREAM_URL = url
        took_s = asyncio.run(dead())
    finally:
        rp_http.JOB_STREAM_URL_TEMPLATE, rp_http.JOB_STREAM_URL = saved
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()
    assert held, "the stream never tried to post"
    assert took_s < 30, f"aclose took {took_s:.1f}s with a 1 s bound"


def test_podfleet_stream_ends_on_a_cancelled_job(emu: Emulator) -> None:
    """The SDK's own stream readers never end on CANCELLED; ours does, with exit 1."""
    with client_for(emu) as c:
        job_id = c.post("/run", json={"input": {"n": 200, "delay_s": 0.5}}).json()["id"]
        emu.wait_job(job_id, lambda j: bool(j and len(j["stream"]) >= 2), 60)
        assert c.post(f"/cancel/{job_id}").json()["status"] == "CANCELLED"
    env = {**os.environ, **emu.client_env(), "RUNPOD_API_KEY": API_KEY}
    out = subprocess.run(
        [sys.executable, "-m", "podfleet.cli", "stream", job_id, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert out.returncode == 1, out.stderr
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(entries) >= 2 and [e["index"] for e in entries] == list(range(len(entries)))
    assert f"job {job_id} CANCELLED" in out.stderr
    emu.wait_idle(60)


def test_a_job_cancelled_without_aclose_does_not_leave_the_poster_running(monkeypatch) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from podfleet.coordinator import stream as stream_module
    from podfleet.sdk_import import import_sdk

    bodies: list[dict] = []

    class Accept(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    import_sdk()
    from runpod.serverless.modules import rp_http

    url = f"http://127.0.0.1:{server.server_address[1]}/v2/ep/job-stream/w/$ID?gpu=x"
    monkeypatch.setattr(rp_http, "JOB_STREAM_URL_TEMPLATE", url)
    monkeypatch.setattr(rp_http, "JOB_STREAM_URL", url)
    monkeypatch.setattr(stream_module, "_OWNER_CHECK_S", 0.2)

    async def scenario() -> ResultStream:
        made: list[ResultStream] = []

        async def job() -> None:
            stream = ResultStream({"id": "job-3"}, enabled=True)
            made.append(stream)
            stream.add([{"index": 0, "id": "a", "result": {"v": 1}}])
            await asyncio.sleep(3600)  # cancelled here: no aclose()

        task = asyncio.create_task(job())
        while not bodies:
            await asyncio.sleep(0.05)
        task.cancel()
        poster = made[0]._task
        assert poster is not None
        await asyncio.wait_for(poster, 10)
        return made[0]

    try:
        stream = asyncio.run(scenario())
    finally:
        server.shutdown()
        server.server_close()
    assert stream.posts == 1
    assert bodies == [{"output": {"items": [{"index": 0, "id": "a", "result": {"v": 1}}]}}]
