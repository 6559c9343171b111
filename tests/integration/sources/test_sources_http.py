"""items_from.jsonl as a URL, against a real loopback HTTP server: Range reads and the fallback
for a server without Range support, redirects, statuses, credentials, and the address rules
(loopback, metadata and private addresses refused on the first request and on every redirect)."""

from __future__ import annotations

import asyncio
import json

import pytest
from podfleet.envelope import ItemsSource
from podfleet.pipeline.errors import InputError, JobFailure
from podfleet.settings import Settings
from podfleet.sources import plan_source, read_rows
from podfleet.sources_http import HttpSource, read_url

pytestmark = pytest.mark.usefixtures("clean_env")


def _body(n: int) -> bytes:
    return b"".join(json.dumps({"n": i, "pad": "x" * (i % 7)}).encode() + b"\n" for i in range(n))


def _settings(*allow: str) -> Settings:
    return Settings(scrape_allow_hosts=list(allow), items_from_roots=[])


def _sizes(size: int):
    return lambda n: [min(size, n - i) for i in range(0, n, size)]


@pytest.mark.parametrize("ranges", [True, False], ids=["range", "no-range"])
async def test_plan_then_read_each_chunk(http_server, ranges):
    http_server.served.files["/items.jsonl"] = _body(250) + b"[1]"  # last row: no newline
    http_server.served.ranges = ranges
    settings = _settings(http_server.allow)
    source = ItemsSource(jsonl=http_server.url("/items.jsonl"))

    rows, refs = await plan_source(source, settings, _sizes(40))

    assert rows == 251
    assert [(r.start, r.stop) for r in refs] == [(i, min(i + 40, 251)) for i in range(0, 251, 40)]
    got = []
    for ref in refs:
        got.extend(await read_rows(source, ref, settings))
    assert [p for p, _ in got] == list(range(251))
    assert [item["n"] for _p, item in got[:250]] == list(range(250))
    assert got[250] == (250, "items_from row 250 (line 251): expected a JSON object, got an array")
    ranged = [r for r in http_server.served.requests if "Range" in r["headers"]]
    assert len(ranged) >= len(refs)  # every chunk asked for its bytes only
    assert all(r["headers"]["Host"] == f"127.0.0.1:{http_server.port}" for r in ranged)


async def test_range_reads_only_the_chunk_and_fallback_skips(http_server):
    http_server.served.files["/items.jsonl"] = _body(100)
    settings = _settings(http_server.allow)
    url = http_server.url("/items.jsonl")
    _rows, refs = await plan_source(ItemsSource(jsonl=url), settings, _sizes(30))
    last = refs[-1]

    async with HttpSource(url, settings) as src:
        data = b"".join([b async for b in src.blocks(last.offset, last.length)])
        assert (src.ranged, src.skipped_bytes) == (1, 0)
    assert data == http_server.served.files["/items.jsonl"][last.offset :]

    http_server.served.ranges = False
    async with HttpSource(url, settings) as src:
        data2 = b"".join([b async for b in src.blocks(last.offset, last.length)])
        assert (src.ranged, src.skipped_bytes) == (0, last.offset)
    assert data2 == data
    rows = await read_url(url, last, settings)
    assert [item["n"] for _p, item in rows] == list(range(last.start, last.stop))


async def test_whole_source_and_a_ref_without_offsets(http_server):
    http_server.served.files["/a.jsonl"] = b'{"n": 0}\n\n{"n": 2}\n'
    settings = _settings(http_server.allow)
    source = ItemsSource(jsonl=http_server.url("/a.jsonl"))
    rows = await read_rows(source, None, settings)
    assert rows[0] == (0, {"n": 0})
    assert rows[1] == (1, "items_from row 1 (line 2): expected a JSON object, got a blank line")
    assert rows[2] == (2, {"n": 2})
    from podfleet.envelope import ChunkRef

    assert await read_rows(source, ChunkRef(start=2, stop=3), settings) == [(2, {"n": 2})]


