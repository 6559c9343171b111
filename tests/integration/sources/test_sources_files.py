"""items_from.jsonl as a path: real files under ITEMS_FROM_ROOTS (symlinks, FIFOs, missing and
unreadable files), chunks read by seek, and a 100,000-row file planned in bounded memory."""

from __future__ import annotations

import asyncio
import json
import os
import tracemalloc
from pathlib import Path

import pytest
from podfleet.envelope import ChunkRef, ItemsSource
from podfleet.pipeline.errors import InputError
from podfleet.settings import Settings
from podfleet.sources import MAX_WHOLE_SOURCE_ROWS, plan_source, read_rows


def _sizes(size: int):
    return lambda n: [min(size, n - i) for i in range(0, n, size)]


@pytest.fixture
def root(clean_env: Path) -> Path:
    path = clean_env / "volume"
    path.mkdir()
    return path


def _settings(*roots: Path | str) -> Settings:
    return Settings(items_from_roots=[str(r) for r in roots])


def _write(path: Path, n: int, pad: int = 0) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"n": i, "pad": "p" * pad}) + "\n")


async def test_plan_and_read_every_chunk(root):
    _write(root / "items.jsonl", 1001)
    source = ItemsSource(jsonl=str(root / "items.jsonl"))
    rows, refs = await plan_source(source, _settings(root), _sizes(100))
    assert rows == 1001 and len(refs) == 11
    assert refs[0].offset == 0 and refs[-1].size == 1
    assert sum(r.length for r in refs) == (root / "items.jsonl").stat().st_size
    seen = []
    for ref in refs:
        seen += await read_rows(source, ref, _settings(root))
    assert seen == [(i, {"n": i, "pad": ""}) for i in range(1001)]


async def test_a_chunk_is_read_by_seek_not_by_scanning(root):
    path = root / "items.jsonl"
    _write(path, 300)
    source = ItemsSource(jsonl=str(path))
    _rows, refs = await plan_source(source, _settings(root), _sizes(100))
    third = refs[2]
    # The bytes before the chunk become one long line: a reader that counted lines from the
    # start would land elsewhere; one that seeks still finds rows 200..299.
    data = bytearray(path.read_bytes())
    data[: third.offset] = b"x" * (third.offset - 1) + b"\n"
    path.write_bytes(bytes(data))
    rows = await read_rows(source, third, _settings(root))
    assert rows == [(i, {"n": i, "pad": ""}) for i in range(200, 300)]


async def test_relative_root_and_path_from_the_working_directory(clean_env):
    (clean_env / "data").mkdir()
    _write(clean_env / "data" / "a.jsonl", 3)
    rows = await read_rows(ItemsSource(jsonl="data/a.jsonl"), None, _settings("data"))
    assert [p for p, _ in rows] == [0, 1, 2]


@pytest.mark.parametrize(
    "name", ["../outside.jsonl", "/etc/passwd", "link.jsonl", "volume-evil/x.jsonl"]
)
async def test_outside_the_roots_is_refused(root, name):
    outside = root.parent / "outside.jsonl"
    _write(outside, 2)
    (root / "link.jsonl").symlink_to(outside)  # a symlink under the root, pointing out of it
    (root.parent / "volume-evil").mkdir()
    _write(root.parent / "volume-evil" / "x.jsonl", 2)  # a sibling whose name starts alike
    target = name if name.startswith("/") else str(root / name)
    with pytest.raises(InputError) as err:
        await plan_source(ItemsSource(jsonl=target), _settings(root), _sizes(10))
    assert err.value.field == "items_from.jsonl"
    assert "outside" in str(err.value) and str(root) in str(err.value)


async def test_no_roots_configured(root):
    _write(root / "a.jsonl", 1)
    with pytest.raises(InputError, match="ITEMS_FROM_ROOTS is empty"):
        await read_rows(ItemsSource(jsonl=str(root / "a.jsonl")), None, _settings())


async def test_missing_directory_fifo_and_unreadable(root):
    settings = _settings(root)
    cases = {"missing.jsonl": "no such file", ".": "not a regular file"}
    os.mkfifo(root / "pipe.jsonl")  # a FIFO nobody writes to: must not hang the worker
    cases["pipe.jsonl"] = "not a regular file"
    for name, expected in cases.items():
        with pytest.raises(InputError, match=expected) as err:
            await asyncio.wait_for(
                plan_source(ItemsSource(jsonl=str(root / name)), settings, _sizes(5)), 10
            )
        assert err.value.field == "items_from.jsonl"
    locked = root / "locked.jsonl"
    _write(locked, 1)
    locked.chmod(0)
    if os.geteuid() != 0:  # root reads any file
        with pytest.raises(InputError, match="cannot be read"):
            await read_rows(ItemsSource(jsonl=str(locked)), None, settings)


