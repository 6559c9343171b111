"""Items by reference (`items_from`): plan a source into contiguous chunks, read a chunk's rows.

A source is a JSON Lines file (a path under `ITEMS_FROM_ROOTS`, or an http(s) URL read by
`podfleet.sources_http` under the scraper's address rules) or a table of the job's database.
Planning streams the source twice — pass 1 counts its rows, pass 2 records where each chunk
starts and ends (byte offset and length, or first and last key) — so it holds O(chunks), never
O(rows). A sibling then reads only its own rows: a seek, an HTTP Range request, a key range.

JSON Lines: every line is a row (a blank line is a bad row; a last line without its newline is
a row). Positions are 0-based, as an item's id `#<position>` and a result's `index`; a row's
problem names `items_from row <position>` and its line (1-based) or key, and what was expected,
never the row's content. See docs/items.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from podfleet.envelope import ChunkRef, ItemsSource, check_json_value
from podfleet.pipeline.errors import InputError
from podfleet.settings import Settings

__all__ = [
    "BLOCK_BYTES",
    "MAX_ROW_BYTES",
    "MAX_WHOLE_SOURCE_ROWS",
    "Row",
    "is_url",
    "parse_row",
    "plan_source",
    "read_rows",
    "resolve_path",
]

MAX_ROW_BYTES = 1_000_000  # one row (line or table value); a longer one is a bad row
MAX_WHOLE_SOURCE_ROWS = 100_000  # read_rows(ref=None): worker mode without fan-out
BLOCK_BYTES = 1 << 20  # read size of the streaming passes
Row = tuple[int, dict[str, Any] | str]
_TOO_LONG = object()  # a line longer than MAX_ROW_BYTES (its bytes are dropped as they stream)


def is_url(text: str) -> bool:
    """`jsonl` names a URL (any `scheme://`; only http and https are then read)."""
    head = text[:16].lower()
    return "://" in head and head.split("://", 1)[0].isalpha()


def no_items_error() -> InputError:
    return InputError("items_from", "invalid input: items_from: the source holds no items")


def changed_error(field: str) -> InputError:
    return InputError(
        field, f"invalid input: {field}: the source changed while it was read; keep it unchanged"
    )


# --- rows -------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


class _NotJsonNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJsonNumber(f"{name} is not a JSON number")


def parse_row(position: int, raw: bytes | str | object | None, where: str) -> dict[str, Any] | str:
    """The row as an item dict, or its problem ("items_from row 3 (line 4): expected ...").
    `raw`: the row's bytes (or text from a table), `_TOO_LONG`, or None (missing)."""
    head = f"items_from row {position} ({where})"
    if raw is None:
        return f"{head}: missing (the source changed after the job was planned)"
    if raw is _TOO_LONG:
        return f"{head}: expected a row of at most {MAX_ROW_BYTES:,} bytes, got a longer one"
    if isinstance(raw, bytes):
        if len(raw) > MAX_ROW_BYTES:
            return f"{head}: expected a row of at most {MAX_ROW_BYTES:,} bytes, got a longer one"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"{head}: expected UTF-8 text, got an invalid byte at offset {exc.start}"
    else:
        text = str(raw)
        if len(text) > MAX_ROW_BYTES:
            return f"{head}: expected a row of at most {MAX_ROW_BYTES:,} bytes, got a longer one"
    text = text.removeprefix("\ufeff") if position == 0 else text
    if not text.strip():
        return f"{head}: expected a JSON object, got a blank line"
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return f"{head}: expected a JSON object nested at most 32 levels, got a deeper one"
    except json.JSONDecodeError as exc:
        return f"{head}: expected a JSON object, got invalid JSON ({exc.msg} at column {exc.colno})"
    except _NotJsonNumber as exc:
        return f"{head}: expected a JSON object, got invalid JSON ({exc})"
    except ValueError:  # an integer of more digits than Python converts (4,300)
        return f"{head}: expected an integer within 64 bits, got a far longer one"
    if not isinstance(value, dict):
        return f"{head}: expected a JSON object, got {_kind(value)}"
    try:
        check_json_value(value)
    except InputError as exc:
        return f"{head}: {exc.message.removeprefix('invalid input: ')}"
    return value


def jsonl_rows(lines: Iterable[Any], first: int, count: int | None) -> list[Row]:
    """`count` rows from `first` (None: all the lines given); missing ones are problems."""
    rows: list[Row] = []
    for i, raw in enumerate(lines):
        if count is not None and i >= count:
            break
        position = first + i
        rows.append((position, parse_row(position, raw, f"line {position + 1}")))
    if count is not None:
        for position in range(first + len(rows), first + count):
            rows.append((position, parse_row(position, None, f"line {position + 1}")))
    return rows


