"""SSRF suite, protocols beside HTTP: WebRTC (STUN/TURN over UDP and TCP) and WebTransport.

Chromium's WebRTC sends UDP straight from the network stack, past any HTTP proxy, so the egress
proxy cannot see it: it must be off. The control shows the vector is real (a Chromium launched
the ordinary way sends STUN to the loopback trap from an inline page); then `fetch_pages` must
send nothing, over UDP or TCP, from http and https (secure-context) pages alike.
"""

from __future__ import annotations

import pytest
from playwright.async_api import async_playwright
from podfleet.pipeline.scrape import PageRequest, fetch_pages
from podfleet.pipeline.scrape.browser import LAUNCH_ARGS

from tests.integration.scrape.traps import Trap

pytestmark = [pytest.mark.chromium, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def trap():
    with Trap() as running:
        yield running


def rtc_page(trap: Trap) -> str:
    """Gathers ICE against STUN/TURN servers on the trap's ports, writes candidates into the
    page, and opens a WebTransport session to the trap's UDP port (https pages only)."""
    udp, tcp = trap.udp_port, trap.port
    servers = [
        {"urls": f"stun:127.0.0.1:{udp}"},
        {"urls": f"stun:localhost:{udp}"},
        {"urls": f"turn:127.0.0.1:{udp}?transport=udp", "username": "u", "credential": "p"},
        {"urls": f"turn:127.0.0.1:{tcp}?transport=tcp", "username": "u", "credential": "p"},
        {"urls": f"turn:trap.test:{tcp}?transport=tcp", "username": "u", "credential": "p"},
    ]
    if trap.has_v6:
        servers.append({"urls": f"stun:[::1]:{udp}"})
    return f"""<!doctype html><html><head><title>rtc</title><script>
const pc = new RTCPeerConnection({{iceServers: {servers!r}}});
const relay = new RTCPeerConnection({{iceServers: {servers!r}, iceTransportPolicy: 'relay'}});
for (const p of [pc, relay]) {{
  p.createDataChannel('x');
  p.onicecandidate = e => {{
    if (e.candidate && e.candidate.candidate)
      document.body.insertAdjacentHTML('beforeend', '<p class=c>' + e.candidate.candidate);
  }};
  p.createOffer().then(o => p.setLocalDescription(o));
}}
if (typeof WebTransport !== 'undefined') {{
  try {{ new WebTransport('https://127.0.0.1:{udp}/').ready.catch(() => {{}}); }} catch (e) {{}}
}}
</script></head><body><p>rtc</p></body></html>"""


async def test_control_an_ordinary_chromium_sends_stun_to_loopback(chromium_path, trap):
    """What main did: a page's RTCPeerConnection reaches a loopback UDP port."""
    trap.clear()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=list(LAUNCH_ARGS))
        try:
            page = await browser.new_page()
            await page.set_content(rtc_page(trap))
            await page.wait_for_timeout(1500)
        finally:
            await browser.close()
    assert (await trap.settle(0.3)) and trap.udp, "the control sent nothing: the trap is blind"


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_webrtc_and_webtransport_send_nothing(site, config, warm, trap, scheme):
    trap.clear()

    async def resolver(host: str, port: int) -> list[str]:
        if host == "trap.test":
            return ["127.0.0.1"]
        raise OSError(f"{host}: no such test name")

    cfg = config.model_copy(update={"quiet_window_ms": 1500, "render_timeout_s": 4})
    html = rtc_page(trap)
    requests = [
        PageRequest(url=f"{scheme}://rtc.podfleet.invalid/a", html=html),
        PageRequest(url=site.url("/inline-source/rtc"), html=html),
    ]
    pages = await fetch_pages(requests, cfg, warm, resolver=resolver)
    assert all(p.ok for p in pages), [p.error for p in pages]
    hits = await trap.settle(1.0)
    assert hits == [], hits
    for page in pages:  # no host, server-reflexive or relay candidate was gathered
        assert "typ host" not in page.html and "typ srflx" not in page.html, page.html[-500:]
        assert "typ relay" not in page.html
