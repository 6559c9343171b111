"""The flashpoints inference stage: embed documents, score relevance, flag near-duplicates.

Every live document (title + text) of every item, plus each flashpoint's title, goes through the
model in ONE batched pass. Then, per flashpoint: relevance = cosine(document, flashpoint title);
a document whose cosine with an earlier source reaches NEAR_DUPLICATE_THRESHOLD points at it
(`near_duplicate_of`); the centroid is the normalised mean of the document vectors.

`podfleet.pipeline.infer` is imported inside `run`, so importing the pipeline stays light (no
numpy, no torch) for coordinator jobs.
"""

from __future__ import annotations

from loguru import logger
from podfleet.pipeline.errors import StageTimeout
from podfleet.pipeline.pipelines.flashpoints.models import FlashpointWork, SourceWork
from podfleet.pipeline.pipelines.flashpoints.stages import fail_items_without_sources
from podfleet.pipeline.stage import ItemState, RunContext

__all__ = ["EmbedStage", "document_text"]


def document_text(source: SourceWork) -> str:
    title = (source.title or "").strip()
    text = (source.text or "").strip()
    return f"{title}\n\n{text}" if title else text


class EmbedStage:
    name = "embed"

    async def run(self, items: list[ItemState[FlashpointWork]], ctx: RunContext) -> None:
        if not getattr(ctx.options, "embed", True):
            return
        import numpy as np
        from podfleet.pipeline.infer import centroid, embed_texts, near_duplicates

        docs: list[SourceWork] = [s for st in items for s in st.work.live_sources]
        texts = [document_text(s) for s in docs] + [st.work.item.title for st in items]
        infer = ctx.config.infer
        try:
            result = await embed_texts(
                texts, infer, ctx.resources, timeout_s=ctx.remaining_s(infer.timeout_s)
            )
        except StageTimeout as exc:
            for st in items:
                st.fail(self.name, exc.message, retryable=True)
            return
        logger.info("embedded {} texts: {}", len(texts), result.stats.to_dict())

        vectors = result.vectors
        for st in items:  # stored beside every vector, so vectors of two models never mix
            st.work.extras["embedding_model"] = infer.model_name
        for i, source in enumerate(docs):
            vector = vectors[i]
            if vector is None:
                source.fail(self.name, result.errors.get(i, "no embedding"))
            else:
                source.embedding = vector.tolist()
        for k, st in enumerate(items):
            title_vector = vectors[len(docs) + k]
            if title_vector is None:
                st.fail(self.name, f"flashpoint title: {result.errors.get(len(docs) + k)}")
                continue
            live = st.work.live_sources
            if not live:
                continue
            matrix = np.asarray([s.embedding for s in live], dtype=np.float32)
            relevance = matrix @ title_vector
            for source, score in zip(live, relevance, strict=True):
                source.relevance = round(float(score), 6)
            for source, earlier in zip(
                live, near_duplicates(matrix, infer.near_duplicate_threshold), strict=True
            ):
                source.near_duplicate_of = None if earlier is None else live[earlier].index
            center = centroid(matrix)
            st.work.centroid = None if center is None else center.tolist()
        fail_items_without_sources(items, self.name)
