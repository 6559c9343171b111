"""HTTP/1.x message framing for the egress proxy: heads, hop-by-hop headers, body relay."""

from __future__ import annotations

import asyncio

__all__ = ["Closed", "Head", "read_head", "relay_body"]

_CHUNK = 256 * 1024
_HOP_HEADERS = frozenset(
    {
        b"proxy-connection",
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"upgrade",
    }
)


class Closed(Exception):
    """The other side closed before a complete message."""


class Head:
    """A parsed HTTP/1.x message head: first line and raw header lines."""

    __slots__ = ("first", "headers", "lines", "version")

    def __init__(self, raw: bytes) -> None:
        first, *lines = raw[:-4].split(b"\r\n")
        self.first = first
        self.lines = [line for line in lines if line]
        self.headers: dict[bytes, bytes] = {}
        for line in self.lines:
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            value = value.strip()
            if key in self.headers:  # repeated header: comma-join (RFC 9110 5.3)
                self.headers[key] += b", " + value
            else:
                self.headers[key] = value
        self.version = b""

    def tokens(self, name: bytes) -> set[bytes]:
        return {t.strip().lower() for t in self.headers.get(name, b"").split(b",")}

    def forwarded(self, extra: bytes | None) -> bytes:
        """Header lines without hop-by-hop ones (and those `Connection` names), plus `extra`."""
        drop = _HOP_HEADERS | self.tokens(b"connection")
        kept = [ln for ln in self.lines if ln.partition(b":")[0].strip().lower() not in drop]
        if extra:
            kept.append(extra)
        return b"".join(line + b"\r\n" for line in kept) + b"\r\n"


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next message head, or None on a clean EOF between messages."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise Closed from exc
    except asyncio.LimitOverrunError as exc:
        raise Closed from exc
    return Head(raw)


async def relay_body(
    head: Head, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, request: bool
) -> None:
    """Copy one message body from `src` to `dst` by its framing (chunked or Content-Length)."""
    if b"chunked" in head.tokens(b"transfer-encoding"):
        while True:
            size_line = await src.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            dst.write(size_line)
            if size == 0:  # trailers up to the empty line
                while True:
                    line = await src.readuntil(b"\r\n")
                    dst.write(line)
                    if line == b"\r\n":
                        break
                await dst.drain()
                return
            dst.write(await src.readexactly(size + 2))
            await dst.drain()
    length_text = head.headers.get(b"content-length", b"0").split(b",")[0].strip()
    if not length_text.isdigit():
        raise Closed(f"bad Content-Length {length_text!r}")
    remaining = int(length_text)
    while remaining > 0:
        data = await src.read(min(remaining, _CHUNK))
        if not data:
            raise Closed
        dst.write(data)
        remaining -= len(data)
        await dst.drain()
    if not request:
        await dst.drain()