async def test_redirect_on_the_same_allowed_server_is_followed(http_server):
    http_server.served.files["/real.jsonl"] = _body(3)
    http_server.served.redirects["/moved"] = "/real.jsonl"
    rows, refs = await plan_source(
        ItemsSource(jsonl=http_server.url("/moved")), _settings(http_server.allow), _sizes(5)
    )
    assert rows == 3 and len(refs) == 1


async def test_loopback_refused_without_allow_list(http_server):
    http_server.served.files["/items.jsonl"] = _body(3)
    with pytest.raises(InputError) as err:
        source = ItemsSource(jsonl=http_server.url("/items.jsonl"))
        await plan_source(source, _settings(), _sizes(5))
    assert err.value.field == "items_from.jsonl"
    assert "loopback" in str(err.value)
    assert http_server.served.requests == []  # refused before any connection


async def test_localhost_name_allowed_is_connected_to_its_checked_address(http_server):
    http_server.served.files["/items.jsonl"] = _body(3)
    url = http_server.url("/items.jsonl", host="localhost")
    with pytest.raises(InputError, match="loopback name"):
        await plan_source(ItemsSource(jsonl=url), _settings(http_server.allow), _sizes(5))
    rows, _refs = await plan_source(
        ItemsSource(jsonl=url), _settings(f"localhost:{http_server.port}"), _sizes(5)
    )
    assert rows == 3
    assert {r["headers"]["Host"] for r in http_server.served.requests} == {
        f"localhost:{http_server.port}"
    }


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/items.jsonl",
        "http://[::ffff:127.0.0.1]:{other}/items.jsonl",
        "http://127.0.0.1:{other}/items.jsonl",
        "file:///etc/passwd",
    ],
    ids=["metadata", "private", "mapped-loopback", "loopback-other-port", "file"],
)
async def test_redirect_to_a_forbidden_address_is_refused(http_server, other_server, target):
    target = target.format(other=other_server.port)
    other_server.served.files["/items.jsonl"] = _body(3)
    http_server.served.redirects["/go"] = target
    with pytest.raises(InputError) as err:
        await plan_source(
            ItemsSource(jsonl=http_server.url("/go")), _settings(http_server.allow), _sizes(5)
        )
    assert err.value.field == "items_from.jsonl"
    assert "redirected to" in str(err.value) and "refused" in str(err.value)
    assert other_server.served.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam",
        "http://192.168.1.10/items.jsonl",
        "http://metadata.google.internal/x",
        "ftp://example.com/items.jsonl",
    ],
)
async def test_forbidden_first_urls(url):
    with pytest.raises(InputError) as err:
        await read_rows(ItemsSource(jsonl=url), None, _settings())
    assert err.value.field == "items_from.jsonl"
    assert "refused" in str(err.value)


async def test_credentials_and_query_never_echoed(http_server):
    url = f"http://admin:hunter2@127.0.0.1:{http_server.port}/x.jsonl?token=s3cr3t#frag"
    with pytest.raises(InputError) as err:
        await plan_source(ItemsSource(jsonl=url), _settings(), _sizes(5))
    text = str(err.value)
    assert "hunter2" not in text and "admin" not in text and "s3cr3t" not in text
    assert f"127.0.0.1:{http_server.port}/x.jsonl" in text


async def test_credentials_sent_to_their_own_origin(http_server):
    http_server.served.files["/x.jsonl"] = _body(2)
    http_server.served.auth = "user:pa ss"
    url = f"http://user:pa%20ss@127.0.0.1:{http_server.port}/x.jsonl"
    rows = await read_rows(ItemsSource(jsonl=url), None, _settings(http_server.allow))
    assert [item["n"] for _p, item in rows] == [0, 1]


