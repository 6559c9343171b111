"""A small forward proxy on loopback that every browser request goes through.

Why: Playwright's route handlers never see redirect hops (microsoft/playwright#3993, #2617), so a
redirect to a private or metadata address cannot be stopped there. The browser context is pointed
at this proxy instead; it checks the host and port of every request — first request, each
redirect hop, sub-resources, workers' requests, WebSockets and WebRTC's TURN-over-TCP (`CONNECT`)
— with the `AddressGuard`, then connects to the very addresses it checked (no second DNS lookup,
so no DNS rebinding between check and connect).

Plain HTTP is proxied with keep-alive on both sides: the browser's connection to the proxy carries
request after request (each one checked), and upstream connections are pooled per checked
(host, port) and reused when the server keeps them open. Bodies are relayed by their framing
(Content-Length, chunked, or until close). HTTPS and WebSocket traffic arrives as
`CONNECT host:port` and is tunnelled after the check. A refused plain-HTTP request gets a 403
carrying `X-Podfleet-Refused`; a refused CONNECT gets a 403 (the browser reports a tunnel
failure). Either way the reason is in `guard.refused`.
"""

from __future__ import annotations

import asyncio
import contextlib

from loguru import logger
from podfleet.pipeline.scrape.guard import AddressGuard, host_of, port_of, scheme_of
from podfleet.pipeline.scrape.http1 import Closed, Head, read_head, relay_body

__all__ = ["REFUSED_HEADER", "EgressProxy"]

