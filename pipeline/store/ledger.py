"""The chunk ledger: one row per fan-out (`fanouts`) and per chunk of it (`fanout_chunks`).

A coordinator writes its plan, every attempt (before `/run`) and every sibling job id (when `/run`
answers); a sibling claims `(fanout_id, chunk, attempt)` when it starts and writes its outcome
when it ends. The attempt number is the claim token: a claim is ONE conditional UPDATE, so of
several processes claiming one attempt exactly one is granted, on SQLite and PostgreSQL alike.
Every write is one transaction (batched calls included); on SQLite it begins IMMEDIATE, so
writers queue on `busy_timeout` instead of failing. Sync calls: async callers use
`asyncio.to_thread`. docs/store.md, "The chunk ledger".
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from podfleet.pipeline.store.db import get_engine
from podfleet.pipeline.store.schema import fanout_chunks as C
from podfleet.pipeline.store.schema import fanouts as F
from podfleet.pipeline.store.validate import bounded_key
from sqlalchemy import JSON, Engine, bindparam, case, insert, select, update
from sqlalchemy.engine import Connection

__all__ = ["CHUNKS_TABLE", "ChunkRow", "Claim", "Ledger", "LedgerConflict"]

CHUNKS_TABLE = "fanout_chunks"
FINISHED = ("done", "failed")
INSERT_BATCH = 1000  # plan rows per executemany
IN_BATCH = 500  # chunk numbers per IN (...) list

_ROW_COLUMNS = (C.c.chunk, C.c.positions, C.c.ref, C.c.state, C.c.attempt, C.c.sibling_ids,
                C.c.claimed_by, C.c.duplicates)  # fmt: skip


class LedgerConflict(Exception):
    """The fan-out id is already in the ledger with another fingerprint (another input)."""


@dataclass
class ChunkRow:
    chunk: int
    positions: list[int] | None = None  # inline items: their input positions
    ref: dict[str, Any] | None = None  # items_from: ChunkRef.model_dump()
    state: str = "pending"  # pending|submitting|submitted|local|done|failed
    attempt: int = 0
    sibling_ids: list[str] = field(default_factory=list)
    claimed_by: str | None = None
    duplicates: int = 0


@dataclass
class Claim:
    granted: bool
    reason: str | None = None  # "done" | "superseded" | "duplicate" | "unknown"
    holder: str | None = None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _batches(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class Ledger:
    """The ledger in the database at `url` (migrated to head on first use, under a lock)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:  # lazily: constructing a Ledger never touches the database
            self._engine = get_engine(self.url)
        return self._engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        conn_cm = self.engine.connect().execution_options(sqlite_begin_immediate=True)
        with conn_cm as conn, conn.begin():
            yield conn

    # -- the coordinator's side ---------------------------------------------------------------

    def open_fanout(
        self,
        fanout_id: str,
        *,
        job_id: str,
        fingerprint: str,
        items: int,
        plan: Callable[[], list[ChunkRow]],
    ) -> tuple[list[ChunkRow], bool]:
        """(the chunk rows without outcomes, resumed?): the stored plan when the fan-out is known
        with this fingerprint, else `plan()` stored (batched). LedgerConflict on another one."""
        fid, now = bounded_key(fanout_id), _now()
        with self._write() as conn:
            if not self._create(conn, fid, bounded_key(job_id), fingerprint, items, now):
                known = conn.execute(select(F.c.fingerprint).where(F.c.fanout_id == fid)).scalar()
                if known != fingerprint:
                    raise LedgerConflict(
                        f"fan-out {fanout_id!r} is in the ledger with another input (fingerprint "
                        f"{str(known)[:12]}..., this job's {fingerprint[:12]}...)"
                    )
                conn.execute(
                    update(F)
                    .where(F.c.fanout_id == fid)
                    .values(job_id=bounded_key(job_id), state="open", updated_at=now)
                )
                return self._rows(conn, fid), True
            rows = plan()
            conn.execute(update(F).where(F.c.fanout_id == fid).values(chunks=len(rows)))
            for batch in _batches(rows, INSERT_BATCH):
                conn.execute(insert(C), [self._plan_row(fid, r, now) for r in batch])
            return rows, False

    @staticmethod
    def _create(
        conn: Connection, fid: str, job_id: str, fingerprint: str, items: int, now: dt.datetime
    ) -> bool:
        """Insert the fan-out unless it exists (a concurrent opener waits, then finds it)."""
        values = dict(fanout_id=fid, job_id=job_id, fingerprint=fingerprint, items=items,
                      chunks=0, state="open", created_at=now, updated_at=now)  # fmt: skip
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
        stmt = (
            dialect_insert(F).values(**values).on_conflict_do_nothing(index_elements=["fanout_id"])
        )
        # RETURNING, not rowcount: psycopg reports -1 for this INSERT
        return conn.execute(stmt.returning(F.c.fanout_id)).first() is not None

    @staticmethod
    def _plan_row(fid: str, row: ChunkRow, now: dt.datetime) -> dict[str, Any]:
        return asdict(row) | dict(fanout_id=fid, claimed_at=None, outcome=None, created_at=now,
                                  updated_at=now)  # fmt: skip

    @staticmethod
    def _rows(conn: Connection, fid: str) -> list[ChunkRow]:
        query = select(*_ROW_COLUMNS).where(C.c.fanout_id == fid).order_by(C.c.chunk)
        return [ChunkRow(*r) for r in conn.execute(query)]  # the columns in the fields' order

    def mark_attempts(self, fanout_id: str, marks: list[tuple[int, int, str]]) -> None:
        """(chunk, attempt, "submitting"|"local") before dispatch, one transaction. A done row
        stays done; an attempt never goes back; a new attempt clears the old one's claim."""
        if not marks:
            return
        newer = C.c.attempt < bindparam("b_attempt")
        stmt = (
            update(C)
            .where(
                C.c.fanout_id == bindparam("b_fid"),
                C.c.chunk == bindparam("b_chunk"),
                C.c.state != "done",
                C.c.attempt <= bindparam("b_attempt"),
            )
            .values(
                attempt=bindparam("b_attempt"),
                state=bindparam("b_state"),
                claimed_by=case((newer, None), else_=C.c.claimed_by),
                claimed_at=case((newer, None), else_=C.c.claimed_at),
                updated_at=bindparam("b_now"),
            )
        )
        fid, now = bounded_key(fanout_id), _now()
        params = [
            {"b_fid": fid, "b_chunk": c, "b_attempt": a, "b_state": s, "b_now": now}
            for c, a, s in sorted(marks)
        ]
        with self._write() as conn:
            conn.execute(stmt, params)

    def record_siblings(self, fanout_id: str, pairs: list[tuple[int, int, str]]) -> None:
        """(chunk, attempt, sibling job id) when `/run` answers, one transaction: the id is
        appended to `sibling_ids`; the row becomes `submitted` if that attempt is still its."""
        if not pairs:
            return
        fid, now = bounded_key(fanout_id), _now()
        with self._write() as conn:
            current: dict[int, dict[str, Any]] = {}
            wanted = sorted({c for c, _, _ in pairs})
            for batch in _batches(wanted, IN_BATCH):
                query = (
                    select(C.c.chunk, C.c.attempt, C.c.state, C.c.sibling_ids)
                    .where(C.c.fanout_id == fid, C.c.chunk.in_(batch))
                    .with_for_update()
                )
                for r in conn.execute(query):
                    current[r.chunk] = {"ids": list(r.sibling_ids or []), "state": r.state,
                                        "attempt": r.attempt}  # fmt: skip
            for chunk, attempt, sibling_id in pairs:
                row = current.get(chunk)
                if row is None:
                    continue
                if sibling_id not in row["ids"]:
                    row["ids"].append(sibling_id)
                if attempt == row["attempt"] and row["state"] not in FINISHED:
                    row["state"] = "submitted"
            params = [
                {"b_fid": fid, "b_chunk": c, "b_ids": r["ids"], "b_state": r["state"], "b_now": now}
                for c, r in sorted(current.items())
            ]
            if params:
                stmt = (
                    update(C)
                    .where(C.c.fanout_id == bindparam("b_fid"), C.c.chunk == bindparam("b_chunk"))
                    .values(
                        sibling_ids=bindparam("b_ids", type_=JSON),
                        state=bindparam("b_state"),
                        updated_at=bindparam("b_now"),
                    )
                )
                conn.execute(stmt, params)

    def record_outcomes(
        self, fanout_id: str, outcomes: list[tuple[int, int, str, dict[str, Any]]]
    ) -> None:
        """(chunk, attempt, "done"|"failed", outcome) in one transaction; a done row stays done
        (the first done outcome wins, the sibling's own `finish` included)."""
        if not outcomes:
            return
        stmt = (
            update(C)
            .where(
                C.c.fanout_id == bindparam("b_fid"),
                C.c.chunk == bindparam("b_chunk"),
                C.c.state != "done",
            )
            .values(
                state=bindparam("b_state"),
                outcome=bindparam("b_outcome", type_=JSON),
                updated_at=bindparam("b_now"),
            )
        )
        fid, now = bounded_key(fanout_id), _now()
        params = [
            {"b_fid": fid, "b_chunk": c, "b_state": s, "b_outcome": o, "b_now": now}
            for c, _a, s, o in sorted(outcomes, key=lambda t: t[0])
        ]
        with self._write() as conn:
            conn.execute(stmt, params)

    def close_fanout(self, fanout_id: str, state: str, summary: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                update(F)
                .where(F.c.fanout_id == bounded_key(fanout_id))
                .values(state=state, summary=summary, updated_at=_now())
            )

    # -- the sibling's side -------------------------------------------------------------------

    def claim(self, fanout_id: str, chunk: int, attempt: int, job_id: str) -> Claim:
        """Take `attempt` of `chunk` for `job_id`, atomically: granted when the chunk is not
        finished and the attempt is the row's (unclaimed, or already this job's) or newer."""
        fid, holder, now = bounded_key(fanout_id), bounded_key(job_id), _now()
        key = (C.c.fanout_id == fid) & (C.c.chunk == chunk)
        free = (C.c.attempt == attempt) & (C.c.claimed_by.is_(None) | (C.c.claimed_by == holder))
        with self._write() as conn:
            granted = conn.execute(
                update(C)
                .where(key, C.c.state.not_in(FINISHED), free | (C.c.attempt < attempt))
                .values(attempt=attempt, claimed_by=holder, claimed_at=now, updated_at=now)
            ).rowcount
            if granted == 1:
                return Claim(True)
            row = conn.execute(select(C.c.state, C.c.attempt, C.c.claimed_by).where(key)).first()
            if row is None:
                return Claim(False, "unknown")
            if row.state in FINISHED:  # failed counts as finished: its outcome is stored
                reason = "done"
            elif row.attempt > attempt:
                reason = "superseded"
            else:
                reason = "duplicate"
            conn.execute(update(C).where(key).values(duplicates=C.c.duplicates + 1, updated_at=now))
            return Claim(False, reason, row.claimed_by)

    def finish(
        self, fanout_id: str, chunk: int, attempt: int, job_id: str, outcome: dict[str, Any]
    ) -> bool:
        """The sibling's own outcome: the row becomes done unless it already is (False)."""
        with self._write() as conn:
            return (
                conn.execute(
                    update(C)
                    .where(
                        C.c.fanout_id == bounded_key(fanout_id),
                        C.c.chunk == chunk,
                        C.c.state != "done",
                    )
                    .values(state="done", outcome=outcome, updated_at=_now())
                ).rowcount
                == 1
            )

    # -- reads ----------------------------------------------------------------------------------

    def fanout(self, fanout_id: str) -> dict[str, Any] | None:
        """The fan-out's own row (id, job id, fingerprint, items, chunks, state, summary)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(F).where(F.c.fanout_id == bounded_key(fanout_id))).first()
        return None if row is None else dict(row._mapping)

    def outcomes(self, fanout_id: str, chunks: list[int]) -> dict[int, dict[str, Any]]:
        """{chunk: outcome} of those of `chunks` that have one."""
        fid, found = bounded_key(fanout_id), {}
        with self.engine.connect() as conn:
            for batch in _batches(sorted(set(chunks)), IN_BATCH):
                query = select(C.c.chunk, C.c.outcome).where(
                    C.c.fanout_id == fid, C.c.chunk.in_(batch), C.c.outcome.is_not(None)
                )
                found.update({r.chunk: r.outcome for r in conn.execute(query) if r.outcome})
        return found

    def rows(self, fanout_id: str) -> list[ChunkRow]:
        with self.engine.connect() as conn:
            return self._rows(conn, bounded_key(fanout_id))

    def summary(self, fanout_id: str) -> dict[str, Any]:
        """Chunks by state, the sum of their attempt numbers, sibling ids and refused claims."""
        query = select(C.c.state, C.c.attempt, C.c.sibling_ids, C.c.duplicates).where(
            C.c.fanout_id == bounded_key(fanout_id)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {
            "chunks": len(rows),
            "states": dict(sorted(Counter(r.state for r in rows).items())),
            "attempts": sum(r.attempt for r in rows),
            "siblings": sum(len(r.sibling_ids or []) for r in rows),
            "duplicates": sum(r.duplicates for r in rows),
        }

    def iter_results(self, fanout_id: str) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """(input position, result or None) for every position 0..items-1, in input order, one
        small batch of chunk outcomes at a time (ledger_read.py)."""
        from podfleet.pipeline.store.ledger_read import iter_results

        return iter_results(self, fanout_id)

    def iter_errors(self, fanout_id: str) -> Iterator[dict[str, Any]]:
        """Every chunk's item errors, chunks in input order."""
        from podfleet.pipeline.store.ledger_read import iter_errors

        return iter_errors(self, fanout_id)
