"""Database errors: transient ones (retry the load) and deterministic ones (fail the item).

Transient: the connection was refused, reset or lost; PostgreSQL is shutting down, starting up, or
out of connections; a serialisation failure or deadlock; SQLite is locked. Everything else (a value
too long, a constraint violated, a missing table, a btree entry over its size limit) fails the same
way on every try and is never flagged retryable. Matched by class, `sqlstate` and message, so this
module imports neither psycopg nor sqlite3.
"""

from __future__ import annotations

from podfleet.pipeline.errors import StageError

__all__ = ["db_error", "is_transient"]

# SQLSTATE codes worth retrying; class 08 (connection exception) is retried as a whole.
_TRANSIENT_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "53300",  # too_many_connections
    "57P01",  # admin_shutdown (server restarting)
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up / shutting down)
    "58030",  # io_error
}
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database is busy")


def _orig(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or exc


def is_transient(exc: BaseException) -> bool:
    """True when trying again later may succeed."""
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("sqlalchemy"):
        if getattr(exc, "connection_invalidated", False):
            return True  # SQLAlchemy saw a disconnect
        if name in ("DisconnectionError", "TimeoutError"):  # pool checkout
            return True
    orig = _orig(exc)
    orig_module = type(orig).__module__
    if orig_module.startswith("psycopg"):
        state = getattr(orig, "sqlstate", None)
        if state is None:  # no server answer: connect refused/reset, server closed the link
            return type(orig).__name__ in ("OperationalError", "InterfaceError")
        return state.startswith("08") or state in _TRANSIENT_SQLSTATES
    if orig_module.startswith("sqlite3"):
        return type(orig).__name__ == "OperationalError" and any(
            text in str(orig) for text in _SQLITE_TRANSIENT
        )
    return isinstance(orig, ConnectionError | TimeoutError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def db_error(exc: BaseException, doing: str) -> StageError:
    """Our error for a database failure; the message never holds SQL, parameters or a password."""
    orig = _orig(exc)
    state = getattr(orig, "sqlstate", None)
    kind = type(orig).__name__ + (f" {state}" if state else "")
    return StageError(
        f"database error while {doing} ({kind}): {_first_line(orig)}",
        retryable=is_transient(exc),
        stage="load",
    )
