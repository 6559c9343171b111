"""Image build step: load the embedding model once and run one encode (see pipeline/infer/bake.py).

Run from the repository root: `python builder/bake_model.py [--model NAME] [--device cpu]`.
CPU by default: build hosts have no GPU, and the weights are device-independent.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.infer.bake import main

if __name__ == "__main__":
    sys.exit(main())