async def test_empty_file_holds_no_items(root):
    (root / "empty.jsonl").write_bytes(b"")
    source = ItemsSource(jsonl=str(root / "empty.jsonl"))
    with pytest.raises(InputError, match="items_from: the source holds no items") as err:
        await plan_source(source, _settings(root), _sizes(5))
    assert err.value.field == "items_from"
    with pytest.raises(InputError, match="holds no items"):
        await read_rows(source, None, _settings(root))


async def test_bad_rows_fail_alone_without_their_content(root):
    secret = "sk-live-DO-NOT-LEAK"
    lines = [
        json.dumps({"ok": 1}),
        "",
        f'{{"token": "{secret}"',  # truncated JSON
        json.dumps([secret]),
        json.dumps(secret),
        '{"x": NaN}',
        '{"k": "\\ud800"}',
        "[" * 40 + "]" * 40,
        '{"d":' * 40 + "1" + "}" * 40,
        "   ",
        json.dumps({"ok": 2}),
    ]
    path = root / "bad.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe\n")
    rows = await read_rows(ItemsSource(jsonl=str(path)), None, _settings(root))
    assert rows[0] == (0, {"ok": 1}) and rows[10] == (10, {"ok": 2})
    problems = dict(rows)
    assert len(rows) == 12
    for position in (1, 2, 3, 4, 5, 6, 7, 8, 9, 11):
        text = problems[position]
        assert isinstance(text, str)
        assert text.startswith(f"items_from row {position} (line {position + 1}): ")
        assert secret not in text
    assert "blank line" in problems[1] and "blank line" in problems[9]
    assert "invalid JSON" in problems[2]
    assert "got an array" in problems[3] and "got a string" in problems[4]
    assert "NaN" in problems[5]
    assert "surrogate" in problems[6]
    assert "array" in problems[7]
    assert "nested deeper than 32" in problems[8]
    assert "UTF-8" in problems[11]


async def test_overlong_row_is_a_bad_row(root):
    from podfleet.sources import MAX_ROW_BYTES

    path = root / "long.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "' + b"y" * (MAX_ROW_BYTES + 10) + b'"}\n{"c": 3}\n')
    source = ItemsSource(jsonl=str(path))
    rows = await read_rows(source, None, _settings(root))
    assert rows[0] == (0, {"a": 1}) and rows[2] == (2, {"c": 3})
    assert "at most 1,000,000 bytes" in rows[1][1]
    _n, refs = await plan_source(source, _settings(root), _sizes(1))
    assert (await read_rows(source, refs[1], _settings(root)))[0][1] == rows[1][1]


async def test_file_changed_after_planning(root):
    path = root / "a.jsonl"
    _write(path, 10)
    source = ItemsSource(jsonl=str(path))
    _n, refs = await plan_source(source, _settings(root), _sizes(5))
    _write(path, 7)
    rows = await read_rows(source, refs[1], _settings(root))
    assert [p for p, _ in rows] == [5, 6, 7, 8, 9]
    assert all("changed" in r or "invalid JSON" in r for _p, r in rows[2:])


async def test_whole_source_read_is_capped(root):
    path = root / "big.jsonl"
    path.write_bytes(b"{}\n" * (MAX_WHOLE_SOURCE_ROWS + 1))
    with pytest.raises(InputError, match="at most 100,000 items") as err:
        await read_rows(ItemsSource(jsonl=str(path)), None, _settings(root))
    assert err.value.field == "items_from"
    rows, refs = await plan_source(ItemsSource(jsonl=str(path)), _settings(root), _sizes(50_000))
    assert rows == MAX_WHOLE_SOURCE_ROWS + 1 and len(refs) == 3


async def test_100k_rows_planned_in_bounded_memory(root):
    path = root / "big.jsonl"
    _write(path, 100_000, pad=300)  # ~32 MB: holding its rows would be far over the bound
    size_mb = path.stat().st_size / 1e6
    assert size_mb > 30
    tracemalloc.start()
    try:
        rows, refs = await plan_source(ItemsSource(jsonl=str(path)), _settings(root), _sizes(100))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 100_000 and len(refs) == 1000
    assert peak < 10e6, f"planning a {size_mb:.0f} MB file peaked at {peak / 1e6:.1f} MB"
    middle = await read_rows(ItemsSource(jsonl=str(path)), refs[567], _settings(root))
    assert [item["n"] for _p, item in middle] == list(range(56_700, 56_800))


async def test_ref_without_offsets_skips_to_its_rows(root):
    _write(root / "a.jsonl", 10)
    rows = await read_rows(
        ItemsSource(jsonl=str(root / "a.jsonl")), ChunkRef(start=4, stop=6), _settings(root)
    )
    assert rows == [(4, {"n": 4, "pad": ""}), (5, {"n": 5, "pad": ""})]
