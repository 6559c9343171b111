"""The flashpoints inference stage: embed documents, score relevance, flag near-duplicates.

SEAM (issue 2): a no-op until issue 6 fills it in with `pipeline.infer`.
"""

from __future__ import annotations

from pipeline.pipelines.flashpoints.models import FlashpointWork
from pipeline.stage import ItemState, RunContext

__all__ = ["EmbedStage"]


class EmbedStage:
    name = "embed"

    async def run(self, items: list[ItemState[FlashpointWork]], ctx: RunContext) -> None:
        return None
