"""A small forward proxy on loopback that every browser request goes through.

Why: Playwright's route handlers never see redirect hops (microsoft/playwright#3993, #2617), so a
redirect to a private or metadata address cannot be stopped there. The browser context is pointed
at this proxy instead; it checks the host of every request — first request, each redirect hop,
sub-resources, WebSockets — with the `AddressGuard`, then connects to the very addresses it
checked (no second DNS lookup, so no DNS rebinding between check and connect).

Plain HTTP requests are forwarded one per connection (`Connection: close`); HTTPS and WebSocket
traffic arrives as `CONNECT host:port` and is tunnelled after the check. A refused plain-HTTP
request gets a 403 carrying `X-Podfleet-Refused`; a refused CONNECT gets a 403 (the browser
reports a tunnel failure). Either way the reason is in `guard.refused`.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

from loguru import logger
from podfleet.pipeline.scrape.guard import AddressGuard

__all__ = ["REFUSED_HEADER", "EgressProxy"]

REFUSED_HEADER = "x-podfleet-refused"
_MAX_HEADER_BYTES = 64 * 1024
_CHUNK = 64 * 1024
_HOP_HEADERS = {b"proxy-connection", b"connection", b"keep-alive", b"proxy-authorization"}


class EgressProxy:
    """One per `fetch_pages` call: `await start()`, use `server_url`, `await close()`."""

    def __init__(self, guard: AddressGuard, connect_timeout_s: float = 30.0) -> None:
        self.guard = guard
        self.connect_timeout_s = connect_timeout_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # the proxy is closing; end this connection quietly
        except Exception as exc:
            logger.debug("egress proxy: {}: {}", type(exc).__name__, exc)
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEADER_BYTES:
            return
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.decode("latin-1").split(" ")
        if len(parts) != 3:
            return
        method, target, version = parts
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            host, port = host.strip("[]"), int(port_text or 443)
            verdict = await self.guard.check_host(host, port)
            if not verdict.allowed:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            upstream = await self._connect(verdict.addresses, port)
            if upstream is None:
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            up_reader, up_writer = upstream
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await writer.drain()
            await self._tunnel(reader, writer, up_reader, up_writer)
            return

        url = urlsplit(target)
        if url.scheme != "http" or not url.hostname:
            await self._refuse(writer, f"refused: {target[:200]} is not an http URL")
            return
        verdict = await self.guard.check_host(url.hostname, url.port)
        if not verdict.allowed:
            await self._refuse(writer, verdict.reason)
            return
        upstream = await self._connect(verdict.addresses, url.port or 80)
        if upstream is None:
            writer.write(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            return
        up_reader, up_writer = upstream
        path = url.path or "/"
        if url.query:
            path += "?" + url.query
        lines = [f"{method} {path} {version}".encode("latin-1")]
        for line in rest.split(b"\r\n"):
            name = line.split(b":", 1)[0].strip().lower()
            if line and name not in _HOP_HEADERS:
                lines.append(line)
        lines.append(b"Connection: close")
        up_writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await up_writer.drain()
        await self._tunnel(reader, writer, up_reader, up_writer)

    async def _refuse(self, writer: asyncio.StreamWriter, reason: str) -> None:
        body = reason.encode("utf-8", "replace")
        writer.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + f"{REFUSED_HEADER}: 1\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        await writer.drain()

    async def _connect(
        self, addresses: tuple[str, ...], port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for address in addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(address, port), self.connect_timeout_s
                )
            except (OSError, TimeoutError):
                continue
        return None

    async def _tunnel(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """Pump both ways; done as soon as either side closes."""

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(_CHUNK):
                    dst.write(data)
                    await dst.drain()

        pumps = [
            asyncio.create_task(pump(reader, up_writer)),
            asyncio.create_task(pump(up_reader, writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            up_writer.close()
