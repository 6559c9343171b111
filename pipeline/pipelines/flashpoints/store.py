"""Loads flashpoints records into the database: idempotent upserts, optional per-date cleanup."""

from __future__ import annotations

import datetime as dt
from array import array
from typing import Any

from loguru import logger
from podfleet.pipeline.stage import RunContext
from podfleet.pipeline.store.db import get_engine, redact_url, upsert
from podfleet.pipeline.store.schema import documents, flashpoints, runs
from sqlalchemy import delete

__all__ = ["bytes_to_vector", "load_flashpoints", "vector_to_bytes"]


def vector_to_bytes(vector: list[float] | None) -> bytes | None:
    return None if vector is None else array("f", vector).tobytes()


def bytes_to_vector(blob: bytes | None) -> list[float] | None:
    if blob is None:
        return None
    out = array("f")
    out.frombytes(blob)
    return out.tolist()


def load_flashpoints(records: list[dict[str, Any]], ctx: RunContext) -> dict[str, Any]:
    """Write one run row, the flashpoints and their documents; returns row counts."""
    url = ctx.config.store.database_url
    engine = get_engine(url)
    now = dt.datetime.now(dt.UTC)
    fp_rows, doc_rows = [], []
    for rec in records:
        fp_rows.append(
            {
                "date": ctx.date,
                "flashpoint_id": rec["id"],
                "title": rec["title"],
                "documents": len(rec["documents"]),
                "words": sum(d["word_count"] for d in rec["documents"]),
                "centroid": vector_to_bytes(rec.get("centroid")),
                "job_id": ctx.job_id,
                "updated_at": now,
            }
        )
        for d in rec["documents"]:
            doc_rows.append(
                {
                    "date": ctx.date,
                    "flashpoint_id": rec["id"],
                    "source_key": d["source_key"],
                    "source_index": d["index"],
                    "url": d["url"],
                    "final_url": d["final_url"],
                    "http_status": d["http_status"],
                    "title": d["title"],
                    "text": d["text"],
                    "word_count": d["word_count"],
                    "content_hash": d["content_hash"],
                    "duplicate_of": d["duplicate_of"],
                    "near_duplicate_of": d["near_duplicate_of"],
                    "is_near_duplicate": d["near_duplicate_of"] is not None,
                    "relevance": d["relevance"],
                    "embedding": vector_to_bytes(d.get("embedding")),
                    "links": d["links"],
                    "updated_at": now,
                }
            )
    with engine.begin() as conn:
        deleted = 0
        if ctx.cleanup:
            deleted = conn.execute(delete(documents).where(documents.c.date == ctx.date)).rowcount
            conn.execute(delete(flashpoints).where(flashpoints.c.date == ctx.date))
        upsert(conn, flashpoints, fp_rows)
        upsert(conn, documents, doc_rows)
        run_row = {
            "job_id": ctx.job_id,
            "date": ctx.date,
            "trigger": ctx.trigger,
            "worker_id": ctx.worker_id,
            "items": len(records),
            "loaded_at": now,
        }
        upsert(conn, runs, [run_row])
    logger.info(
        "loaded {} flashpoints, {} documents into {}", len(fp_rows), len(doc_rows), redact_url(url)
    )
    return {
        "flashpoints": len(fp_rows),
        "documents": len(doc_rows),
        "cleaned": deleted,
        "database": engine.dialect.name,
    }
