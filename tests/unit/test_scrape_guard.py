"""The address guard on its own (no browser): every spelling of loopback, private, link-local and
metadata addresses, IPv6 transition forms, names (through an injected resolver), the allow-list's
host:port rules, and the schemes a page URL may have."""

from __future__ import annotations

import pytest
from podfleet.pipeline.scrape.guard import AddressGuard, AllowList, canonical_host, host_of

LOOPBACK = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "0x7f.1",
    "0x7f.0x0.0x0.0x1",
    "0177.0.0.1",
    "0177.1",
    "2130706433",
    "0x7f000001",
    "017700000001",
    "%31%32%37.0.0.1",
    "\uff11\uff12\uff17.\uff10.\uff10.\uff11",  # full-width digits
    "127.255.255.254",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[64:ff9b::127.0.0.1]",  # NAT64
    "[2002:7f00:1::]",  # 6to4
    "localhost",
    "LOCALHOST.",
    "api.localhost",
]
PRIVATE = [
    "10.0.0.1",
    "012.0.0.1",
    "167772161",
    "172.16.0.9",
    "172.31.255.255",
    "192.168.1.1",
    "0xc0a80101",
    "100.64.1.1",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[fec0::1]",  # site-local
    "[2002:a00:1::1]",  # 6to4 of 10.0.0.1
    "[::ffff:10.0.0.1]",
    "[64:ff9b:1::a00:1]",  # local-use NAT64
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]",  # Teredo
    "0.0.0.0",
    "0",
    "[::]",
    "255.255.255.255",
    "224.0.0.251",
    "[ff02::1]",
    "198.18.0.1",
]
LINK_LOCAL_OR_METADATA = [
    "169.254.1.1",
    "[fe80::1]",
    "169.254.169.254",
    "0xa9fea9fe",
    "2852039166",
    "0251.0376.0251.0376",
    "169.254.43518",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[64:ff9b::169.254.169.254]",
    "[2002:a9fe:a9fe::]",
    "[fd00:ec2::254]",
    "169.254.170.2",
    "100.100.100.200",
    "metadata.google.internal",
    "metadata.google.internal.",
    "METADATA.GOOGLE.INTERNAL",
    "metadata",
]


@pytest.mark.parametrize("host", LOOPBACK + PRIVATE + LINK_LOCAL_OR_METADATA)
async def test_unsafe_hosts_refused_in_every_spelling(host: str) -> None:
    guard = AddressGuard()
    for port in (80, 443, 8080):
        verdict = await guard.check_host(host, port)
        assert not verdict.allowed and verdict.reason.startswith("refused: "), (host, verdict)
        url_verdict = await guard.check_url(f"http://{host}:{port}/x")
        assert not url_verdict.allowed, (host, url_verdict)


@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("0x7f.1", "127.0.0.1 is a loopback address"),
        ("[::ffff:7f00:1]", "IPv4-mapped address of 127.0.0.1, a loopback address"),
        ("[2002:7f00:1::]", "6to4 address of 127.0.0.1, a loopback address"),
        ("[64:ff9b::a9fe:a9fe]", "NAT64 address of 169.254.169.254, a cloud metadata"),
        ("[::10.0.0.1]", "IPv4-compatible address of 10.0.0.1, a private address"),
        ("[fec0::1]", "site-local"),
        ("2852039166", "169.254.169.254 is a cloud metadata address"),
        ("100.64.1.1", "carrier-grade NAT"),
        ("localhost.", "localhost is a loopback name"),
        ("metadata.google.internal.", "metadata.google.internal is a cloud metadata name"),
    ],
)
async def test_refusals_say_why(host: str, words: str) -> None:
    verdict = await AddressGuard().check_host(host, 80)
    assert words in verdict.reason, verdict.reason


@pytest.mark.parametrize(
    "host", ["93.184.215.14", "[2606:2800:220:1:248:1893:25c8:1946]", "[::ffff:93.184.215.14]"]
)
async def test_public_literals_allowed(host: str) -> None:
    verdict = await AddressGuard().check_host(host, 8443)
    assert verdict.allowed and verdict.addresses


def fake_dns(table: dict[str, list[str]], calls: list[str]):
    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise OSError(f"no such name {host}")
        return table[host]

    return resolve


