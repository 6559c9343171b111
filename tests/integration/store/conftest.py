"""A throwaway PostgreSQL server of our own (initdb + pg_ctl on a free loopback port), so tests
can stop, restart and kill it without disturbing the shared test cluster other tests use."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import _missing


@dataclass
class Server:
    bin_dir: Path
    data: Path
    port: int
    as_postgres: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        cmd = [*self.as_postgres, str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-l", str(self.data / "server.log"), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def throwaway_postgres() -> Iterator[Server]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    if not found or not found[-1]:
        _missing("PostgreSQL server binaries (initdb)", "PODFLEET_REQUIRE_POSTGRES")
    bin_dir = Path(found[-1]).parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="podfleet-pg-"))
    data = root / "data"
    data.mkdir()
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
         "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    server = Server(bin_dir, data, _free_port(), as_postgres)
    server.start()
    try:
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop("immediate")  # unless already stopped
        shutil.rmtree(root, ignore_errors=True)