REFUSED_HEADER = "x-podfleet-refused"
_MAX_HEADER_BYTES = 64 * 1024
_CHUNK = 256 * 1024
_MAX_IDLE_PER_KEY = 8
_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class EgressProxy:
    """One per `fetch_pages` call: `await start()`, use `server_url`, `await close()`."""

    def __init__(self, guard: AddressGuard, connect_timeout_s: float = 30.0) -> None:
        self.guard = guard
        self.connect_timeout_s = connect_timeout_s
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self.port = 0
        self.stats = {"requests": 0, "upstream_connects": 0, "tunnels": 0, "refused": 0}

    @property
    def server_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, "127.0.0.1", 0, backlog=256, limit=_MAX_HEADER_BYTES
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conns in self._idle.values():
            for _reader, writer in conns:
                writer.close()
        self._idle.clear()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while await self._handle(reader, writer):
                pass
        except (ConnectionError, Closed, asyncio.IncompleteReadError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # the proxy is closing; end this connection quietly
        except Exception as exc:
            logger.debug("egress proxy: {}: {}", type(exc).__name__, exc)
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request from the browser; True when its connection can carry another."""
        head = await read_head(reader)
        if head is None:
            return False
        parts = head.first.decode("latin-1").split(" ")
        if len(parts) != 3:
            return False
        method, target, version = parts
        self.stats["requests"] += 1
        if method == "CONNECT":
            await self._connect_tunnel(target, reader, writer)
            return False
        if scheme_of(target) != "http" or not host_of(target):
            await self._refuse(writer, f"refused: {target[:200]} is not an http URL")
            return False
        host, port = host_of(target), port_of(target)
        verdict = await self.guard.check_host(host, port)
        if not verdict.allowed:
            await self._refuse(writer, verdict.reason)
            return False
        return await self._forward(head, method, target, version, reader, writer, verdict, port)

    async def _connect_tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        host, _, port_text = target.rpartition(":")
        if not port_text.isdigit() or not host:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        port = int(port_text)
        verdict = await self.guard.check_host(host, port)
        if not verdict.allowed:
            self.stats["refused"] += 1
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        upstream = await self._open(verdict.addresses, port)
        if upstream is None:
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        self.stats["tunnels"] += 1
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        await self._tunnel(reader, writer, *upstream)

    async def _forward(
        self,
        head: Head,
        method: str,
        target: str,
        version: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        verdict,
        port: int,
    ) -> bool:
        key = (host_of(target), port)
        path = target.split("://", 1)[1]
        slash = path.find("/")
        path = path[slash:] if slash >= 0 else "/"
        path = path.split("#", 1)[0] or "/"
        request_head = f"{method} {path} HTTP/1.1\r\n".encode("latin-1") + head.forwarded(
            b"Connection: keep-alive"
        )
        client_keep = version == "HTTP/1.1" and b"close" not in (
            head.tokens(b"connection") | head.tokens(b"proxy-connection")
        )
        has_body = b"content-length" in head.headers or b"transfer-encoding" in head.headers
        for attempt in range(2):
            conn, reused = self._take(key), True
            if conn is None:
                conn, reused = await self._open(verdict.addresses, port), False
            if conn is None:
                writer.write(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
                return False
            up_reader, up_writer = conn
            try:
                up_writer.write(request_head)
                if has_body:
                    await relay_body(head, reader, up_writer, request=True)
                await up_writer.drain()
                response = await read_head(up_reader)
                if response is None:
                    raise Closed
            except (ConnectionError, Closed, OSError):
                up_writer.close()
                if reused and not has_body and attempt == 0:
                    continue  # a pooled connection the server had closed: once more, fresh
                raise
            break
        assert response is not None and conn is not None  # the loop breaks only with both
        return await self._respond(response, method, key, conn, writer, client_keep)

    async def _respond(
        self,
        response: Head,
        method: str,
        key: tuple[str, int],
        conn: _Conn,
        writer: asyncio.StreamWriter,
        client_keep: bool,
    ) -> bool:
        up_reader, up_writer = conn
        while True:
            status = int(response.first.split(b" ", 2)[1]) if b" " in response.first else 502
            if status == 101:  # protocol switch: from now on the bytes just flow
                writer.write(response.first + b"\r\n" + response.forwarded(b"Connection: Upgrade"))
                await writer.drain()
                await self._tunnel(None, writer, up_reader, up_writer)
                return False
            if 100 <= status < 200:
                writer.write(response.first + b"\r\n" + response.forwarded(None))
                following = await read_head(up_reader)
                if following is None:
                    raise Closed
                response = following
                continue
            break
        upstream_keep = not response.first.startswith(b"HTTP/1.0") and b"close" not in (
            response.tokens(b"connection")
        )
        no_body = method == "HEAD" or status in (204, 304)
        framed = no_body or (
            b"content-length" in response.headers
            or b"chunked" in response.tokens(b"transfer-encoding")
        )
        keep = client_keep and framed
        writer.write(
            response.first
            + b"\r\n"
            + response.forwarded(b"Connection: keep-alive" if keep else b"Connection: close")
        )
        if no_body:
            await writer.drain()
        elif framed:
            await relay_body(response, up_reader, writer, request=False)
        else:
            while data := await up_reader.read(_CHUNK):
                writer.write(data)
                await writer.drain()
            upstream_keep = False
        if upstream_keep and framed and not up_reader.at_eof():
            self._give(key, conn)
        else:
            up_writer.close()
        return keep

    def _take(self, key: tuple[str, int]) -> _Conn | None:
        conns = self._idle.get(key)
        while conns:
            reader, writer = conns.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    def _give(self, key: tuple[str, int], conn: _Conn) -> None:
        conns = self._idle.setdefault(key, [])
        if len(conns) < _MAX_IDLE_PER_KEY:
            conns.append(conn)
        else:
            conn[1].close()

    async def _refuse(self, writer: asyncio.StreamWriter, reason: str) -> None:
        self.stats["refused"] += 1
        body = reason.encode("utf-8", "replace")
        writer.write(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
            + f"{REFUSED_HEADER}: 1\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        await writer.drain()

    async def _open(self, addresses: tuple[str, ...], port: int) -> _Conn | None:
        """A new connection to the first reachable checked address (never a name)."""
        for address in addresses:
            try:
                conn = await asyncio.wait_for(
                    asyncio.open_connection(address, port, limit=_MAX_HEADER_BYTES),
                    self.connect_timeout_s,
                )
            except (OSError, TimeoutError):
                continue
            self.stats["upstream_connects"] += 1
            return conn
        return None

    async def _tunnel(
        self,
        reader: asyncio.StreamReader | None,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        """Pump both ways (or only upstream → browser); done as soon as either side closes."""

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(_CHUNK):
                    dst.write(data)
                    await dst.drain()

        pumps = [asyncio.create_task(pump(up_reader, writer))]
        if reader is not None:
            pumps.append(asyncio.create_task(pump(reader, up_writer)))
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            up_writer.close()
