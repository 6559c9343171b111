"""Start-up fitness checks (`runpod.serverless.register_fitness_check`): a broken host exits
before it takes a job. Filled in by the stages that need them (model load: issue 6)."""

from __future__ import annotations

__all__ = ["register_checks"]


def register_checks() -> None:
    """Register this worker's fitness checks with the RunPod SDK."""
    return None
