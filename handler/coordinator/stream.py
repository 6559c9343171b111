"""Per-item results posted to RunPod's `/stream` while a coordinator runs.

The coordinator calls `add()` as items finish (completion order); a background task posts them
in order through the SDK's own stream channel (`rp_http.stream_result`, the POST a generator
handler makes, to `RUNPOD_WEBHOOK_POST_STREAM`). A caller reads them with `client.stream(job_id)`
or `podfleet stream JOB_ID`. Each post's output is `{"items": [entry, ...]}`, an entry being
`{"index": position, "id": item_id, "result": {...}}` or `{"index", "id", "error": {...}}`.

Limits (docs/coordinator.md): at most 500 entries and ~1 MB of JSON per post, at most ~4 posts
a second (RunPod publishes no stream-chunk limit; 1 MB keeps a chunk far below the 10 MB request
and result limits, and a reader's /stream reply small). An entry larger than 1 MB on its own is
sent without its result (`"omitted"` says why; the final /status output still has it).

The stream is best effort: a post the endpoint refuses is logged by the SDK and not retried
further, and `aclose()` gives up after `close_timeout_s`, so a dead stream endpoint never holds
the job. The final output is the authoritative result.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

from loguru import logger

__all__ = ["MAX_STREAM_CHUNK_BYTES", "MAX_STREAM_CHUNK_ENTRIES", "ResultStream"]

MAX_STREAM_CHUNK_ENTRIES = 500
MAX_STREAM_CHUNK_BYTES = 1_000_000
_ENVELOPE_BYTES = len('{"output": {"items": []}}') + 64  # and a margin
_OWNER_CHECK_S = 5.0
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def _stream_channel() -> tuple[Any, Any] | None:
    """(rp_http module, AsyncClientSession factory), or None when there is no stream channel."""
    from podfleet.sdk_import import import_sdk

    try:
        import_sdk()
        from runpod.http_client import AsyncClientSession
        from runpod.serverless.modules import rp_http
    except ImportError as exc:
        _warn_once("sdk", f"result stream disabled: the RunPod SDK cannot be imported ({exc})")
        return None
    if not callable(getattr(rp_http, "stream_result", None)):
        _warn_once("api", "result stream disabled: runpod's rp_http has no stream_result")
        return None
    url = str(getattr(rp_http, "JOB_STREAM_URL_TEMPLATE", ""))
    if not url.startswith(("http://", "https://")):
        # not in the SDK's job loop (local --test_input run, tests): nowhere to post
        logger.debug("result stream disabled: RUNPOD_WEBHOOK_POST_STREAM is not set")
        return None
    return rp_http, AsyncClientSession


def _encoded(entry: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(entry, its size in the post): sized as the SDK serializes it (json.dumps defaults, ", "
    between list items). An entry the SDK could not serialize (a datetime, a set) is turned into
    plain JSON here, so it cannot sink the whole post."""
    try:
        text = json.dumps(entry, ensure_ascii=False)
    except (TypeError, ValueError):
        text = json.dumps(entry, ensure_ascii=False, default=str)
        entry = json.loads(text)
    return entry, len(text.encode()) + 2


def _omitted(entry: dict[str, Any], size: int, limit: int) -> dict[str, Any]:
    return {
        "index": entry.get("index"),
        "id": entry.get("id"),
        "omitted": f"entry of {size} bytes exceeds the {limit} bytes stream "
        "chunk limit; read it from the job's final output",
    }


class ResultStream:
    """Batches entries and posts them in order; `add()` never blocks, `aclose()` flushes.

    Use from the event loop that runs the job (add() starts the posting task on first use).
    """

    def __init__(
        self,
        job: dict[str, Any],
        *,
        enabled: bool,
        max_entries: int = MAX_STREAM_CHUNK_ENTRIES,
        max_bytes: int = MAX_STREAM_CHUNK_BYTES,
        min_interval_s: float = 0.25,
        close_timeout_s: float = 10.0,
    ) -> None:
        self._job = {"id": str(job.get("id", ""))}
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._min_interval_s = min_interval_s
        self._close_timeout_s = close_timeout_s
        self._pending: deque[tuple[dict[str, Any], int]] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._owner: asyncio.Task[Any] | None = None  # the job's task (ended: stop posting)
        self._channel = _stream_channel() if enabled and self._job["id"] else None
        self.enabled = self._channel is not None
        self.posted_entries = 0
        self.posts = 0

    def add(self, entries: list[dict[str, Any]]) -> None:
        """Queue entries for the stream (in the order given)."""
        if not self.enabled or self._closing or not entries:
            return
        if self._task is not None and self._task.done():  # the poster died: stop queueing
            self.enabled = False
            self._pending.clear()
            _warn_once("dead", "result stream stopped: its posting task ended")
            return
        for raw in entries:
            entry, size = _encoded(raw)
            if size + _ENVELOPE_BYTES > self._max_bytes:
                entry, size = _encoded(_omitted(entry, size, self._max_bytes))
            self._pending.append((entry, size))
        if self._task is None:
            self._owner = asyncio.current_task()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"result stream {self._job['id']}"
            )
        self._wake.set()

    def _next_batch(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        total = _ENVELOPE_BYTES
        while self._pending and len(batch) < self._max_entries:
            entry, size = self._pending[0]
            if batch and total + size > self._max_bytes:
                break
            self._pending.popleft()
            batch.append(entry)
            total += size
        return batch

    async def _run(self) -> None:
        assert self._channel is not None
        rp_http, session_factory = self._channel
        last_post = float("-inf")
        async with session_factory() as session:
            while True:
                if not self._pending:
                    if self._closing or (self._owner is not None and self._owner.done()):
                        return  # closed, or the job ended without aclose() (it was cancelled)
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), _OWNER_CHECK_S)
                    continue
                wait_s = last_post + self._min_interval_s - time.monotonic()
                if wait_s > 0 and not self._closing:
                    await asyncio.sleep(wait_s)  # let more entries gather into this post
                batch = self._next_batch()
                last_post = time.monotonic()
                try:
                    await rp_http.stream_result(session, {"output": {"items": batch}}, self._job)
                except Exception as exc:  # the SDK logs HTTP errors itself; anything else here
                    _warn_once("post", f"result stream post failed: {type(exc).__name__}: {exc}")
                self.posts += 1
                self.posted_entries += len(batch)

    async def aclose(self) -> None:
        """Post everything queued, in order, then close the session (bounded in time)."""
        self._closing = True
        task = self._task
        if task is None:
            return
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), self._close_timeout_s)
        except TimeoutError:
            left = len(self._pending)
            logger.warning(
                "result stream: gave up after {}s with {} entries not posted",
                self._close_timeout_s,
                left,
            )
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except Exception as exc:
            logger.warning("result stream stopped: {}: {}", type(exc).__name__, exc)
        finally:
            self._pending.clear()
