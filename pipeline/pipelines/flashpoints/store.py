"""Loads flashpoints records into the database.

Rules (docs/store.md): each flashpoint is written in its own savepoint of one transaction, so an
item whose data the database refuses fails alone (non-retryable, naming the field when known);
a loaded flashpoint's documents are replaced by exactly this run's (no stale rows, one row per
source even when two share a URL); `cleanup` first deletes the date's rows; transient database
errors retry the whole load with jittered backoff within the job's deadline.
"""

from __future__ import annotations

import datetime as dt
from array import array
from dataclasses import dataclass
from typing import Any

from loguru import logger
from podfleet.pipeline.backoff import Backoff
from podfleet.pipeline.errors import StageError
from podfleet.pipeline.stage import RunContext
from podfleet.pipeline.store.db import get_engine, redact_url, upsert
from podfleet.pipeline.store.errors import db_error, is_transient
from podfleet.pipeline.store.schema import MODEL_NAME_MAX, documents, flashpoints, runs
from podfleet.pipeline.store.validate import bounded_key, string_problem, strings_problem
from sqlalchemy import and_, delete, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

__all__ = [
    "bytes_to_vector",
    "document_vectors",
    "load_flashpoints",
    "vector_to_bytes",
]


def load_retry(retry_s: float) -> Backoff:
    """Delay n uniform in [0, min(5 s, 0.25 s x 2^(n-1))], for at most `retry_s` (DB_RETRY_S)."""
    return Backoff(base_s=0.25, max_s=5.0, max_elapsed_s=retry_s)


def vector_to_bytes(vector: list[float] | None) -> bytes | None:
    return None if vector is None else array("f", vector).tobytes()


def bytes_to_vector(blob: bytes | None) -> list[float] | None:
    if blob is None:
        return None
    out = array("f")
    out.frombytes(blob)
    return out.tolist()


@dataclass
class _Item:
    flashpoint_id: str
    flashpoint: dict[str, Any]
    documents: list[dict[str, Any]]


def _problem(rec: dict[str, Any]) -> str | None:
    """`field: what is wrong` for the first value of the record the database cannot hold."""
    found = strings_problem({k: rec.get(k) for k in ("id", "title", "embedding_model")}, "")
    if found:
        return f"{found[0].lstrip('.')}: {found[1]}"
    model = rec.get("embedding_model")
    if model is not None and (p := string_problem(model, MODEL_NAME_MAX)):
        return f"embedding_model: {p}"
    dims = {len(v) for v in [rec.get("centroid")] if v is not None}
    for d in rec["documents"]:
        vector_free = {k: v for k, v in d.items() if k != "embedding"}
        found = strings_problem(vector_free, f"sources.{d['index']}")
        if found:
            return f"{found[0]}: {found[1]}"
        if d.get("embedding") is not None:
            dims.add(len(d["embedding"]))
    if len(dims) > 1:
        return f"embedding: vectors of {sorted(dims)} dimensions in one item (one model makes all)"
    return None


def _item(rec: dict[str, Any], ctx: RunContext, now: dt.datetime, job_id: str) -> _Item:
    model = rec.get("embedding_model")
    centroid = rec.get("centroid")
    fp_row = {
        "date": ctx.date,
        "flashpoint_id": rec["id"],
        "title": rec["title"],
        "documents": len(rec["documents"]),
        "words": sum(d["word_count"] for d in rec["documents"]),
        "centroid": vector_to_bytes(centroid),
        "embedding_model": model if centroid is not None else None,
        "embedding_dim": len(centroid) if centroid is not None else None,
        "job_id": job_id,
        "updated_at": now,
    }
    doc_rows = []
    for d in rec["documents"]:
        vector = d.get("embedding")
        doc_rows.append(
            {
                "date": ctx.date,
                "flashpoint_id": rec["id"],
                "source_index": d["index"],
                "source_key": d["source_key"],
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
                "embedding": vector_to_bytes(vector),
                "embedding_model": model if vector is not None else None,
                "embedding_dim": len(vector) if vector is not None else None,
                "links": d["links"],
                "updated_at": now,
            }
        )
    return _Item(rec["id"], fp_row, doc_rows)


