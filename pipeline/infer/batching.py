"""All texts of a job in one pass: tokenize once, split long texts into windows of the model's
maximum length, sort windows by length (longest first, so an out-of-memory shows up at once), cut
batches by a token budget (rows x padded width), encode, then pool each text's windows.

On out-of-memory the batch is halved and retried, and the budget stays halved for the rest of the
pass; a single window that still does not fit fails only its own text. A CUDA fault is fatal.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from podfleet.pipeline.infer.encoder import Encoder
from podfleet.pipeline.infer.errors import classify_failure, fatal_from

__all__ = [
    "EmbedStats",
    "EncodeCancelled",
    "EncodeResult",
    "Window",
    "encode_texts",
    "plan_batches",
    "split_windows",
]

MAX_BATCH_ROWS = 512  # a ceiling on rows whatever the budget (very short texts)


class EncodeCancelled(Exception):
    """The caller gave up (timeout); the pass stopped between batches."""


@dataclass(frozen=True)
class Window:
    text_index: int
    ids: list[int]


@dataclass
class EmbedStats:
    texts: int = 0
    windows: int = 0
    tokens: int = 0  # content tokens, special tokens and padding excluded
    padded_tokens: int = 0  # what the model actually processed
    batches: int = 0
    largest_batch: int = 0
    smallest_batch: int = 0
    oom_retries: int = 0
    failed_texts: int = 0
    encode_s: float = 0.0

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


@dataclass
class EncodeResult:
    """One slot per input text: a unit float32 vector, or None with a message in `errors`."""

    vectors: list[np.ndarray | None]
    errors: dict[int, str] = field(default_factory=dict)
    stats: EmbedStats = field(default_factory=EmbedStats)


def split_windows(token_ids: list[list[int]], window_tokens: int) -> list[Window]:
    """Consecutive, non-overlapping windows; an empty text still gets one (empty) window."""
    windows = []
    for index, ids in enumerate(token_ids):
        if not ids:
            windows.append(Window(index, []))
        for start in range(0, len(ids), window_tokens):
            windows.append(Window(index, ids[start : start + window_tokens]))
    return windows


def plan_batches(
    lengths: list[int], token_budget: int, *, overhead: int = 2, max_rows: int = MAX_BATCH_ROWS
) -> list[list[int]]:
    """Indices into `lengths`, longest first, cut so that rows x padded width <= token_budget
    (always at least one row per batch)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    width = 0
    for i in order:
        if not current:
            current, width = [i], lengths[i] + overhead
            continue
        if (len(current) + 1) * width > token_budget or len(current) >= max_rows:
            batches.append(current)
            current, width = [i], lengths[i] + overhead
        else:
            current.append(i)
    if current:
        batches.append(current)
    return batches


def _pool(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Token-weighted mean of unit window vectors, re-normalised (a short tail weighs little)."""
    pooled = (vectors * weights[:, None]).sum(axis=0)
    norm = float(np.linalg.norm(pooled))
    return (pooled / norm if norm > 0 else pooled).astype(np.float32)


def encode_texts(
    encoder: Encoder,
    texts: list[str],
    token_budget: int,
    *,
    cancel: threading.Event | None = None,
) -> EncodeResult:
    """Blocking; run it in a thread. Raises FatalWorkerError on a CUDA fault, EncodeCancelled
    when `cancel` is set, and anything unexpected as is."""
    t0 = time.perf_counter()
    stats = EmbedStats(texts=len(texts))
    result = EncodeResult(vectors=[None] * len(texts), stats=stats)
    if not texts:
        return result
    with encoder.lock:
        windows = split_windows(encoder.tokenize(texts), encoder.window_tokens)
        overhead = encoder.max_seq_length - encoder.window_tokens
        lengths = [len(w.ids) for w in windows]
        stats.windows, stats.tokens = len(windows), sum(lengths)
        out = np.zeros((len(windows), encoder.dim), dtype=np.float32)
        budget = max(token_budget, 1)
        pending = deque(plan_batches(lengths, budget, overhead=overhead))
        while pending:
            if cancel is not None and cancel.is_set():
                raise EncodeCancelled()
            batch = pending.popleft()
            width = max(lengths[i] for i in batch) + overhead
            if len(batch) > 1 and len(batch) * width > budget:  # budget shrank after an OOM
                pending.extendleft(reversed(_split(batch, max(1, budget // width))))
                continue
            try:
                out[batch] = encoder.encode_windows([windows[i].ids for i in batch])
            except Exception as exc:
                kind = classify_failure(exc)
                if kind == "cuda":
                    raise fatal_from(exc, encoder.name) from exc
                if kind != "oom":
                    raise
                encoder.release_memory()
                stats.oom_retries += 1
                if len(batch) == 1:
                    text = windows[batch[0]].text_index
                    result.errors.setdefault(
                        text, f"out of memory on one {width}-token window even alone"
                    )
                    continue
                half = (len(batch) + 1) // 2
                budget = half * width
                pending.extendleft(reversed(_split(batch, half)))
                continue
            stats.batches += 1
            stats.padded_tokens += len(batch) * width
            stats.largest_batch = max(stats.largest_batch, len(batch))
            stats.smallest_batch = min(stats.smallest_batch or len(batch), len(batch))
    per_text: dict[int, list[int]] = {}
    for i, w in enumerate(windows):
        per_text.setdefault(w.text_index, []).append(i)
    for text, idx in per_text.items():
        if text in result.errors:
            continue
        if len(idx) == 1:
            result.vectors[text] = out[idx[0]].copy()
        else:
            weights = np.array([max(lengths[i], 1) for i in idx], dtype=np.float32)
            result.vectors[text] = _pool(out[idx], weights)
    stats.failed_texts = len(result.errors)
    stats.encode_s = round(time.perf_counter() - t0, 4)
    return result


def _split(batch: list[int], size: int) -> list[list[int]]:
    size = max(1, size)
    return [batch[i : i + size] for i in range(0, len(batch), size)]
