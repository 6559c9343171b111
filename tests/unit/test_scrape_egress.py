"""The egress proxy on its own, over real sockets: keep-alive on both sides, upstream reuse, body
framing (Content-Length, chunked, until close, none), and the address check on every request of
a kept-alive connection and every CONNECT."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from podfleet.pipeline.scrape.egress import REFUSED_HEADER, EgressProxy
from podfleet.pipeline.scrape.guard import AddressGuard


class Upstream:
    """A tiny HTTP/1.1 origin on 127.0.0.1 that counts its connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[tuple[str, bytes]] = []  # (request line, body)
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        self.server.close()

    async def _serve(self, reader, writer) -> None:
        self.connections += 1
        self.writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *headers = head.decode().split("\r\n")
                fields = {h.split(":")[0].lower(): h.split(":", 1)[1].strip() for h in headers if h}
                body = b""
                if "content-length" in fields:
                    body = await reader.readexactly(int(fields["content-length"]))
                elif fields.get("transfer-encoding") == "chunked":
                    while (size := int((await reader.readuntil(b"\r\n")).strip(), 16)) > 0:
                        body += (await reader.readexactly(size + 2))[:-2]
                    await reader.readuntil(b"\r\n")
                self.requests.append((line, body))
                path = line.split(" ")[1]
                if not await self._answer(path, line, body, writer):
                    writer.close()
                    return

    async def _answer(self, path: str, line: str, body: bytes, writer) -> bool:
        if path == "/chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
        elif path == "/until-close":
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nstreamed to the end")
            await writer.drain()
            return False
        elif path == "/empty":
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif path == "/close-after":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            return False
        else:
            text = f"{line} body={body.decode()}".encode()
            if line.startswith("HEAD"):
                writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(text)}\r\n\r\n".encode())
            else:
                writer.write(
                    f"HTTP/1.1 200 OK\r\nContent-Length: {len(text)}\r\n\r\n".encode() + text
                )
        await writer.drain()
        return True


async def read_response(reader: asyncio.StreamReader, head_only: bool = False):
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    status = int(head.split(" ")[1])
    fields = {
        h.split(":")[0].lower(): h.split(":", 1)[1].strip() for h in head.split("\r\n")[1:] if h
    }
    body = b""
    if head_only or status in (204, 304):
        return status, fields, body
    if "content-length" in fields:
        body = await reader.readexactly(int(fields["content-length"]))
    elif fields.get("transfer-encoding") == "chunked":
        while (size := int((await reader.readuntil(b"\r\n")).strip(), 16)) > 0:
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        body = await reader.read()
    return status, fields, body


@pytest.fixture
async def rig():
    upstream = Upstream()
    port = await upstream.start()
    proxy = EgressProxy(AddressGuard([f"127.0.0.1:{port}"]), connect_timeout_s=2)
    await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    yield upstream, port, proxy, reader, writer
    writer.close()
    await proxy.close()
    await upstream.close()


def get(port: int, path: str, method: str = "GET", extra: str = "", host: str = "127.0.0.1"):
    return (
        f"{method} http://{host}:{port}{path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Proxy-Connection: keep-alive\r\n{extra}\r\n"
    ).encode()


async def test_one_browser_connection_many_requests_one_upstream_connection(rig) -> None:
    upstream, port, proxy, reader, writer = rig
    for k in range(5):
        writer.write(get(port, f"/page/{k}?q=1"))
        status, fields, body = await read_response(reader)
        assert status == 200 and body == f"GET /page/{k}?q=1 HTTP/1.1 body=".encode()
        assert fields["connection"] == "keep-alive"
    assert upstream.connections == 1 and proxy.stats["upstream_connects"] == 1


async def test_bodies_relayed_by_their_framing(rig) -> None:
    upstream, port, _proxy, reader, writer = rig
    writer.write(get(port, "/post", "POST", "Content-Length: 5\r\n") + b"abcde")
    assert (await read_response(reader))[2].endswith(b"body=abcde")
    chunked = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    writer.write(get(port, "/post", "POST", "Transfer-Encoding: chunked\r\n") + chunked)
    assert (await read_response(reader))[2].endswith(b"body=abcde")
    writer.write(get(port, "/chunked"))
    assert (await read_response(reader))[2] == b"hello world"
    writer.write(get(port, "/empty"))
    assert (await read_response(reader))[0] == 204
    writer.write(get(port, "/head", "HEAD"))
    status, fields, _ = await read_response(reader, head_only=True)
    assert status == 200 and int(fields["content-length"]) > 0
    writer.write(get(port, "/after"))  # the connection still works after all of those
    assert (await read_response(reader))[2].startswith(b"GET /after")
    assert upstream.connections == 1


async def test_unframed_response_ends_the_browser_connection(rig) -> None:
    _upstream, port, _proxy, reader, writer = rig
    writer.write(get(port, "/until-close"))
    status, fields, body = await read_response(reader)
    assert status == 200 and body == b"streamed to the end"
    assert fields["connection"] == "close"


async def test_upstream_that_closes_is_not_reused(rig) -> None:
    upstream, port, _proxy, reader, writer = rig
    writer.write(get(port, "/close-after"))
    assert (await read_response(reader))[2] == b"ok"
    writer.write(get(port, "/next"))
    assert (await read_response(reader))[2].startswith(b"GET /next")
    assert upstream.connections == 2


async def test_stale_pooled_connection_replaced_transparently(rig) -> None:
    upstream, port, _proxy, reader, writer = rig
    writer.write(get(port, "/one"))
    await read_response(reader)
    for w in upstream.writers:  # the origin drops its idle keep-alive connection
        w.close()
    await asyncio.sleep(0.05)
    writer.write(get(port, "/two"))
    assert (await read_response(reader))[2].startswith(b"GET /two")
    assert upstream.connections == 2


async def test_every_request_on_a_kept_alive_connection_is_checked(rig) -> None:
    upstream, port, proxy, reader, writer = rig
    writer.write(get(port, "/fine"))
    assert (await read_response(reader))[0] == 200
    other = port + 1 if port < 65535 else port - 1
    for target in (
        get(other, "/other-port"),
        get(80, "/metadata", host="169.254.169.254"),
        get(port, "/spelled", host="0x7f.1"),  # same host and port, another spelling: allowed
    ):
        r2, w2 = await asyncio.open_connection("127.0.0.1", proxy.port)
        w2.write(get(port, "/fine-again") + target)
        assert (await read_response(r2))[0] == 200
        status, fields, body = await read_response(r2)
        w2.close()
        if b"/spelled" in target:
            assert status == 200
            continue
        assert status == 403 and fields[REFUSED_HEADER] == "1" and body.startswith(b"refused:")
    assert [line for line, _ in upstream.requests if "other-port" in line or "meta" in line] == []


async def test_connect_checked_then_tunnelled(rig) -> None:
    _upstream, port, proxy, _reader, _writer = rig
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
    w.write(b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n")
    assert (await r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 403")
    w.close()
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
    w.write(f"CONNECT [::ffff:127.0.0.1]:{port} HTTP/1.1\r\n\r\n".encode())
    assert (await r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 403")  # another host name
    w.close()
    r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
    w.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
    assert (await r.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    w.write(b"GET /tunnelled HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await read_response(r))[2].startswith(b"GET /tunnelled")
    w.close()
