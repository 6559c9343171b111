"""The emulator terminal's line format: each of the three formats workers print becomes one
bounded line with the worker's id (pure, no processes)."""

from __future__ import annotations

import json

from podfleet.emulator.logfmt import MAX_LINE_CHARS, event_line, format_worker_line


def test_the_sdks_json_lines() -> None:
    raw = json.dumps({"requestId": "3f2a9c1d-aaaa-bbbb", "message": "Started.", "level": "INFO"})
    line = format_worker_line("worker-1", raw + "\n")
    assert line.endswith("worker-1  INFO  job 3f2a9c1d Started.")
    assert format_worker_line(
        "worker-1", json.dumps({"requestId": None, "message": "Jobs in queue: 1", "level": "INFO"})
    ).endswith("worker-1  INFO  Jobs in queue: 1")


def test_podfleets_loguru_text_and_serialized_lines() -> None:
    text = (
        "\x1b[32m10:52:03.123\x1b[0m \x1b[1mWARNING\x1b[0m "
        "\x1b[36mworker-2\x1b[0m/\x1b[36mabcdef123456\x1b[0m item x failed"
    )
    assert (
        format_worker_line("worker-2", text)
        == "10:52:03 worker-2  WARNING job abcdef12 item x failed"
    )
    serialized = json.dumps(
        {
            "text": "...",
            "record": {"message": "hello", "level": {"name": "ERROR"}, "extra": {"job_id": "-"}},
        }
    )
    assert format_worker_line("worker-0", serialized).endswith("worker-0  ERROR hello")


def test_other_output_is_kept_bounded_and_on_one_line() -> None:
    line = format_worker_line("worker-0", "x" * 5000)
    assert len(line) <= MAX_LINE_CHARS and line.endswith("chars)") and " OUT " in line
    assert "\n" not in event_line("emulator", "INFO", "two\nlines", "job-1")
    assert format_worker_line("worker-0", "{not json}").endswith("OUT   {not json}")
