"""The image's worker (`python handler.py`), or, with PODFLEET_TEST_SIBLING_PROTOCOLS set
(e.g. "1"), a worker of an older image that speaks only those sibling protocols: it refuses a
newer sibling envelope the way a worker built before protocol 2 would (an InputError naming
`sibling.protocol`). Used as the emulator's worker_cmd by the rolling-release test."""

from __future__ import annotations

import os


def main() -> None:
    protocols = os.environ.get("PODFLEET_TEST_SIBLING_PROTOCOLS", "").strip()
    if protocols:
        import podfleet.envelope as envelope

        envelope.SUPPORTED_SIBLING_PROTOCOLS = frozenset(
            int(p) for p in protocols.split(",") if p.strip()
        )
    from podfleet.main import main as worker_main

    worker_main()


if __name__ == "__main__":
    main()