async def test_names_are_checked_by_every_address_and_resolved_once() -> None:
    calls: list[str] = []
    table = {
        "news.test": ["93.184.215.14"],
        "rebind.test": ["93.184.215.14", "127.0.0.1"],
        "inside.test": ["10.1.2.3"],
        "meta.test": ["169.254.169.254"],
        "v6.test": ["::ffff:127.0.0.1"],
    }
    guard = AddressGuard(resolver=fake_dns(table, calls))
    ok = await guard.check_url("http://news.test/a")
    assert ok.allowed and ok.addresses == ("93.184.215.14",)
    assert (await guard.check_url("https://NEWS.test./b")).addresses == ("93.184.215.14",)
    assert (await guard.check_host("news.test", 8080)).allowed
    assert calls == ["news.test"]  # one lookup, whatever the port or spelling
    for name, why in [
        ("rebind.test", "rebind.test (127.0.0.1) is a loopback address"),
        ("inside.test", "inside.test (10.1.2.3) is a private address"),
        ("meta.test", "meta.test (169.254.169.254) is a cloud metadata address"),
        ("v6.test", "a loopback address"),
    ]:
        verdict = await guard.check_url(f"http://{name}/")
        assert not verdict.allowed and why in verdict.reason
        assert guard.reason_for(name) == verdict.reason
    unknown = await guard.check_url("http://nowhere.test/")
    assert not unknown.allowed and unknown.reason.startswith("could not resolve host nowhere.test")


async def test_allow_list_opens_only_the_ports_it_names() -> None:
    calls: list[str] = []
    guard = AddressGuard(
        ["127.0.0.1:8080", "10.0.0.5", "[::1]:9000", "192.168.0.7:*", ".corp.test:8443"],
        resolver=fake_dns({"wiki.corp.test": ["10.9.9.9"], "corp.test": ["10.9.9.8"]}, calls),
    )
    assert (await guard.check_host("127.0.0.1", 8080)).allowed
    assert (await guard.check_url("http://0x7f.1:8080/")).allowed  # any spelling of the host
    for port in (80, 443, 8081, 6379):
        assert not (await guard.check_host("127.0.0.1", port)).allowed
    assert (await guard.check_url("http://10.0.0.5/")).allowed  # bare host: 80 and 443
    assert (await guard.check_url("https://10.0.0.5/")).allowed
    assert not (await guard.check_url("http://10.0.0.5:22/")).allowed
    assert (await guard.check_host("::1", 9000)).allowed
    assert not (await guard.check_host("::1", 9001)).allowed
    assert (await guard.check_host("192.168.0.7", 5432)).allowed
    assert (await guard.check_host("wiki.corp.test", 8443)).allowed
    assert (await guard.check_host("corp.test", 8443)).allowed  # the bare domain too
    assert not (await guard.check_host("wiki.corp.test", 443)).allowed
    assert not (await guard.check_host("xcorp.test", 8443)).allowed


def test_allow_list_entries_parsed_or_refused_by_name() -> None:
    assert AllowList(["Example.COM."]).rules == [("example.com", False, frozenset({80, 443}))]
    assert AllowList([".corp.test:*"]).rules == [("corp.test", True, None)]
    assert AllowList(["::1"]).rules[0][0] == "::1"
    for bad in ["host:abc", "host:0", "host:70000", "[::1", "[::1]x", "http://x/", "a b"]:
        with pytest.raises(ValueError, match="SCRAPE_ALLOW_HOSTS entry"):
            AllowList([bad])


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "data:text/html,<b>x</b>",
        "chrome://version/",
        "chrome-untrusted://x/",
        "javascript:alert(1)",
        "view-source:http://example.org/",
        "blob:http://example.org/0b8e6a2c",
        "about:blank",
        "ftp://example.org/",
        "ws://example.org/",
        "filesystem:http://example.org/temporary/x",
    ],
)
def test_non_http_schemes_refused_naming_the_field(url: str) -> None:
    refusal = AddressGuard(["127.0.0.1:*"]).scheme_refusal(url, "url")
    assert refusal is not None and refusal.startswith("refused: url ")
    assert "only http and https" in refusal


def test_canonical_forms() -> None:
    assert host_of("http://0x7f.1:8080/a") == "127.0.0.1"
    assert host_of("http://[::ffff:127.0.0.1]/") == "::ffff:7f00:1"
    assert canonical_host("Example.COM.") == "example.com"
    assert canonical_host("fe80::1") == "fe80::1"
    assert host_of("not a url") == ""