def _write_item(conn: Connection, item: _Item) -> None:
    # The flashpoint row first: on PostgreSQL its row lock makes a concurrent load of the same
    # flashpoint wait, so the delete below sees that load's documents and replaces them.
    upsert(conn, flashpoints, [item.flashpoint])
    key = and_(
        documents.c.date == item.flashpoint["date"],
        documents.c.flashpoint_id == item.flashpoint_id,
    )
    conn.execute(delete(documents).where(key))
    upsert(conn, documents, item.documents)


def load_flashpoints(records: list[dict[str, Any]], ctx: RunContext) -> dict[str, Any]:
    """Write one run row, the flashpoints and their documents; returns row counts.

    Items that could not be stored are listed in `item_errors` ({item id: {message, retryable}}),
    which the runner turns into those items' errors; the counts are of rows written.
    """
    url = ctx.config.store.database_url
    now = dt.datetime.now(dt.UTC)
    item_errors: dict[str, dict[str, Any]] = {}
    items: list[_Item] = []
    for rec in records:
        problem = _problem(rec)
        if problem:
            item_errors[rec["id"]] = {"message": problem, "retryable": False}
        else:
            items.append(_item(rec, ctx, now, bounded_key(ctx.job_id)))
    items.sort(key=lambda it: it.flashpoint_id)  # one lock order: concurrent loads never deadlock

    def attempt() -> tuple[list[_Item], dict[str, StageError], int, str]:
        engine = get_engine(url)
        failed: dict[str, StageError] = {}
        written: list[_Item] = []
        connection = engine.connect().execution_options(sqlite_begin_immediate=True)
        with connection as conn, conn.begin():
            cleaned = 0
            if ctx.cleanup:
                cleaned = conn.execute(
                    delete(documents).where(documents.c.date == ctx.date)
                ).rowcount
                conn.execute(delete(flashpoints).where(flashpoints.c.date == ctx.date))
            for item in items:
                try:
                    with conn.begin_nested():
                        _write_item(conn, item)
                except Exception as exc:  # this item's data, unless the connection failed
                    if is_transient(exc):
                        raise
                    failed[item.flashpoint_id] = db_error(
                        exc, f"storing flashpoint {item.flashpoint_id!r}"
                    )
                else:
                    written.append(item)
            run_row = {
                "job_id": bounded_key(ctx.job_id),
                "date": ctx.date,
                "trigger": ctx.trigger,
                "worker_id": bounded_key(ctx.worker_id),
                "items": len(written),
                "loaded_at": now,
            }
            upsert(conn, runs, [run_row])
        return written, failed, cleaned, engine.dialect.name

    try:
        written, failed, cleaned, dialect = load_retry(ctx.config.store.retry_s).call(
            attempt,
            transient=is_transient,
            remaining_s=ctx.remaining_s,
            what="database load",
            describe=lambda exc: db_error(exc, "loading").message,
        )
    except SQLAlchemyError as exc:
        raise db_error(exc, "loading") from None
    for item_id, err in failed.items():
        item_errors[item_id] = {"message": err.message, "retryable": err.retryable}
    n_docs = sum(len(it.documents) for it in written)
    logger.info(
        "loaded {} flashpoints, {} documents into {}", len(written), n_docs, redact_url(url)
    )
    stats: dict[str, Any] = {
        "flashpoints": len(written),
        "documents": n_docs,
        "cleaned": cleaned,
        "database": dialect,
    }
    if item_errors:
        stats["item_errors"] = item_errors
    return stats


def document_vectors(
    conn: Connection, *, model: str, dim: int, date: dt.date | None = None
) -> list[tuple[str, int, list[float]]]:
    """(flashpoint id, source index, vector) of the documents embedded by exactly `model` at
    `dim` dimensions: vectors of another model, or of an unknown one, are never returned."""
    query = select(
        documents.c.flashpoint_id, documents.c.source_index, documents.c.embedding
    ).where(
        documents.c.embedding_model == model,
        documents.c.embedding_dim == dim,
        documents.c.embedding.is_not(None),
    )
    if date is not None:
        query = query.where(documents.c.date == date)
    rows = conn.execute(query.order_by(documents.c.flashpoint_id, documents.c.source_index))
    return [(fp, index, bytes_to_vector(blob) or []) for fp, index, blob in rows]
