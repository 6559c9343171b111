"""The batched path on the real MiniLM (CPU): determinism, batch independence, agreement with
sentence-transformers `encode`, relevance, long documents, and the warm model."""

from __future__ import annotations

import numpy as np
import pytest
from podfleet.pipeline.config import InferConfig
from podfleet.pipeline.infer import embed_texts, encode_texts
from podfleet.pipeline.resources import WarmResources

pytestmark = pytest.mark.model

FLOODS = (
    "Torrential rain overnight caused flash floods across the Valencia region of eastern Spain, "
    "sweeping cars through streets and cutting power to thousands of homes."
)
STRIKE = (
    "Tens of thousands of dock workers walked off the job at container ports from Maine to Texas, "
    "halting the flow of goods through gateways that handle half of the country's trade."
)
RECIPE = "Whisk the eggs with sugar until pale, fold in the flour and bake for twenty minutes."
MIXED = [
    "short",
    FLOODS,
    STRIKE * 3,
    RECIPE,
    "The central bank left interest rates unchanged on Thursday. " * 6,
    "A volcano erupted on Iceland's Reykjanes peninsula.",
    "",
    "Rescue teams searched for people missing after the floods.",
]


def test_same_text_twice_gives_identical_vectors(minilm) -> None:
    first = encode_texts(minilm, [FLOODS, RECIPE, FLOODS], 8192)
    again = encode_texts(minilm, [FLOODS, RECIPE, FLOODS], 8192)
    assert np.array_equal(first.vectors[0], first.vectors[2])  # within one pass
    for a, b in zip(first.vectors, again.vectors, strict=True):  # and from run to run
        assert np.array_equal(a, b)


def test_batch_composition_does_not_change_a_vector(minilm) -> None:
    alone = [encode_texts(minilm, [t], 8192).vectors[0] for t in MIXED]
    together = encode_texts(minilm, MIXED, 8192)
    tiny_batches = encode_texts(minilm, MIXED, 64)  # budget of ~one row: many batches
    assert together.stats.batches < tiny_batches.stats.batches
    for a, b, c in zip(alone, together.vectors, tiny_batches.vectors, strict=True):
        assert np.abs(a - b).max() < 1e-5
        assert np.abs(a - c).max() < 1e-5
        assert abs(float(np.linalg.norm(b)) - 1.0) < 1e-5


def test_agrees_with_sentence_transformers_encode(minilm) -> None:
    texts = [t for t in MIXED if t]
    ours = np.stack(encode_texts(minilm, texts, 8192).vectors)
    peer = minilm.model.encode(texts, batch_size=32, convert_to_numpy=True)
    assert np.abs(ours - peer).max() < 1e-5


def test_relevant_document_scores_above_unrelated(minilm) -> None:
    title, relevant, unrelated = "Flash floods in Valencia region", FLOODS, RECIPE
    vectors = encode_texts(minilm, [title, relevant, unrelated, STRIKE], 8192).vectors
    scores = [float(vectors[0] @ v) for v in vectors[1:]]
    assert scores[0] > scores[1] + 0.3
    assert scores[0] > scores[2]


def test_long_document_is_split_into_windows_and_pooled(minilm) -> None:
    long_text = " ".join([FLOODS, STRIKE, RECIPE] * 12)  # ~700 tokens: 3 windows of 254
    ids = minilm.tokenize([long_text])[0]
    assert len(ids) > 2 * minilm.window_tokens
    result = encode_texts(minilm, [long_text, RECIPE], 8192)
    assert result.stats.windows == 1 + -(-len(ids) // minilm.window_tokens)
    parts = [ids[i : i + minilm.window_tokens] for i in range(0, len(ids), minilm.window_tokens)]
    window_vectors = minilm.encode_windows(parts)
    weights = np.array([len(p) for p in parts], dtype=np.float32)
    expected = (window_vectors * weights[:, None]).sum(axis=0)
    expected /= np.linalg.norm(expected)
    assert np.abs(result.vectors[0] - expected).max() < 1e-5
    # the tail of the document counts: truncation (what `encode` does) gives another vector
    truncated = minilm.model.encode([long_text], convert_to_numpy=True)[0]
    assert np.abs(result.vectors[0] - truncated).max() > 1e-3
    assert abs(float(np.linalg.norm(result.vectors[0])) - 1.0) < 1e-5


def test_batches_respect_the_token_budget(minilm) -> None:
    texts = [STRIKE * (1 + i % 4) for i in range(24)]
    result = encode_texts(minilm, texts, 1024)
    assert result.stats.padded_tokens <= 1024 * result.stats.batches
    assert result.stats.largest_batch > 1
    assert result.errors == {}


async def test_the_model_loads_once_per_process_and_serves_later_jobs() -> None:
    resources = WarmResources()
    config = InferConfig(device="cpu")
    first = await embed_texts([FLOODS], config, resources)
    model = resources.peek("model:all-MiniLM-L6-v2")
    second = await embed_texts([FLOODS, RECIPE], config, resources)
    assert resources.created == {"model:all-MiniLM-L6-v2": 1}
    assert resources.peek("model:all-MiniLM-L6-v2") is model
    assert model.device == "cpu"
    assert np.abs(first.vectors[0] - second.vectors[0]).max() < 1e-5


async def test_bf16_weights_stay_close_to_fp32(minilm) -> None:
    """INFER_PRECISION=bf16 (opt-in on CPU, see docs/inference.md): a separate warm model."""
    resources = WarmResources()
    result = await embed_texts(MIXED, InferConfig(device="cpu", precision="bf16"), resources)
    assert resources.peek("model:all-MiniLM-L6-v2").precision == "bf16"
    reference = encode_texts(minilm, MIXED, 8192).vectors
    for got, want in zip(result.vectors, reference, strict=True):
        assert got.dtype == np.float32
        assert float(got @ want) > 0.99


def test_token_budget_follows_the_device_unless_set() -> None:
    import torch
    from podfleet.pipeline.infer.runtime import token_budget_for

    threads = torch.get_num_threads()
    assert token_budget_for(InferConfig(), "cpu") == min(16384, max(2048, 2048 * threads))
    assert token_budget_for(InferConfig(), "cuda") == 16384
    assert token_budget_for(InferConfig(token_budget=512), "cuda") == 512
