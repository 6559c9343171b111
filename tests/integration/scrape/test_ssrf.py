"""SSRF suite: every way a page can make the browser reach an address, with real Chromium.

A `Trap` listens on a loopback port that is NOT allow-listed (the fixture site is allowed on its
own port only, so this is also "allow-listing a host does not open its other ports"). Each
vector — navigation, HTTP/meta/script redirects, forms, sub-resources of every kind, fetch/XHR,
beacons, EventSource, prefetch, WebSockets, dedicated/shared workers, module imports — is aimed
at the trap in every spelling of loopback (decimal, octal, hex, percent-encoded, trailing dot,
IPv4-mapped/compatible, NAT64, 6to4, `localhost` names, names that resolve to it). The trap must
see nothing, and every upstream connection the egress proxy opened must be to the fixture site.
Each vector is first shown to reach the trap when the trap's port IS allow-listed, so a vector
that silently does nothing cannot make the suite pass.
"""

from __future__ import annotations

import json

import pytest
from podfleet.pipeline.scrape import PageRequest, fetch_pages
from podfleet.pipeline.scrape.egress import EgressProxy

from tests.integration.scrape.traps import SECRET, Trap

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]

NAMES = {
    "trap.test": ["127.0.0.1"],
    "trap6.test": ["::1"],
    "rebind.test": ["93.184.215.14", "127.0.0.1"],  # one public, one loopback address
    "meta.test": ["169.254.169.254"],
}


async def resolver(host: str, port: int) -> list[str]:
    """The suite's DNS: names that resolve to loopback and metadata addresses, offline."""
    if host in NAMES:
        return NAMES[host]
    raise OSError(f"{host}: no such test name")


@pytest.fixture(scope="module")
def trap():
    with Trap() as running:
        yield running


@pytest.fixture
def cfg(config):
    """Everything loads (images, fonts and media too: each is a way out), no retries."""
    return config.model_copy(
        update={
            "block_resources": False,
            "retries": 0,
            "navigation_timeout_s": 3,
            "render_timeout_s": 2,
            "concurrency": 8,
        }
    )


@pytest.fixture
def upstream(monkeypatch):
    """Every (address, port) the egress proxy opened a connection to (a spy: it still connects)."""
    opened: list[tuple[str, int]] = []
    real_open = EgressProxy._open

    async def spy(self, addresses, port):
        conn = await real_open(self, addresses, port)
        if conn is not None:
            opened.append((conn[1].get_extra_info("peername")[0], port))
        return conn

    monkeypatch.setattr(EgressProxy, "_open", spy)
    return opened


def spellings(trap: Trap) -> list[str]:
    """host:port of the trap, every way a URL can say loopback."""
    p = trap.port
    hosts = [
        "127.0.0.1",
        "127.1",
        "0x7f.1",
        "0177.0.0.1",
        "2130706433",
        "0x7f000001",
        "%31%32%37.0.0.1",
        "127.0.0.1.",
        "0.0.0.0",
        "0",
        "localhost",
        "LOCALHOST.",
        "a.localhost",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "trap.test",
        "rebind.test",
    ]
    if trap.has_v6:
        hosts += ["[::1]", "[0:0:0:0:0:0:0:1]", "trap6.test"]
    return [f"{h}:{p}" for h in hosts]


def js(value: str) -> str:
    return json.dumps(value)


# Sub-resource vectors: one page per vector, aimed at every spelling at once.
SUBRESOURCE = {
    "img": lambda u, i: f'<img src="{u}">',
    "script": lambda u, i: f'<script src="{u}"></script>',
    "css": lambda u, i: f'<link rel="stylesheet" href="{u}">',
    "css-import": lambda u, i: f'<style>@import url("{u}");</style>',
    "css-bg": lambda u, i: f"<div style=\"background-image:url('{u}')\">bg</div>",
    "font": lambda u, i: (
        f'<style>@font-face{{font-family:f{i};src:url("{u}")}}</style>'
        f'<p style="font-family:f{i}">font</p>'
    ),
    "iframe": lambda u, i: f'<iframe src="{u}"></iframe>',
    "object": lambda u, i: f'<object data="{u}" type="text/html"></object>',
    "video": lambda u, i: f'<video src="{u}" preload="auto" muted></video>',
    "fetch": lambda u, i: (
        f"<script>fetch({js(u)}).then(r => r.text())"
        ".then(t => document.body.insertAdjacentText('beforeend', t)).catch(() => {});</script>"
    ),
    "xhr": lambda u, i: (
        "<script>(() => { const x = new XMLHttpRequest();"
        " x.onload = () => document.body.insertAdjacentText('beforeend', x.responseText);"
        f" x.open('GET', {js(u)}); x.send(); }})();</script>"
    ),
    "beacon": lambda u, i: f"<script>navigator.sendBeacon({js(u)}, 'x');</script>",
    "eventsource": lambda u, i: f"<script>new EventSource({js(u)});</script>",
    "preload": lambda u, i: f'<link rel="preload" as="fetch" href="{u}" crossorigin>',
    "module-import": lambda u, i: (
        f"<script type=module>import({js(u)}).catch(() => {{}});</script>"
    ),
    "websocket": lambda u, i: (
        f"<script>try {{ new WebSocket({js(u.replace('http://', 'ws://', 1))}); }}"
        " catch (e) {}</script>"
    ),
    "worker": lambda u, i: (
        "<script>new Worker(URL.createObjectURL(new Blob("
        f"[{js(f'fetch({js(u)}).catch(() => {{}});')}], {{type: 'text/javascript'}})));</script>"
    ),
    "sharedworker": lambda u, i: (
        "<script>new SharedWorker(URL.createObjectURL(new Blob("
        f"[{js(f'fetch({js(u)}).catch(() => {{}});')}], {{type: 'text/javascript'}})));</script>"
    ),
}

