"""JSON Lines items from an http(s) URL, under the scraper's address rules.

Every request and every redirect hop is checked by the scraper's `AddressGuard` (loopback,
private, link-local, metadata ... refused unless SCRAPE_ALLOW_HOSTS lists the host and port),
which resolves each name once; the request then goes to the very address it checked (the URL is
rewritten to that address, with the `Host` header and TLS server name of the original), so no
second DNS answer can redirect it (no DNS rebinding). Redirects are followed by hand, at most
`MAX_REDIRECTS`. A chunk is read with `Range: bytes=offset-end`; a server that answers 200 (no
range support) is streamed and the bytes before the chunk skipped. No proxy from the environment
is used. Error messages show a URL without its credentials, query or fragment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any
from urllib.parse import unquote

import ada_url
import httpx
from podfleet.envelope import ChunkRef
from podfleet.pipeline.errors import InputError, JobFailure
from podfleet.pipeline.scrape.guard import AddressGuard, host_of, port_of
from podfleet.settings import Settings
from podfleet.sources import (
    BLOCK_BYTES,
    MAX_WHOLE_SOURCE_ROWS,
    ChunkCutter,
    LineSplitter,
    Row,
    RowCounter,
    check_sizes,
    jsonl_rows,
    no_items_error,
    too_many_error,
)

__all__ = ["MAX_REDIRECTS", "HttpSource", "plan_url", "read_url", "shown_url"]

FIELD = "items_from.jsonl"
MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_SCHEMES = frozenset({"http", "https"})


def shown_url(url: str) -> str:
    """`url` fit for an error message: scheme, host, port and path only (no user:password@,
    no query string, which may hold a signature, no fragment), bounded."""
    try:
        parsed = ada_url.URL(url)
    except (ValueError, TypeError):
        return "a URL that does not parse"
    text = f"{parsed.protocol}//{parsed.host}{parsed.pathname}"
    text = text if len(text) <= 200 else text[:197] + "..."
    return repr(text + ("?..." if parsed.search else ""))


def _refused(first: str, url: str, reason: str) -> InputError:
    why = reason.removeprefix("refused: ")
    hop = "" if url == first else f" redirected to {shown_url(url)}, which"
    return InputError(FIELD, f"invalid input: {FIELD}: {shown_url(first)}{hop} is refused: {why}")


class HttpSource:
    """One URL's reads: `async with HttpSource(url, settings) as src`, then `src.blocks()`.
    One guard per source: a name is resolved once for all of its requests."""

    def __init__(self, url: str, settings: Settings, guard: AddressGuard | None = None) -> None:
        self.url = url
        self.guard = guard or AddressGuard(settings.scrape_allow_hosts)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.api_timeout_s),
            follow_redirects=False,
            trust_env=False,  # no HTTP(S)_PROXY: the request must go to the checked address
        )
        self.ranged = 0  # chunks served by a 206
        self.skipped_bytes = 0  # bytes streamed past because the server ignored Range

    async def __aenter__(self) -> HttpSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def _auth(self, url: str) -> httpx.BasicAuth | None:
        """The URL's own user:password, sent only to its own origin (not after a redirect
        to another host)."""
        first, here = ada_url.URL(self.url), ada_url.URL(url)
        if not first.username or first.origin != here.origin:
            return None
        return httpx.BasicAuth(unquote(first.username), unquote(first.password))

    async def _send(self, url: str, addresses: tuple[str, ...], headers: dict[str, str]) -> Any:
        parsed = ada_url.URL(url)
        scheme, host, port = parsed.protocol.rstrip(":"), host_of(url), port_of(url)
        headers = {**headers, "Host": parsed.host, "Accept-Encoding": "identity"}
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        failure: Exception | None = None
        for address in addresses:
            literal = f"[{address}]" if ":" in address else address
            pinned = f"{scheme}://{literal}:{port}{parsed.pathname}{parsed.search}"
            request = self.client.build_request(
                "GET", pinned, headers=headers, extensions=extensions
            )
            try:
                return await self.client.send(request, stream=True, auth=self._auth(url))
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc
        raise JobFailure(f"{FIELD}: cannot connect to {shown_url(url)} ({type(failure).__name__})")

    async def open(self, headers: dict[str, str]) -> httpx.Response:
        """The response to GET (streamed), redirects followed and each hop checked."""
        url = self.url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                parsed = ada_url.URL(url)
            except (ValueError, TypeError):
                raise _refused(self.url, url, "not a valid URL") from None
            scheme = parsed.protocol.rstrip(":").lower()
            if scheme not in _SCHEMES or not parsed.hostname:
                raise _refused(self.url, url, "only http and https URLs with a host are read")
            verdict = await self.guard.check_host(host_of(url), port_of(url))
            if not verdict.allowed:
                raise _refused(self.url, url, verdict.reason)
            response = await self._send(url, verdict.addresses, headers)
            location = response.headers.get("location")
            if response.status_code in _REDIRECT_CODES and location:
                await response.aclose()
                try:
                    url = ada_url.join_url(url, location)
                except (ValueError, TypeError):
                    raise _refused(self.url, url, "it redirects to an invalid URL") from None
                continue
            if response.status_code in (200, 206):
                return response
            await response.aclose()
            code = response.status_code
            text = f"{FIELD}: {shown_url(self.url)} answered HTTP {code}"
            if code == 429 or code >= 500:
                raise JobFailure(text)  # may pass: the job can be retried
            raise InputError(FIELD, f"invalid input: {text}, expected 200 with the JSON Lines")
        raise InputError(
            FIELD, f"invalid input: {FIELD}: {shown_url(self.url)}: over {MAX_REDIRECTS} redirects"
        )

    async def blocks(
        self, offset: int = 0, length: int | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The body's bytes from `offset`, `length` of them (None: to the end)."""
        if length == 0:
            return
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        response = await self.open(headers)
        try:
            skip = offset
            if response.status_code == 206:
                ranged = response.headers.get("content-range", "").startswith(f"bytes {offset}-")
                encoded = response.headers.get("content-encoding", "identity") != "identity"
                if ranged and not encoded:
                    skip, self.ranged = 0, self.ranged + 1
                else:  # a range we did not ask for: read the whole body instead
                    await response.aclose()
                    response = await self.open({})
            left = length
            async for data in response.aiter_bytes(BLOCK_BYTES):
                if skip:
                    cut = min(skip, len(data))
                    skip, data, self.skipped_bytes = (
                        skip - cut,
                        data[cut:],
                        self.skipped_bytes + cut,
                    )
                if left is not None:
                    data, left = data[:left], left - min(left, len(data))
                if data:
                    yield data
                if left == 0:
                    return
        finally:
            await response.aclose()


