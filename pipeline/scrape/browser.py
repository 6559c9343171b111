"""The warm browser: find the executable, launch Chromium once per process, relaunch when broken.

The browser lives in `WarmResources` under the name `"browser"` as a `WarmBrowser` (Playwright's
driver plus the Browser). It is bound to the event loop that launched it: a caller on another
loop (a new test loop, say) gets a fresh one.

Chromium is launched on a fresh profile of ours (`launch_persistent_context`) so that the profile
can carry preferences no command-line flag sets in a full (new-headless) Chromium: WebRTC may not
send UDP past the proxy (`webrtc.ip_handling_policy = disable_non_proxied_udp`, so ICE gathers no
host or STUN candidates and TURN goes over TCP through the egress proxy, which checks it), and no
network prediction. Jobs never use that profile's own context (it is offline); each call opens an
off-the-record context on the same browser, which inherits these preferences.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loguru import logger
from podfleet.pipeline.config import ScrapeConfig
from podfleet.pipeline.errors import FatalWorkerError, StageError
from podfleet.pipeline.resources import WarmResources

__all__ = [
    "BLOCK_ARGS",
    "LAUNCH_ARGS",
    "PROFILE_PREFERENCES",
    "RESOURCE_NAME",
    "WarmBrowser",
    "find_executable",
    "get_browser",
    "launch_args",
    "relaunch_browser",
]

RESOURCE_NAME = "browser"
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    # No UDP from pages: QUIC is off above; WebRTC by the profile's preference (see module doc),
    # and by this switch in builds that read it (headless shell, content shell).
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--dns-prefetch-disable",
    "--disable-domain-reliability",
    "--no-pings",
)
# SCRAPE_BLOCK_RESOURCES=true: images and web fonts are never requested (Blink's own switches,
# exact by type and free: no request to intercept), and media does not autoplay.
BLOCK_ARGS = (
    "--blink-settings=imagesEnabled=false",
    "--disable-remote-fonts",
    "--autoplay-policy=user-gesture-required",
)
# Written to the fresh profile's Default/Preferences before launch.
PROFILE_PREFERENCES = {
    "webrtc": {"ip_handling_policy": "disable_non_proxied_udp"},
    "net": {"network_prediction_options": 2},  # never preconnect or prefetch
    "dns_prefetching": {"enabled": False},
}
_SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_LAUNCH_TIMEOUT_MS = 60_000


@dataclass
class WarmBrowser:
    playwright: Any
    browser: Any
    executable: str
    loop: asyncio.AbstractEventLoop
    driver_pid: int | None = None
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    blocks_resources: bool = True  # launched with BLOCK_ARGS
    profile_dir: str | None = None
    default_context: Any = None  # the profile's own context: offline, never used for jobs

    @property
    def healthy(self) -> bool:
        return (
            self.loop is _running_loop()
            and not self.disconnected.is_set()
            and self.browser.is_connected()
        )

    async def close(self) -> None:
        if self.loop is not _running_loop():
            self.kill()  # bound to another (dead) loop: nothing can be awaited on it any more
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.browser.close(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.playwright.stop(), 10)
        self._remove_profile()

    def _remove_profile(self) -> None:
        if self.profile_dir:
            shutil.rmtree(self.profile_dir, ignore_errors=True)

    def kill(self) -> None:
        """End the driver and its browser processes without the (unusable) Playwright client."""
        if self.driver_pid is None:
            return
        import psutil

        with contextlib.suppress(psutil.Error):
            driver = psutil.Process(self.driver_pid)
            procs = [*driver.children(recursive=True), driver]
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(procs, timeout=5)
        self._remove_profile()

    def browser_pids(self) -> list[int]:
        """Chromium's processes (for memory accounting and crash tests)."""
        import psutil

        with contextlib.suppress(psutil.Error):
            if self.driver_pid is not None:
                return [p.pid for p in psutil.Process(self.driver_pid).children(recursive=True)]
        return []


def _child_pids() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children()}


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _playwright_chromium() -> str | None:
    """Playwright's own downloaded Chromium, if a `playwright install` ever put one here."""
    base = Path.home() / ".cache" / "ms-playwright"
    for pattern in (
        "chromium_headless_shell-*/chrome-*/headless_shell",
        "chromium-*/chrome-*/chrome",
    ):
        found = sorted(base.glob(pattern), reverse=True)
        if found:
            return str(found[0])
    return None


