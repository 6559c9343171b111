"""A sentence-transformers model driven at the token level.

`SentenceTransformer.encode` tokenizes per batch and truncates at `max_seq_length`. We tokenize each
text once (to sort by true length, size batches by tokens, and split long texts into windows), then
feed the windows' token ids straight to the model's modules, whose output (pooled, normalised) is
bit-identical to `encode` for a text that fits in one window.

torch is imported inside methods only: importing this module stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["Encoder", "SentenceEncoder"]


class Encoder:
    """What the batching engine needs from a model. Fixture models wrap one (tests/fixtures)."""

    name: str
    device: str
    dim: int
    max_seq_length: int  # tokens per forward row, special tokens included
    window_tokens: int  # content tokens per window (max_seq_length minus the special tokens)
    lock: threading.Lock  # one job at a time per model: tokenizers and GPUs are not shared well

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        raise NotImplementedError

    def encode_windows(self, windows: Sequence[Sequence[int]]) -> np.ndarray:
        """One forward pass: `(len(windows), dim)` float32, each row unit length."""
        raise NotImplementedError

    def release_memory(self) -> None:
        """Give cached device memory back after an out-of-memory error."""

    def set_precision(self, precision: str) -> None:
        """Cast the weights: "fp32", "fp16" or "bf16" (a no-op where not supported)."""


class SentenceEncoder(Encoder):
    def __init__(self, name: str, model: Any, device: str) -> None:
        self.name = name
        self.model = model
        self.device = device
        self.precision = "fp32"
        self.lock = threading.Lock()
        tok = model.tokenizer
        self._tokenizer = tok
        self.max_seq_length = int(model.max_seq_length)
        self.dim = int(model.get_embedding_dimension())
        self._prefix, self._suffix = _special_tokens(tok)
        self.window_tokens = self.max_seq_length - len(self._prefix) - len(self._suffix)
        if self.window_tokens < 1:
            raise ValueError(f"model {name!r}: max_seq_length {self.max_seq_length} is too small")
        self._pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        self._token_types = "token_type_ids" in getattr(tok, "model_input_names", ())

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if not texts:
            return []
        out = self._tokenizer(
            list(texts),
            add_special_tokens=False,
            truncation=False,
            verbose=False,  # no "longer than the maximum" warning: we window long texts
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [list(ids) for ids in out["input_ids"]]

    def encode_windows(self, windows: Sequence[Sequence[int]]) -> np.ndarray:
        import torch

        rows = [[*self._prefix, *w, *self._suffix] for w in windows]
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        features = {
            "input_ids": torch.from_numpy(ids).to(self.device),
            "attention_mask": torch.from_numpy(mask).to(self.device),
        }
        if self._token_types:
            features["token_type_ids"] = torch.zeros_like(features["input_ids"])
        with torch.inference_mode():
            out = self.model.forward(features)["sentence_embedding"]
            return out.float().cpu().numpy()

    def set_precision(self, precision: str) -> None:
        import torch

        dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
        self.model.to(dtypes[precision])
        self.precision = precision

    def release_memory(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def _special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text ([CLS] ... [SEP] for BERT)."""
    probe = "hello"
    bare = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError("cannot locate the text between the tokenizer's special tokens")