# --- JSON Lines, byte level (shared by files and URLs) -----------------------------------------


class RowCounter:
    """Pass 1: rows in a stream of blocks (newlines, plus a last line without its newline)."""

    def __init__(self) -> None:
        self.newlines = 0
        self.tail = False  # bytes after the last newline

    def feed(self, block: bytes) -> None:
        if block:
            self.newlines += block.count(b"\n")
            self.tail = not block.endswith(b"\n")

    @property
    def rows(self) -> int:
        return self.newlines + self.tail


class ChunkCutter:
    """Pass 2: the byte offset and length of each chunk of consecutive rows (`sizes`)."""

    def __init__(self, sizes: list[int]) -> None:
        self.stops: list[int] = []
        total = 0
        for size in sizes:
            total += size
            self.stops.append(total)
        self.refs: list[ChunkRef] = []
        self.row = 0  # rows ended so far
        self.pos = 0  # bytes seen so far
        self.chunk_offset = 0
        self.line_open = False

    def _emit(self, end: int) -> None:
        start = self.stops[len(self.refs) - 1] if self.refs else 0
        stop = self.stops[len(self.refs)]
        self.refs.append(
            ChunkRef(
                start=start, stop=stop, offset=self.chunk_offset, length=end - self.chunk_offset
            )
        )
        self.chunk_offset = end

    def feed(self, block: bytes) -> None:
        at, have = 0, block.count(b"\n")
        while len(self.refs) < len(self.stops):
            need = self.stops[len(self.refs)] - self.row
            if have < need:
                break
            for _ in range(need):
                at = block.index(b"\n", at) + 1
            self.row += need
            have -= need
            self._emit(self.pos + at)
        self.row += have  # rows short of the next cut (or past the last: the source grew)
        self.pos += len(block)
        if block:
            self.line_open = not block.endswith(b"\n")

    def finish(self, field: str) -> list[ChunkRef]:
        if self.line_open:
            self.row += 1
            if len(self.refs) < len(self.stops) and self.row == self.stops[len(self.refs)]:
                self._emit(self.pos)
        if len(self.refs) != len(self.stops) or self.row != self.stops[-1]:
            raise changed_error(field)
        return self.refs


