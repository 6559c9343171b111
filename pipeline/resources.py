"""Process-wide warm resources (a browser, a model, a database engine).

Created lazily on first use, kept for later jobs in the same worker process, closed at exit.
A stage that finds its resource broken calls `discard(name)` so the next use builds a new one.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Any, TypeVar

from loguru import logger

__all__ = ["Resource", "WarmResources", "resource_set"]

T = TypeVar("T")


class Resource(StrEnum):
    """A warm resource a pipeline declares it needs (`Pipeline.resources`).

    A worker prepares at start-up (fitness check) only what its registered pipelines declare.
    """

    BROWSER = "browser"  # a Chromium for Playwright
    MODEL = "model"  # the embedding model (torch)
    DATABASE = "database"  # a SQLAlchemy engine on DATABASE_URL


def resource_set(values: Iterable[Resource | str]) -> frozenset[Resource]:
    """Normalise `{"model", Resource.BROWSER}` to a frozenset of `Resource`; unknown names fail."""
    if isinstance(values, str):  # a bare "model" would otherwise iterate over its letters
        values = (values,)
    out: set[Resource] = set()
    for value in values:
        try:
            out.add(Resource(value))
        except ValueError:
            known = ", ".join(r.value for r in Resource)
            raise ValueError(f"unknown resource {value!r}; expected one of: {known}") from None
    return frozenset(out)


class WarmResources:
    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._closers: dict[str, Callable[[Any], Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.created: dict[str, int] = {}  # name -> how many times built (for tests and stats)
        self.refresh_requested = False  # set when a resource is beyond repair

    def peek(self, name: str) -> Any | None:
        return self._items.get(name)

    async def get(
        self,
        name: str,
        factory: Callable[[], Awaitable[T] | T],
        close: Callable[[T], Any] | None = None,
    ) -> T:
        """Return the resource `name`, building it with `factory` the first time."""
        if name in self._items:
            return self._items[name]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name not in self._items:
                value = factory()
                if inspect.isawaitable(value):
                    value = await value
                self._items[name] = value
                self.created[name] = self.created.get(name, 0) + 1
                if close is not None:
                    self._closers[name] = close
                logger.debug("warm resource {} created", name)
        return self._items[name]

    async def discard(self, name: str) -> None:
        value = self._items.pop(name, None)
        closer = self._closers.pop(name, None)
        if value is not None and closer is not None:
            try:
                result = closer(value)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:  # closing a broken resource may fail too
                logger.debug("closing {} failed: {}", name, exc)

    async def close_all(self) -> None:
        for name in list(self._items):
            await self.discard(name)
