"""Batch planning, windows, failure classification and vector helpers: pure, no model."""

from __future__ import annotations

import numpy as np
import pytest
from podfleet.pipeline.errors import FatalWorkerError
from podfleet.pipeline.infer import (
    ModelSpec,
    UnknownModelError,
    centroid,
    classify_failure,
    get_model,
    known_models,
    near_duplicates,
    plan_batches,
    register_model,
)
from podfleet.pipeline.infer.batching import split_windows
from podfleet.pipeline.infer.errors import fatal_from


def test_batches_are_longest_first_and_within_the_token_budget() -> None:
    lengths = [5, 300, 40, 40, 7, 120, 0, 254]
    batches = plan_batches(lengths, 1024, overhead=2)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(lengths)))  # every row exactly once
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for b in batches:
        width = max(lengths[i] for i in b) + 2
        assert len(b) == 1 or len(b) * width <= 1024


def test_a_row_wider_than_the_budget_still_gets_a_batch() -> None:
    assert plan_batches([500, 500], 64) == [[0], [1]]


def test_row_ceiling_caps_batches_of_tiny_texts() -> None:
    batches = plan_batches([1] * 1000, 10**9, max_rows=256)
    assert [len(b) for b in batches] == [256, 256, 256, 232]


def test_windows_cover_every_token_once() -> None:
    ids = [list(range(600)), [], list(range(10))]
    windows = split_windows(ids, 254)
    assert [(w.text_index, len(w.ids)) for w in windows] == [
        (0, 254),
        (0, 254),
        (0, 92),
        (1, 0),
        (2, 10),
    ]
    assert [t for w in windows if w.text_index == 0 for t in w.ids] == ids[0]


class OutOfMemoryError(RuntimeError):
    pass


class AcceleratorError(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), "oom"),
        (RuntimeError("CUDA error: out of memory"), "oom"),
        (RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate: out of memory"), "oom"),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), "cuda"),
        (RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"), "cuda"),
        (AcceleratorError("device-side assert triggered"), "cuda"),
        (ValueError("text must be str"), "other"),
        (RuntimeError("shape mismatch"), "other"),
    ],
)
def test_failures_are_classified(exc: Exception, kind: str) -> None:
    assert classify_failure(exc) == kind


def test_fatal_error_names_the_model_without_a_traceback() -> None:
    err = fatal_from(RuntimeError("CUDA error: misaligned address\nTraceback..."), "m")
    assert isinstance(err, FatalWorkerError)
    assert str(err) == "model 'm' hit a CUDA fault (RuntimeError: CUDA error: misaligned address)"


def test_near_duplicates_point_at_the_first_earlier_match() -> None:
    a = np.array([1.0, 0.0, 0.0])
    b = np.array([0.0, 1.0, 0.0])
    a2 = np.array([0.99, 0.05, 0.0])
    vectors = np.stack([a, b, a2, a, b * 2])
    assert near_duplicates(vectors, 0.95) == [None, None, 0, 0, 1]
    assert near_duplicates(vectors, 0.9999) == [None, None, None, 0, 1]
    assert near_duplicates(np.zeros((0, 3)), 0.9) == []


def test_centroid_is_the_normalised_mean() -> None:
    got = centroid(np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert np.allclose(got, [2**-0.5, 2**-0.5])
    assert centroid([]) is None


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError, match=r"unknown model 'nope' \(MODEL_NAME\); known: .*"):
        get_model("nope")
    assert "all-MiniLM-L6-v2" in known_models()


def test_a_model_name_is_registered_once() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelSpec("all-MiniLM-L6-v2", lambda device: None))  # type: ignore[arg-type,return-value]
