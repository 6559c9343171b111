"""One readable, bounded line per log event in the emulator's terminal.

Workers print three formats: the RunPod SDK's JSON lines (`{"requestId", "message", "level"}`),
loguru's text lines (podfleet's own workers) or its serialized JSON (`{"text", "record"}`), and
anything else a user's handler prints. Each becomes

    12:03:04 worker-1  INFO   job 3f2a9c1d  Started.

with the worker's id first; a line longer than `MAX_LINE_CHARS` is cut and says by how much.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

__all__ = ["MAX_LINE_CHARS", "event_line", "format_worker_line"]

MAX_LINE_CHARS = 240

# podfleet's loguru text format: "12:03:04.567 INFO    worker-0/job-id message"
_LOGURU_TEXT = re.compile(
    r"^(?:\x1b\[[0-9;]*m)*(\d\d:\d\d:\d\d)\.\d{3}(?:\x1b\[[0-9;]*m)* (?:\x1b\[[0-9;]*m)*"
    r"([A-Z]+)\s*(?:\x1b\[[0-9;]*m)* (?:\x1b\[[0-9;]*m)*\S+?/(?:\x1b\[[0-9;]*m)*(\S+?)"
    r"(?:\x1b\[[0-9;]*m)* (.*)$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _short_job(job_id: Any) -> str:
    text = str(job_id or "")
    if not text or text in ("-", "None", "null"):
        return ""
    return f"job {text[:8]}"


def _bound(line: str, limit: int = MAX_LINE_CHARS) -> str:
    if len(line) <= limit:
        return line
    return f"{line[: limit - 20]}... (+{len(line) - limit + 20} chars)"


def event_line(
    source: str, level: str, message: str, job_id: Any = None, at: str | None = None
) -> str:
    """The common shape: time, source (worker id or "emulator"), level, job, message."""
    stamp = at or time.strftime("%H:%M:%S")
    job = _short_job(job_id)
    text = " ".join(str(message).split())  # one line: newlines and runs of spaces collapsed
    parts = [stamp, f"{source:<9}", f"{level.upper():<5}"]
    if job:
        parts.append(f"{job:<12}")
    parts.append(text)
    return _bound(" ".join(parts))


def _from_json(data: dict[str, Any]) -> tuple[str, str, Any, str | None] | None:
    if "message" in data and ("level" in data or "requestId" in data):  # the RunPod SDK
        return str(data.get("level") or "INFO"), str(data["message"]), data.get("requestId"), None
    record = data.get("record")
    if isinstance(record, dict) and "message" in record:  # loguru serialize=True
        level = record.get("level", {})
        extra = record.get("extra") or {}
        name = level.get("name", "INFO") if isinstance(level, dict) else str(level)
        return name, str(record["message"]), extra.get("job_id"), None
    return None


def format_worker_line(worker_id: str, raw: str) -> str:
    """One output line of a worker, in the common shape."""
    line = raw.rstrip("\r\n")
    stripped = line.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
        if isinstance(data, dict) and (parsed := _from_json(data)):
            level, message, job_id, at = parsed
            return event_line(worker_id, level, message, job_id, at)
    if m := _LOGURU_TEXT.match(line):
        at, level, job_id, message = m.groups()
        return event_line(worker_id, level, _ANSI.sub("", message), job_id, at)
    return event_line(worker_id, "out", _ANSI.sub("", line))
