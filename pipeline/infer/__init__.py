"""The embedding model runtime: a registry of models, one warm model per process, batched
encoding across a whole job with out-of-memory back-off, and vector helpers.

Importing this package never imports torch or sentence-transformers: they load when a model does.
"""

from podfleet.pipeline.infer.batching import EmbedStats, EncodeResult, encode_texts, plan_batches
from podfleet.pipeline.infer.encoder import Encoder, SentenceEncoder
from podfleet.pipeline.infer.errors import UnknownModelError, classify_failure
from podfleet.pipeline.infer.registry import (
    DEFAULT_MODEL,
    ModelSpec,
    get_model,
    known_models,
    load_sentence_transformer,
    minilm_path,
    register_model,
)
from podfleet.pipeline.infer.runtime import embed_texts, get_encoder, resolve_device, warm_up
from podfleet.pipeline.infer.vectors import centroid, cosine_matrix, near_duplicates

__all__ = [
    "DEFAULT_MODEL",
    "EmbedStats",
    "EncodeResult",
    "Encoder",
    "ModelSpec",
    "SentenceEncoder",
    "UnknownModelError",
    "centroid",
    "classify_failure",
    "cosine_matrix",
    "embed_texts",
    "encode_texts",
    "get_encoder",
    "get_model",
    "known_models",
    "load_sentence_transformer",
    "minilm_path",
    "near_duplicates",
    "plan_batches",
    "register_model",
    "resolve_device",
    "warm_up",
]