# Navigation vectors: the page itself goes there (one target per page).
NAVIGATION = {
    "meta-refresh": lambda u: f'<meta http-equiv="refresh" content="0;url={u}"><script></script>',
    "location": lambda u: f"<script>location.href = {js(u)};</script>",
    "form": lambda u: (
        f'<form method="post" action="{u}" id="f"><input name="a" value="b"></form>'
        "<script>document.getElementById('f').submit();</script>"
    ),
    "window-open": lambda u: f"<script>window.open({js(u)});</script>",
}


def attack_requests(site, targets: list[str]) -> tuple[list[PageRequest], list[str]]:
    """(requests, vector names) aiming every vector at every target host:port."""
    requests: list[PageRequest] = []
    names: list[str] = []
    base = site.url("/inline-source/ssrf")
    for kind, make in SUBRESOURCE.items():
        tags = "".join(make(f"http://{t}/v/{kind}/{i}", i) for i, t in enumerate(targets))
        # the empty script makes it a page to render (script-less inline HTML is not rendered)
        html = (
            f"<!doctype html><html><head><title>{kind}</title><script></script></head>"
            f"<body>{tags}</body></html>"
        )
        requests.append(PageRequest(url=f"{base}/{kind}", html=html))
        names.append(kind)
    for i, t in enumerate(targets):
        u = f"http://{t}/v"
        requests.append(PageRequest(url=u + f"/nav/{i}"))
        names.append("navigation")
        requests.append(PageRequest(url=site.url(f"/redirect?to={u}/redirect/{i}")))
        names.append("redirect")
        if i % 3 and len(targets) > 1:
            continue  # the page-driven vectors below: every third spelling (same canonical URL)
        fetch_redirect = site.url(f"/redirect?to={u}/fetch-redirect/{i}")
        requests.append(
            PageRequest(
                url=f"{base}/fetch-redirect/{i}",
                html=f"<script>fetch({js(fetch_redirect)}).catch(() => {{}});</script>",
            )
        )
        names.append("fetch-redirect")
        for kind, make in NAVIGATION.items():
            requests.append(PageRequest(url=f"{base}/{kind}/{i}", html=make(f"{u}/{kind}/{i}")))
            names.append(kind)
    return requests, names


def visited_vectors(trap: Trap) -> set[str]:
    """Vector names from the paths the trap saw (GET /v/<vector>/<i> HTTP/1.1)."""
    found = set()
    for line in trap.tcp:
        parts = line.split(" ")
        if len(parts) == 3 and parts[1].startswith("/v/"):
            found.add(parts[1].split("/")[2])
    return found


async def test_every_vector_reaches_the_trap_when_its_port_is_allowed(site, cfg, warm, trap):
    """The control: with the trap allow-listed, each vector really makes a request to it."""
    trap.clear()
    allowed = cfg.model_copy(update={"allow_hosts": (*cfg.allow_hosts, f"127.0.0.1:{trap.port}")})
    requests, _names = attack_requests(site, [f"127.0.0.1:{trap.port}"])
    pages = await fetch_pages(requests, allowed, warm, resolver=resolver)
    await trap.settle(1.0)
    expected = set(SUBRESOURCE) | set(NAVIGATION) | {"nav", "redirect", "fetch-redirect"}
    missing = expected - visited_vectors(trap)
    assert not missing, f"vectors that never reached even an allowed trap: {sorted(missing)}"
    assert any(SECRET in (p.html or "") for p in pages)  # what the trap served was readable


async def test_no_vector_reaches_a_loopback_port_in_any_spelling(site, cfg, warm, trap, upstream):
    trap.clear()
    requests, names = attack_requests(site, spellings(trap))
    pages = await fetch_pages(requests, cfg, warm, resolver=resolver)
    hits = await trap.settle(1.0)
    assert hits == [], f"reached the trap: {hits[:10]}"
    assert set(upstream) <= {("127.0.0.1", site.port)}, upstream
    for page, name in zip(pages, names, strict=True):
        assert SECRET not in (page.html or ""), name
        if name in ("navigation", "redirect"):
            assert page.error and page.error.startswith(("refused:", "could not resolve")), (
                name,
                page.url,
                page.error,
            )


