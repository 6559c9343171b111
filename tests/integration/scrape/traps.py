"""Loopback listeners that record whatever reaches them: the SSRF suite's proof that nothing did.

A `Trap` listens on one TCP port (on 127.0.0.1, and on ::1 at the same port when the machine has
IPv6 loopback) and one UDP port on 127.0.0.1, in a thread. A TCP visitor gets an HTML answer
carrying `SECRET` (so a page that read it would show it) and its first line is kept in `tcp`;
each UDP datagram is kept in `udp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import threading

__all__ = ["SECRET", "Trap"]

SECRET = "TRAP-SECRET-7f3a"
_BODY = f"<!doctype html><title>{SECRET}</title><p>{SECRET}</p>".encode()
_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nAccess-Control-Allow-Origin: *\r\n"
    + f"Content-Length: {len(_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _BODY
)


class Trap:
    def __init__(self) -> None:
        self.tcp: list[str] = []  # first line (or first bytes) of each TCP visit
        self.udp: list[bytes] = []
        self._sel = selectors.DefaultSelector()
        self._listeners: list[socket.socket] = []
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.bind(("127.0.0.1", 0))
        self.port = v4.getsockname()[1]
        self._listen(v4)
        self.has_v6 = False
        with contextlib.suppress(OSError):
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            v6.bind(("::1", self.port))
            self._listen(v6)
            self.has_v6 = True
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        udp.setblocking(False)
        self.udp_port = udp.getsockname()[1]
        self._sel.register(udp, selectors.EVENT_READ, "udp")
        self._listeners.append(udp)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ssrf-trap", daemon=True)

    def _listen(self, sock: socket.socket) -> None:
        sock.listen(64)
        sock.setblocking(False)
        self._sel.register(sock, selectors.EVENT_READ, "listen")
        self._listeners.append(sock)

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.05):
                sock = key.fileobj
                if key.data == "udp":
                    with contextlib.suppress(OSError):
                        while True:
                            self.udp.append(sock.recv(4096))
                    continue
                with contextlib.suppress(OSError):
                    conn, _addr = sock.accept()
                    threading.Thread(target=self._visit, args=(conn,), daemon=True).start()

    def _visit(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(2)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n" not in data and len(data) < 4096:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            if not data:
                self.tcp.append("(connected, sent nothing)")
                return
            line = data.split(b"\r\n", 1)[0]
            self.tcp.append(line.decode("latin-1") if line.isascii() else repr(data[:40]))
            with contextlib.suppress(OSError):
                conn.sendall(_ANSWER)

    def hits(self) -> list[str]:
        return [*self.tcp, *(f"udp {d[:20]!r}" for d in self.udp)]

    async def settle(self, seconds: float = 0.5) -> list[str]:
        """What arrived, after giving stragglers (a late beacon, a retransmit) a moment."""
        await asyncio.sleep(seconds)
        return self.hits()

    def clear(self) -> None:
        self.tcp.clear()
        self.udp.clear()

    def __enter__(self) -> Trap:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self._listeners:
            sock.close()
