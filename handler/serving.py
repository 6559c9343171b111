"""`serve()`: a project's `handler.py` in two lines.

    from podfleet import serve
    serve()

Like `runpod.serverless.start(...)` in a RunPod worker template, it hands this process to RunPod's
worker loop (one local run with `--test_input` or `./test_input.json`, else the production loop),
with podfleet's handler in front of the project's pipelines.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from podfleet.pipeline.stage import Pipeline

__all__ = ["prepare", "serve"]

_serving = False


def prepare(
    pipelines: Iterable[Pipeline | str] = (),
    *,
    builtins: bool = False,
    origin: str = "serve()",
    origin_file: str | None = None,
) -> list[str]:
    """Register `pipelines`, discover the rest, check their settings; returns the names served.

    Strings are modules (or `module:attr`) to import. `builtins=False` leaves out podfleet's own
    pipelines (flashpoints, synthetic) unless something names them, so the worker's start-up check
    prepares only the resources the project's pipelines declare.
    """
    from podfleet.pipeline import registry

    registry.configure(builtins=builtins)
    for target in pipelines:
        if isinstance(target, Pipeline):
            registry.register(target, origin=origin, origin_file=origin_file)
        else:
            registry.import_pipelines(str(target), origin)
    served = registry.registered_pipelines()
    if not served:
        raise SystemExit(
            "podfleet: no pipeline is registered. Register one in handler.py "
            "(podfleet.register(Pipeline(...))), pass it to serve(), declare an entry point in "
            "the group podfleet.pipelines, or name its module in PODFLEET_PIPELINES "
            "(docs/pipelines.md)."
        )
    for pipeline in served.values():
        pipeline.settings()  # a bad FOO_* variable fails here, before the first job
    return sorted(served)


def serve(*pipelines: Pipeline | str, builtins: bool = False) -> None:
    """Run this process as a RunPod worker for the registered pipelines (and `pipelines`).

    Does nothing when the calling module is imported rather than run (`import handler` from a
    test, or PODFLEET_PIPELINES naming it), so the same file can both define and serve.
    """
    global _serving
    caller = sys._getframe(1).f_globals
    if caller.get("__name__") != "__main__" or _serving:
        return
    _serving = True
    from podfleet.pipeline.registry import DuplicatePipelineError, PipelineImportError
    from podfleet.pipeline.stage import PipelineSettingsError

    try:
        prepare(pipelines, builtins=builtins, origin="__main__", origin_file=caller.get("__file__"))
    except (DuplicatePipelineError, PipelineImportError, PipelineSettingsError) as exc:
        raise SystemExit(f"podfleet: {exc}") from None  # a clear line, not a traceback

    from podfleet.main import main

    main()
