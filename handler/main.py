"""Process entry: configure logging, then hand the handler to RunPod's worker loop.

`runpod.serverless.start` picks its mode itself: `--test_input` or `./test_input.json` → one local
run (exit 0, or 1 on error); `RUNPOD_WEBHOOK_GET_JOB` set → the production job loop.
"""

from __future__ import annotations

__all__ = ["main"]


def main() -> None:
    from podfleet.logs import configure_logging
    from podfleet.settings import load_settings

    settings = load_settings()
    configure_logging(settings)

    import runpod  # imported after settings: it reads RUNPOD_WEBHOOK_* at import time
    from podfleet.entry import handler
    from podfleet.fitness import register_checks

    register_checks()
    runpod.serverless.start({"handler": handler, "return_aggregate_stream": True})