class LineSplitter:
    """Lines of a stream of blocks; a line over MAX_ROW_BYTES comes out as `_TOO_LONG` without
    ever being held whole."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.overflow = False

    def feed(self, block: bytes) -> list[Any]:
        lines: list[Any] = []
        at = 0
        while (end := block.find(b"\n", at)) >= 0:
            if self.overflow or len(self.buffer) + end - at > MAX_ROW_BYTES:
                lines.append(_TOO_LONG)
            else:
                lines.append(bytes(self.buffer + block[at:end]))
            self.buffer.clear()
            self.overflow = False
            at = end + 1
        if not self.overflow:
            self.buffer += block[at:]
            if len(self.buffer) > MAX_ROW_BYTES:
                self.overflow, self.buffer = True, bytearray()
        return lines

    def finish(self) -> list[Any]:
        if self.overflow:
            return [_TOO_LONG]
        return [bytes(self.buffer)] if self.buffer else []


def check_sizes(sizes: list[int], rows: int) -> list[int]:
    if any(s < 1 for s in sizes) or sum(sizes) != rows:
        raise ValueError(f"sizes_for({rows}) gave sizes that do not cover the rows: {sizes[:5]}")
    return sizes


# --- files ------------------------------------------------------------------------------------


def resolve_path(text: str, settings: Settings) -> Path:
    """The file `text` names (symlinks resolved), if it lies under ITEMS_FROM_ROOTS."""
    roots = [Path(r).resolve() for r in settings.items_from_roots]
    try:
        path = Path(text).resolve()
    except (OSError, ValueError):
        raise InputError(
            "items_from.jsonl", "invalid input: items_from.jsonl: expected a file path or URL"
        ) from None
    if not any(path.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "none (ITEMS_FROM_ROOTS is empty)"
        raise InputError(
            "items_from.jsonl",
            f"invalid input: items_from.jsonl: {_shown_path(text)} is outside the directories "
            f"items may be read from (ITEMS_FROM_ROOTS: {allowed})",
        )
    return path


def _shown_path(text: str) -> str:
    return repr(text if len(text) <= 200 else text[:197] + "...")


def _open(path: Path, shown: str) -> Any:
    """The file, opened for reading; never blocks on a FIFO or device (only regular files)."""
    field = "items_from.jsonl"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(field, f"invalid input: {field}: no such file {shown}") from None
    except PermissionError:
        raise InputError(field, f"invalid input: {field}: {shown} cannot be read") from None
    except OSError as exc:
        raise InputError(field, f"invalid input: {field}: {shown}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(field, f"invalid input: {field}: {shown} is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=0)


def _file_blocks(file: Any, length: int | None = None) -> Iterable[bytes]:
    left = length
    while left is None or left > 0:
        block = file.read(BLOCK_BYTES if left is None else min(BLOCK_BYTES, left))
        if not block:
            return
        if left is not None:
            left -= len(block)
        yield block


def _plan_file(text: str, settings: Settings, sizes_for: Callable[[int], list[int]]) -> Any:
    path = resolve_path(text, settings)
    with _open(path, _shown_path(text)) as file:
        counter = RowCounter()
        for block in _file_blocks(file):
            counter.feed(block)
        if counter.rows == 0:
            raise no_items_error()
        sizes = check_sizes(sizes_for(counter.rows), counter.rows)
        file.seek(0)
        cutter = ChunkCutter(sizes)
        for block in _file_blocks(file):
            cutter.feed(block)
        return counter.rows, cutter.finish("items_from.jsonl")


def _read_file(text: str, ref: ChunkRef | None, settings: Settings) -> list[Row]:
    path = resolve_path(text, settings)
    with _open(path, _shown_path(text)) as file:
        if ref is not None and ref.offset is not None and ref.length is not None:
            file.seek(ref.offset)
            lines = split_lines(_file_blocks(file, ref.length))
            return jsonl_rows(lines, ref.start, ref.size)
        lines = split_lines(_file_blocks(file))
        if ref is not None:  # no offset: skip to the chunk's rows
            return jsonl_rows(_skip(lines, ref.start), ref.start, ref.size)
        return whole_source(lines)


def split_lines(blocks: Iterable[bytes]) -> Iterable[Any]:
    splitter = LineSplitter()
    for block in blocks:
        yield from splitter.feed(block)
    yield from splitter.finish()


def _skip(lines: Iterable[Any], count: int) -> Iterable[Any]:
    for i, line in enumerate(lines):
        if i >= count:
            yield line


def whole_source(lines: Iterable[Any]) -> list[Row]:
    """Every row, up to MAX_WHOLE_SOURCE_ROWS (more: an InputError naming items_from)."""
    kept: list[Any] = []
    for line in lines:
        if len(kept) == MAX_WHOLE_SOURCE_ROWS:
            raise too_many_error()
        kept.append(line)
    if not kept:
        raise no_items_error()
    return jsonl_rows(kept, 0, None)


def too_many_error() -> InputError:
    return InputError(
        "items_from",
        f"invalid input: items_from: a job run without fan-out reads at most "
        f"{MAX_WHOLE_SOURCE_ROWS:,} items from its source; this one holds more (configure an "
        f"endpoint, RUNPOD_ENDPOINT_ID, so that the job fans out)",
    )


# --- the public surface -----------------------------------------------------------------------


async def plan_source(
    source: ItemsSource, settings: Settings, sizes_for: Callable[[int], list[int]]
) -> tuple[int, list[ChunkRef]]:
    """(row count, one contiguous ChunkRef per size of `sizes_for(rows)`), in memory O(chunks).
    InputError naming items_from.jsonl / items_from.table (...) when the source cannot be used."""
    if source.table is not None:
        from podfleet.sources_table import plan_table

        return await asyncio.to_thread(plan_table, source, settings, sizes_for)
    text = source.jsonl or ""
    if is_url(text):
        from podfleet.sources_http import plan_url

        return await plan_url(text, settings, sizes_for)
    return await asyncio.to_thread(_plan_file, text, settings, sizes_for)


async def read_rows(source: ItemsSource, ref: ChunkRef | None, settings: Settings) -> list[Row]:
    """[(position, item dict or its problem)] of the rows `ref` names (None: the whole source,
    at most MAX_WHOLE_SOURCE_ROWS), in position order."""
    if source.table is not None:
        from podfleet.sources_table import read_table

        return await asyncio.to_thread(read_table, source, ref, settings)
    text = source.jsonl or ""
    if is_url(text):
        from podfleet.sources_http import read_url

        return await read_url(text, ref, settings)
    return await asyncio.to_thread(_read_file, text, ref, settings)
