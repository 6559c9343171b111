"""Import the RunPod SDK without its start-up probes (~1.7 s of a worker's cold start).

`import runpod` (1.12.0) costs ~2 s on a 2-core VM, nearly all of it work a worker never uses:
- `runpod.serverless.utils.rp_debugger` calls `cpuinfo.get_cpu_info()` at import, which starts
  a second Python interpreter (which starts a third, for CPUID) just to print the processor's
  name in `--rp_debugger` output (~1.2 s). While the SDK imports, we answer that call with the
  `model name` line of /proc/cpuinfo (what py-cpuinfo reports as `brand_raw` on Linux), then
  put the real function back.
- `tqdm_loggable.auto` (via `rp_upload`) imports IPython (~0.3 s) to find out whether it runs
  in a notebook. A worker's stdout is not a terminal, so its answer is always "log progress";
  TQDM_LOGGABLE_FORCE=logging (the library's own override) gives that answer without IPython.
  Set only when stdout is not a terminal and the variable is not already set.
Both are skipped on an SDK version other than the one this was checked on (the import is then
just slower).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["CHECKED_SDK_VERSIONS", "import_sdk", "processor_name"]

CHECKED_SDK_VERSIONS = frozenset({"1.12.0"})


def processor_name() -> str:
    """The CPU's brand string, read from /proc/cpuinfo (platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "Unable to get processor info."


@contextmanager
def _quick_cpuinfo() -> Iterator[None]:
    try:
        import cpuinfo
    except ImportError:  # the SDK would fail on its own import; let it say so
        yield
        return
    original = cpuinfo.get_cpu_info

    def quick() -> dict[str, Any]:
        return {"brand_raw": processor_name()}

    cpuinfo.get_cpu_info = quick
    try:
        yield
    finally:
        cpuinfo.get_cpu_info = original


def _sdk_version() -> str | None:
    try:
        return importlib.metadata.version("runpod")
    except importlib.metadata.PackageNotFoundError:
        return None


def import_sdk() -> ModuleType:
    """`import runpod`, quickly when the installed version is a checked one."""
    if "runpod" in sys.modules or _sdk_version() not in CHECKED_SDK_VERSIONS:
        import runpod

        return runpod
    if not sys.stdout.isatty():
        os.environ.setdefault("TQDM_LOGGABLE_FORCE", "logging")
    with _quick_cpuinfo():
        import runpod
    return runpod
