"""Checks a value passes before it is written, so that one item's odd data fails that item alone,
with a message naming its field, instead of failing the whole load inside the database."""

from __future__ import annotations

import hashlib
from typing import Any

from podfleet.pipeline.store.schema import JOB_ID_MAX

__all__ = ["bounded_key", "string_problem", "strings_problem"]


def string_problem(value: str, max_chars: int | None = None) -> str | None:
    """Why `value` cannot be stored in a text column, or None."""
    if "\x00" in value:
        at = value.index("\x00")
        return f"contains a NUL character (U+0000) at position {at}, which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate (U+{ord(value[exc.start]):04X}), which is not valid text"
    if max_chars is not None and len(value) > max_chars:
        return f"is {len(value)} characters; at most {max_chars} can be stored"
    return None


def strings_problem(value: Any, path: str) -> tuple[str, str] | None:
    """The first (field path, problem) among the strings in a JSON-like value, or None."""
    if isinstance(value, str):
        problem = string_problem(value)
        return None if problem is None else (path, problem)
    if isinstance(value, dict):
        for key, inner in value.items():
            found = strings_problem(str(key), path) or strings_problem(inner, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, inner in enumerate(value):
            found = strings_problem(inner, f"{path}.{i}")
            if found:
                return found
    return None


def bounded_key(value: str, max_chars: int = JOB_ID_MAX) -> str:
    """`value` as stored in a bounded key column: itself when it fits, else a still unique form.

    A job id (or worker id) is not an item's data, so one too long or odd for its column must not
    fail the items' load: it is stored as its first characters, `~`, and a digest of the whole.
    """
    if string_problem(value, max_chars) is None:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    head = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return f"{head[: max_chars - 17]}~{digest}"