@pytest.mark.parametrize(
    "target",
    [
        "169.254.169.254",
        "0xa9fea9fe",
        "[::ffff:169.254.169.254]",
        "[fd00:ec2::254]",
        "[64:ff9b::a9fe:a9fe]",
        "metadata.google.internal",
        "meta.test",
        "10.0.0.1",
        "[fec0::1]",
        "[2002:a00:1::]",
        "100.64.0.1",
        "[fe80::1]",
    ],
)
async def test_private_and_metadata_addresses_refused_by_the_proxy(
    site, cfg, warm, upstream, target
):
    """Addresses no local listener can stand in for: the proxy must never connect to them."""
    u = f"http://{target}/latest/meta-data/"
    requests = [
        PageRequest(url=u),
        PageRequest(url=site.url(f"/redirect?to={u}")),
        PageRequest(
            url=site.url("/inline-source/meta"),
            html=f"<img src='{u}'><script>fetch({js(u)}).catch(() => {{}});"
            f"new WebSocket({js(u.replace('http', 'ws', 1))});</script>",
        ),
    ]
    nav, redirect, _sub = await fetch_pages(requests, cfg, warm, resolver=resolver)
    assert nav.error.startswith("refused:") and redirect.error.startswith("refused:")
    assert set(upstream) <= {("127.0.0.1", site.port)}, upstream


async def test_dns_rebinding_resolves_once_and_connects_to_the_checked_address(
    site, cfg, warm, trap, upstream
):
    """A name that first resolves public and then to loopback: checked once, connected to the
    address that was checked (never a second lookup)."""
    calls: list[str] = []

    async def flipping(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["93.184.215.14"] if calls.count(host) == 1 else ["127.0.0.1"]

    trap.clear()
    u = f"http://flip.test:{trap.port}/v/rebind"
    html = "".join(f"<img src='{u}/{k}'>" for k in range(5))
    html += f"<script>fetch({js(u)}/f).catch(() => {{}});</script>"
    short = cfg.model_copy(update={"navigation_timeout_s": 1.5})
    await fetch_pages(
        [PageRequest(url=u), PageRequest(url=site.url("/inline-source/rebind"), html=html)],
        short,
        warm,
        resolver=flipping,
    )
    assert calls.count("flip.test") == 1
    assert await trap.settle(0.3) == []
    assert set(upstream) <= {("127.0.0.1", site.port), ("93.184.215.14", trap.port)}


@pytest.mark.parametrize(
    "url",
    [
        "chrome://version/",
        "chrome://settings",
        "chrome-untrusted://terminal/",
        "devtools://devtools/bundled/inspector.html",
        "file:///etc/passwd",
        "data:text/html,<title>DATA</title><script>1</script>",
        "view-source:http://127.0.0.1/",
        "blob:http://127.0.0.1/6a1e3c8e-0000-4000-8000-000000000000",
        "about:blank",
        "javascript:document.title='x'",
        "filesystem:http://127.0.0.1/temporary/x",
    ],
)
async def test_non_http_sources_refused_inline_or_not(cfg, warm, url) -> None:
    fetched, inline = await fetch_pages(
        [PageRequest(url=url), PageRequest(url=url, html="<script>1</script><p>x</p>")],
        cfg,
        warm,
    )
    for page in (fetched, inline):
        assert page.error.startswith("refused: url ") and "only http and https" in page.error
        assert page.html is None and page.title is None


CHROME_TEXT = ("Command Line", "Executable Path", "Profile Path", "root:x:0:0")


async def test_pages_cannot_open_local_or_browser_pages(site, cfg, warm, trap) -> None:
    """Script navigations, frames and popups to chrome:, file:, view-source:, data: do not load
    Chromium's own pages or local files into what is read."""
    trap.clear()
    view = f"view-source:http://127.0.0.1:{trap.port}/v/view-source"
    tricks = [
        "<script>location.href = 'chrome://version/';</script>",
        "<script>location.href = 'file:///etc/passwd';</script>",
        f"<script>location.href = {js(view)};</script>",
        "<script>location.href = 'data:text/html,<title>DATA' + '-NAV</title>';</script>",
        "<iframe src='chrome://version/'></iframe><iframe src='file:///etc/passwd'></iframe>",
        f"<iframe src={js(view)}></iframe>",
        "<script>window.open('chrome://version/'); window.open('file:///etc/passwd');</script>",
        "<script>fetch('file:///etc/passwd').then(r => r.text())"
        ".then(t => document.body.append(t)).catch(() => {});</script>",
    ]
    base = site.url("/inline-source/local")
    requests = [PageRequest(url=f"{base}/{i}", html=h) for i, h in enumerate(tricks)]
    pages = await fetch_pages(requests, cfg, warm)
    for page in pages:
        text = (page.html or "") + (page.title or "")
        assert not any(marker in text for marker in CHROME_TEXT), (page.url, text[:300])
        assert "DATA-NAV" not in text
        assert (page.final_url or "http").startswith("http"), page.final_url
    assert await trap.settle(0.3) == []
