"""Property-based fuzzing of the job edge, in-process through `podfleet.entry.handler`.

Hypothesis runs as a library: pyproject's addopts keep its pytest plugin off (it crashed a run's
summary once on CPython 3.11.7), so the profile is loaded here. `PODFLEET_FUZZ_SCALE` multiplies
every test's example count (default 1: 3,000 examples, 40-110 s on the shared 2-core box); runs are
derandomized, so CI sees the same examples each time and a failure reproduces.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "podfleet-ci",
    deadline=None,  # the suite asserts its own size-proportional bound per call
    database=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the fixtures below are the same for every example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
settings.load_profile("podfleet-ci")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for all of a module's handler calls (a loop per example costs more)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def quiet_logs(clean_env) -> Iterator[list[str]]:
    """The real logging configuration (redaction and bounds run on every fuzzed line), with the
    lines kept in memory instead of printed."""
    from loguru import logger
    from podfleet.logs import configure_logging
    from podfleet.settings import load_settings

    configure_logging(load_settings())
    logger.remove()
    lines: list[str] = []
    logger.add(lambda message: lines.append(str(message)), level="DEBUG", format="{message}")
    yield lines
    logger.remove()
