"""Blocking wrappers over EndpointClient, for scripts and notebooks without an event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from podfleet.api.client import EndpointClient, UpdateCallback
from podfleet.api.errors import ApiError
from podfleet.api.models import Health, JobState, Policy, WorkersListing
from podfleet.settings import Settings

__all__ = ["SyncEndpointClient"]

T = TypeVar("T")


class SyncEndpointClient:
    """Same operations as EndpointClient, blocking; owns a private event loop. Close it."""

    def __init__(self, **kwargs: Any):
        self._runner = asyncio.Runner()
        self._client: EndpointClient = self._call(self._make(kwargs))

    @staticmethod
    async def _make(kwargs: dict[str, Any]) -> EndpointClient:
        return EndpointClient(**kwargs)  # built inside the loop that will use it

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SyncEndpointClient:
        self = cls.__new__(cls)
        self._runner = asyncio.Runner()

        async def make() -> EndpointClient:
            return EndpointClient.from_settings(settings, **overrides)

        self._client = self._call(make())
        return self

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def __repr__(self) -> str:
        return f"Sync{self._client!r}"

    def __enter__(self) -> SyncEndpointClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._call(self._client.aclose())
        self._runner.close()

    def run(
        self, payload: Any, *, policy: Policy | None = None, webhook: str | None = None
    ) -> JobState:
        return self._call(self._client.run(payload, policy=policy, webhook=webhook))

    def runsync(
        self, payload: Any, *, wait_s: float = 90.0, policy: Policy | None = None
    ) -> JobState:
        return self._call(self._client.runsync(payload, wait_s=wait_s, policy=policy))

    def status(self, job_id: str) -> JobState:
        return self._call(self._client.status(job_id))

    def wait(
        self,
        job_id: str,
        *,
        timeout_s: float | None = None,
        interval_s: float | None = None,
        on_update: UpdateCallback | None = None,
    ) -> JobState:
        return self._call(
            self._client.wait(
                job_id, timeout_s=timeout_s, interval_s=interval_s, on_update=on_update
            )
        )

    def stream(self, job_id: str, *, interval_s: float = 0.5) -> list[Any]:
        """All chunks of a generator job, once it is terminal."""

        async def collect() -> list[Any]:
            return [c async for c in self._client.stream(job_id, interval_s=interval_s)]

        return self._call(collect())

    def cancel(self, job_id: str) -> JobState:
        return self._call(self._client.cancel(job_id))

    def retry(self, job_id: str) -> JobState:
        return self._call(self._client.retry(job_id))

    def purge_queue(self) -> int:
        return self._call(self._client.purge_queue())

    def health(self) -> Health:
        return self._call(self._client.health())

    def workers(self) -> WorkersListing:
        return self._call(self._client.workers())

    def submit_many(
        self, payloads: Sequence[Any], *, concurrency: int = 32, policy: Policy | None = None
    ) -> list[JobState | ApiError]:
        return self._call(
            self._client.submit_many(payloads, concurrency=concurrency, policy=policy)
        )
