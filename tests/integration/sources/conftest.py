"""A real HTTP server on loopback (threads), serving files with or without Range support,
redirects and error statuses, and recording every request it gets."""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Served:
    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    ranges: bool = True  # honour Range (206) or ignore it (200, the whole body)
    auth: str | None = None  # "user:password" required on every path
    requests: list[dict[str, Any]] = field(default_factory=list)
    stall: threading.Event = field(default_factory=threading.Event)  # set: /stall returns
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: Any
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        served: Served = self.server.served
        path = self.path.split("?", 1)[0]
        with served.lock:
            served.requests.append({"path": self.path, "headers": dict(self.headers.items())})
        if served.auth is not None:
            expected = "Basic " + base64.b64encode(served.auth.encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self._empty(401)
        if path in served.redirects:
            self.send_response(302)
            self.send_header("Location", served.redirects[path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path in served.statuses:
            return self._empty(served.statuses[path])
        if path == "/stall":  # headers, then nothing: a reader must give up on its own
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.flush()
            served.stall.wait(30)
            return
        body = served.files.get(path)
        if body is None:
            return self._empty(404)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if served.ranges and match:
            start = int(match.group(1))
            end = min(int(match.group(2) or len(body) - 1), len(body) - 1)
            part = body[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
        else:
            part = body
            self.send_response(200)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        # a reader may stop once it has its rows
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(part)

    def _empty(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


@dataclass
class Server:
    served: Served
    port: int

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def allow(self) -> str:
        return f"127.0.0.1:{self.port}"


def _start(served: Served) -> tuple[ThreadingHTTPServer, Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.served = served  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, Server(served, httpd.server_address[1])


@pytest.fixture
def http_server() -> Iterator[Server]:
    httpd, server = _start(Served())
    yield server
    server.served.stall.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def other_server() -> Iterator[Server]:
    """A second loopback server (a redirect target that is not on the allow-list)."""
    httpd, server = _start(Served())
    yield server
    httpd.shutdown()
    httpd.server_close()