@contextlib.asynccontextmanager
async def _bounded(url: str, settings: Settings) -> AsyncIterator[None]:
    """The whole read within NAVIGATION_TIMEOUT_S; transport errors as JobFailure (transient:
    the job may be retried), never echoing the URL's credentials."""
    try:
        async with asyncio.timeout(settings.navigation_timeout_s):
            yield
    except TimeoutError:
        raise JobFailure(
            f"{FIELD}: reading {shown_url(url)} took over {settings.navigation_timeout_s:g} s"
        ) from None
    except httpx.HTTPError as exc:
        raise JobFailure(
            f"{FIELD}: reading {shown_url(url)} failed ({type(exc).__name__})"
        ) from None


async def _lines(src: HttpSource, offset: int, length: int | None, skip: int, take: int) -> list:
    """Up to `take` lines after the first `skip` of the bytes at offset/length."""
    splitter, lines, seen = LineSplitter(), [], 0
    async with contextlib.aclosing(src.blocks(offset, length)) as blocks:
        async for block in blocks:
            for line in splitter.feed(block):
                if seen >= skip:
                    lines.append(line)
                seen += 1
            if len(lines) >= take:
                return lines[:take]
    if seen >= skip:
        lines.extend(splitter.finish())
    return lines[:take]


async def plan_url(
    url: str, settings: Settings, sizes_for: Callable[[int], list[int]]
) -> tuple[int, list[ChunkRef]]:
    async with _bounded(url, settings), HttpSource(url, settings) as src:
        counter = RowCounter()
        async with contextlib.aclosing(src.blocks()) as blocks:
            async for block in blocks:
                counter.feed(block)
        if counter.rows == 0:
            raise no_items_error()
        cutter = ChunkCutter(check_sizes(sizes_for(counter.rows), counter.rows))
        async with contextlib.aclosing(src.blocks()) as blocks:
            async for block in blocks:
                cutter.feed(block)
        return counter.rows, cutter.finish(FIELD)


async def read_url(url: str, ref: ChunkRef | None, settings: Settings) -> list[Row]:
    async with _bounded(url, settings), HttpSource(url, settings) as src:
        if ref is not None and ref.offset is not None and ref.length is not None:
            lines = await _lines(src, ref.offset, ref.length, 0, ref.size)
            return jsonl_rows(lines, ref.start, ref.size)
        if ref is not None:
            lines = await _lines(src, 0, None, ref.start, ref.size)
            return jsonl_rows(lines, ref.start, ref.size)
        lines = await _lines(src, 0, None, 0, MAX_WHOLE_SOURCE_ROWS + 1)
        if len(lines) > MAX_WHOLE_SOURCE_ROWS:
            raise too_many_error()
        if not lines:
            raise no_items_error()
        return jsonl_rows(lines, 0, None)
