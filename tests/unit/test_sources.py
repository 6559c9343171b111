"""podfleet.sources' byte-level parts against a plain reference: every way of cutting a JSON Lines
stream into blocks gives the same rows, chunk offsets and lines; row problems never quote rows."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from podfleet.pipeline.errors import InputError
from podfleet.settings import Settings
from podfleet.sources import (
    MAX_ROW_BYTES,
    ChunkCutter,
    LineSplitter,
    RowCounter,
    check_sizes,
    is_url,
    parse_row,
    resolve_path,
)
from podfleet.sources_http import shown_url


def _reference_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def _blocks(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 8))))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@pytest.mark.parametrize("seed", range(200))
def test_counter_cutter_splitter_agree_with_a_reference(seed):
    rng = random.Random(seed)
    pieces = [
        rng.choice([b"", b"{}", b'{"a": 1}', b"  ", b"x" * rng.randint(1, 30)])
        for _ in range(rng.randint(1, 40))
    ]
    data = b"\n".join(pieces) + rng.choice([b"", b"\n"])
    if not data:
        data = b"\n"
    lines = _reference_lines(data)
    blocks = _blocks(data, rng)

    counter = RowCounter()
    for block in blocks:
        counter.feed(block)
    assert counter.rows == len(lines)

    size = rng.randint(1, 7)
    sizes = [min(size, len(lines) - i) for i in range(0, len(lines), size)]
    cutter = ChunkCutter(sizes)
    for block in blocks:
        cutter.feed(block)
    refs = cutter.finish("items_from.jsonl")
    assert [(r.start, r.stop) for r in refs] == [
        (i, i + s) for i, s in zip(range(0, len(lines), size), sizes, strict=True)
    ]
    for ref in refs:
        chunk = data[ref.offset : ref.offset + ref.length]
        assert _reference_lines(chunk) == lines[ref.start : ref.stop]
    assert refs[-1].offset + refs[-1].length == len(data)

    splitter = LineSplitter()
    got = [line for block in blocks for line in splitter.feed(block)] + splitter.finish()
    assert got == lines


def test_cutter_notices_a_source_that_changed():
    cutter = ChunkCutter([2, 2])
    cutter.feed(b"{}\n{}\n{}\n")  # 3 rows where 4 were counted
    with pytest.raises(InputError, match="changed"):
        cutter.finish("items_from.jsonl")
    grown = ChunkCutter([1])
    grown.feed(b"{}\n{}\n")
    with pytest.raises(InputError, match="changed"):
        grown.finish("items_from.jsonl")


def test_splitter_drops_an_overlong_line_without_holding_it():
    splitter = LineSplitter()
    out = []
    for _ in range(5):
        out += splitter.feed(b"z" * (MAX_ROW_BYTES // 2))
        assert len(splitter.buffer) <= MAX_ROW_BYTES
    out += splitter.feed(b"\n{}\n")
    assert len(out) == 2 and out[1] == b"{}" and isinstance(parse_row(0, out[0], "line 1"), str)


def test_check_sizes():
    assert check_sizes([2, 1], 3) == [2, 1]
    for bad in ([2, 2], [3, 0], []):
        with pytest.raises(ValueError):
            check_sizes(bad, 3)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
        (b'\xef\xbb\xbf{"bom": 1}', {"bom": 1}),
        (b'{"a": 1}\r', {"a": 1}),
        ('{"t": "é"}', {"t": "é"}),
    ],
)
def test_parse_row_accepts(raw, expected):
    assert parse_row(0, raw, "line 1") == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "got a blank line"),
        (b"\t ", "got a blank line"),
        (b"secret-token", "got invalid JSON"),
        (b'"secret-token"', "got a string"),
        (b"42", "got a number"),
        (b"true", "got a boolean"),
        (b"null", "got null"),
        (b'["secret-token"]', "got an array"),
        (b'{"a": Infinity}', "Infinity is not a JSON number"),
        (b'{"a": 1' + b"0" * 30 + b"}", "within 64 bits"),
        (b'{"a": ' + b"1" * 5000 + b"}", "within 64 bits"),
        (b"[" * 100_000 + b"]" * 100_000, "got"),
        (b'{"secret-token": 1, "x": "\\udc00"}', "lone surrogate"),
        (b"\xc3\x28 secret-token", "expected UTF-8 text"),
        (None, "missing"),
    ],
)
def test_parse_row_problems_name_the_row_never_its_content(raw, fragment):
    problem = parse_row(7, raw, "line 8")
    assert isinstance(problem, str)
    assert problem.startswith("items_from row 7 (line 8): ")
    assert fragment in problem
    assert "secret-token" not in problem
    assert len(problem) < 400


def test_deeply_nested_object_is_a_problem_not_a_crash():
    problem = parse_row(0, b'{"a":' * 5000 + b"1" + b"}" * 5000, "line 1")
    assert isinstance(problem, str) and "nested" in problem


def test_is_url():
    assert is_url("http://x/y") and is_url("HTTPS://x") and is_url("ftp://x")
    assert not is_url("/runpod-volume/a.jsonl") and not is_url("data/a://b.jsonl")


def test_shown_url_hides_credentials_and_query():
    text = shown_url("https://bob:pw123@Host.example:8443/a/b.jsonl?X-Amz-Signature=abc#x")
    assert text == "'https://host.example:8443/a/b.jsonl?...'"
    assert shown_url("http://[::1") == "a URL that does not parse"


def test_resolve_path(tmp_path):
    (tmp_path / "r").mkdir()
    settings = Settings(items_from_roots=[str(tmp_path / "r")])
    assert resolve_path(str(tmp_path / "r" / "x" / ".." / "a.jsonl"), settings) == (
        tmp_path / "r" / "a.jsonl"
    )
    with pytest.raises(InputError, match="outside") as err:
        resolve_path(str(tmp_path / "r" / ".." / "a.jsonl"), settings)
    assert err.value.field == "items_from.jsonl"
    with pytest.raises(InputError, match="expected a file path"):
        resolve_path(str(tmp_path / "r" / "a\0b"), settings)
    assert json.dumps(str(err.value))  # printable
