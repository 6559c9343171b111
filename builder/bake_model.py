"""Image build step: load the embedding model once and run one encode (see pipeline/infer/bake.py).

Run from the repository root: `python builder/bake_model.py [--model NAME] [--device cpu]`.
CPU by default: build hosts have no GPU, and the weights are device-independent.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _import_pipeline_library() -> None:
    """Make `podfleet.pipeline` importable from ./pipeline when podfleet is not installed yet.

    The image bakes the model before the rest of the code is copied in (so a code change does not
    re-run the bake): only `pipeline/` is there, and pyproject.toml's `package-dir` mapping
    (`pipeline/` is `podfleet.pipeline`) is not installed. This applies the same mapping by hand.
    """
    try:
        import podfleet.pipeline  # noqa: F401
    except ModuleNotFoundError:
        parent = types.ModuleType("podfleet")
        parent.__path__ = [str(ROOT / "handler")]
        sys.modules["podfleet"] = parent
        spec = importlib.util.spec_from_file_location(
            "podfleet.pipeline",
            ROOT / "pipeline" / "__init__.py",
            submodule_search_locations=[str(ROOT / "pipeline")],
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["podfleet.pipeline"] = module
        spec.loader.exec_module(module)


if __name__ == "__main__":
    _import_pipeline_library()
    from podfleet.pipeline.infer.bake import main

    sys.exit(main())