def find_executable(config: ScrapeConfig) -> str:
    """config.executable_path, else Playwright's own browser, else a system Chromium on PATH."""
    if config.executable_path:
        path = config.executable_path
        resolved = shutil.which(path) or (path if os.path.isfile(path) else None)
        if not resolved or not os.access(resolved, os.X_OK):
            raise StageError(
                f"CHROMIUM_PATH={path!r} is not an executable file; "
                "point CHROMIUM_PATH at a Chromium binary (e.g. /usr/bin/chromium)"
            )
        return resolved
    own = _playwright_chromium()
    if own:
        return own
    for name in _SYSTEM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise StageError(
        "no Chromium found: set CHROMIUM_PATH to a Chromium executable "
        f"(looked for Playwright's browser and {', '.join(_SYSTEM_NAMES)} on PATH)"
    )


async def _launch(config: ScrapeConfig) -> WarmBrowser:
    from playwright.async_api import async_playwright

    executable = find_executable(config)
    last: BaseException | None = None
    for attempt in range(2):
        before = _child_pids()
        pw = await async_playwright().start()
        new_children = sorted(_child_pids() - before)
        profile = _new_profile()
        try:
            default_context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=launch_args(config),
                timeout=_LAUNCH_TIMEOUT_MS,
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
                offline=True,
                accept_downloads=False,
                service_workers="block",
            )
            browser = default_context.browser
            if browser is None:
                raise RuntimeError("Playwright gave no Browser for the persistent context")
            for page in list(default_context.pages):  # its first tab: not needed
                with contextlib.suppress(Exception):
                    await page.close()
        except Exception as exc:
            last = exc
            logger.warning("Chromium launch {} failed: {}", attempt + 1, str(exc)[:300])
            with contextlib.suppress(Exception):
                await pw.stop()
            shutil.rmtree(profile, ignore_errors=True)
            continue
        warm = WarmBrowser(
            pw,
            browser,
            executable,
            asyncio.get_running_loop(),
            driver_pid=new_children[0] if len(new_children) == 1 else None,
            blocks_resources=config.block_resources,
            profile_dir=profile,
            default_context=default_context,
        )

        def on_disconnected(_browser: object, event: asyncio.Event = warm.disconnected) -> None:
            event.set()

        browser.on("disconnected", on_disconnected)
        logger.info("Chromium {} launched from {}", browser.version, executable)
        return warm
    first_line = str(last).strip().splitlines()[0][:300] if last else "unknown error"
    raise FatalWorkerError(f"Chromium at {executable} failed to launch twice: {first_line}")


def launch_args(config: ScrapeConfig) -> list[str]:
    """Chromium's switches for this config: LAUNCH_ARGS, plus BLOCK_ARGS when blocking."""
    return [*LAUNCH_ARGS, *(BLOCK_ARGS if config.block_resources else ())]


def _new_profile() -> str:
    """A fresh Chromium user-data directory whose default profile has PROFILE_PREFERENCES."""
    profile = tempfile.mkdtemp(prefix="podfleet-chromium-")
    os.makedirs(os.path.join(profile, "Default"))
    with open(os.path.join(profile, "Default", "Preferences"), "w", encoding="utf-8") as f:
        json.dump(PROFILE_PREFERENCES, f)
    return profile


async def _close(warm: WarmBrowser) -> None:
    await warm.close()


async def get_browser(resources: WarmResources, config: ScrapeConfig) -> WarmBrowser:
    """The process's warm browser; a dead, foreign-loop or differently switched one (another
    SCRAPE_BLOCK_RESOURCES) is replaced first."""
    warm: WarmBrowser | None = resources.peek(RESOURCE_NAME)
    if warm is not None and not warm.healthy:
        logger.warning("warm Chromium is gone (crashed or closed); relaunching")
        await resources.discard(RESOURCE_NAME)
    elif warm is not None and warm.blocks_resources != config.block_resources:
        logger.info("SCRAPE_BLOCK_RESOURCES changed; relaunching Chromium with its switches")
        await resources.discard(RESOURCE_NAME)
    return await resources.get(RESOURCE_NAME, lambda: _launch(config), _close)


async def relaunch_browser(resources: WarmResources, config: ScrapeConfig) -> WarmBrowser:
    await resources.discard(RESOURCE_NAME)
    return await resources.get(RESOURCE_NAME, lambda: _launch(config), _close)
