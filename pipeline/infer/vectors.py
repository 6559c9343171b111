"""Small vector helpers for unit-length embeddings: similarity, near-duplicates, centroids."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["centroid", "cosine_matrix", "near_duplicates"]


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise cosine of the rows of `a` and `b` (rows need not be unit length)."""
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return a @ b.T


def near_duplicates(vectors: np.ndarray, threshold: float) -> list[int | None]:
    """For each row, the position of the first EARLIER row with cosine >= threshold, else None."""
    if len(vectors) == 0:
        return []
    sims = cosine_matrix(vectors, vectors)
    out: list[int | None] = []
    for j in range(len(vectors)):
        earlier = np.nonzero(sims[j, :j] >= threshold)[0]
        out.append(int(earlier[0]) if len(earlier) else None)
    return out


def centroid(vectors: Sequence[np.ndarray] | np.ndarray) -> np.ndarray | None:
    """Mean of the vectors, re-normalised; None for no vectors."""
    if len(vectors) == 0:
        return None
    mean = np.mean(np.asarray(vectors, dtype=np.float32), axis=0)
    norm = float(np.linalg.norm(mean))
    return (mean / norm if norm > 0 else mean).astype(np.float32)