async def test_http_errors(http_server):
    http_server.served.statuses["/gone"] = 410
    http_server.served.statuses["/busy"] = 503
    settings = _settings(http_server.allow)
    with pytest.raises(InputError, match="HTTP 404") as err:
        await plan_source(ItemsSource(jsonl=http_server.url("/nope")), settings, _sizes(5))
    assert err.value.field == "items_from.jsonl"
    with pytest.raises(InputError, match="HTTP 410"):
        await read_rows(ItemsSource(jsonl=http_server.url("/gone")), None, settings)
    with pytest.raises(JobFailure, match=r"items_from\.jsonl.*HTTP 503"):
        await read_rows(ItemsSource(jsonl=http_server.url("/busy")), None, settings)
    http_server.served.files["/empty.jsonl"] = b""
    with pytest.raises(InputError, match="holds no items"):
        await plan_source(ItemsSource(jsonl=http_server.url("/empty.jsonl")), settings, _sizes(5))


async def test_redirect_loop_is_bounded(http_server):
    http_server.served.redirects["/loop"] = "/loop"
    with pytest.raises(InputError, match="redirects"):
        await read_rows(
            ItemsSource(jsonl=http_server.url("/loop")), None, _settings(http_server.allow)
        )
    assert len(http_server.served.requests) == 6


async def test_unreachable_port_is_a_job_failure():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(JobFailure, match="cannot connect"):
        await read_rows(
            ItemsSource(jsonl=f"http://127.0.0.1:{port}/x.jsonl"),
            None,
            _settings(f"127.0.0.1:{port}"),
        )


async def test_a_name_is_resolved_once_and_its_checked_address_connected(http_server):
    """DNS for `items.test` exists only in the guard's resolver: the requests can reach the
    server only by connecting to the address the guard checked (never resolving again), and
    the two planning passes and a chunk read share one resolution."""
    from podfleet.pipeline.scrape.guard import AddressGuard

    http_server.served.files["/items.jsonl"] = _body(10)
    lookups = []

    async def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    url = f"http://items.test:{http_server.port}/items.jsonl"
    guard = AddressGuard([f"items.test:{http_server.port}"], resolver=resolver)
    async with HttpSource(url, _settings(), guard=guard) as src:
        for _ in range(2):
            data = b"".join([b async for b in src.blocks()])
            assert data == http_server.served.files["/items.jsonl"]
        assert b"".join([b async for b in src.blocks(5, 10)]) == data[5:15]
    assert lookups == ["items.test"]
    assert {r["headers"]["Host"] for r in http_server.served.requests} == {
        f"items.test:{http_server.port}"
    }

    async def rebinding(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]  # an unlisted name that resolves to a private address

    unlisted = AddressGuard([], resolver=rebinding)
    async with HttpSource("http://evil.test/x.jsonl", _settings(), guard=unlisted) as src:
        with pytest.raises(InputError, match=r"evil\.test \(10\.0\.0\.7\) is a private"):
            await anext(src.blocks())


async def test_a_stalled_server_is_given_up_on(http_server):
    settings = Settings(
        scrape_allow_hosts=[http_server.allow], items_from_roots=[], api_timeout_s=0.5
    )
    with pytest.raises(JobFailure, match="ReadTimeout"):
        await asyncio.wait_for(
            read_rows(ItemsSource(jsonl=http_server.url("/stall")), None, settings), 20
        )
    slow = Settings(
        scrape_allow_hosts=[http_server.allow], items_from_roots=[], navigation_timeout_s=0.5
    )
    with pytest.raises(JobFailure, match=r"took over 0\.5 s"):
        await asyncio.wait_for(
            read_rows(ItemsSource(jsonl=http_server.url("/stall")), None, slow), 20
        )


async def test_100k_rows_over_http_planned_in_bounded_memory(http_server):
    import tracemalloc

    line = b'{"n": 0, "pad": "' + b"p" * 300 + b'"}\n'
    http_server.served.files["/big.jsonl"] = line * 100_000  # ~32 MB, allocated before tracing
    source = ItemsSource(jsonl=http_server.url("/big.jsonl"))
    settings = _settings(http_server.allow)
    tracemalloc.start()
    try:
        rows, refs = await plan_source(source, settings, _sizes(100))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rows == 100_000 and len(refs) == 1000
    assert peak < 12e6, f"planning 32 MB over HTTP peaked at {peak / 1e6:.1f} MB"
    assert len(await read_rows(source, refs[999], settings)) == 100
