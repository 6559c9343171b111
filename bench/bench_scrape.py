"""Scraping throughput and memory: `fetch_pages` against crawlee's PlaywrightCrawler (defaults) and
a naive one-page-at-a-time Playwright loop, on the same loopback site and the same Chromium.

    python bench/bench_scrape.py [--pages 240] [--scenarios 0,300,300x4]
                                 [--chromium /usr/bin/chromium]

One scenario per --scenarios entry, `MS` or `MSxHOSTS`, each with all three contenders: the
fixture site delays every article page and sub-resource by a median of MS milliseconds, uniform
jitter +-50% (--jitter), fixed per URL; 0 is pure loopback (every page is Chromium CPU), 300 a
remote site. xHOSTS serves the same site on HOSTS loopback addresses (127.0.0.1 .. 127.0.0.HOSTS)
and deals the pages over them, like sources from several news sites: per-host politeness limits
and Chromium's 6 connections per host then apply per site, as on the web (default: one host).
Writes bench/results/scrape.json.
The fixture site (tests/fixtures/site) runs in its own process so that serving pages does not
compete with the measured client for this process's GIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from loguru import logger  # noqa: E402
from podfleet.pipeline.config import ScrapeConfig  # noqa: E402
from podfleet.pipeline.resources import WarmResources  # noqa: E402
from podfleet.pipeline.scrape import PageRequest, default_concurrency, fetch_pages  # noqa: E402
from podfleet.pipeline.scrape.browser import LAUNCH_ARGS  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SITE_SCRIPT = """
import asyncio, sys, uvicorn
from tests.fixtures.site.app import build_app
port, latency_ms, jitter = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
hosts = sys.argv[4].split(",")
app = build_app(latency_ms=latency_ms, jitter=jitter)
servers = [
    uvicorn.Server(uvicorn.Config(app, host=h, port=port, log_level="warning", access_log=False))
    for h in hosts
]
async def serve():
    await asyncio.gather(*(s.serve() for s in servers))
asyncio.run(serve())
"""


def site_hosts(count: int) -> list[str]:
    """`count` loopback addresses: 127.0.0.1, 127.0.0.2, ... (all of 127/8 is loopback)."""
    if not 1 <= count <= 250:
        raise SystemExit(f"hosts: 1 to 250 expected, got {count}")
    return [f"127.0.0.{k}" for k in range(1, count + 1)]


@contextlib.contextmanager
def fixture_site(latency_ms: float = 0, jitter: float = 0.5, hosts: int = 1):
    """The fixture site in its own process; yields one base URL per host."""
    port = free_port()
    names = site_hosts(hosts)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            SITE_SCRIPT,
            str(port),
            str(latency_ms),
            str(jitter),
            ",".join(names),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bases = [f"http://{h}:{port}" for h in names]
    SITE_PIDS.add(proc.pid)
    try:
        deadline = time.monotonic() + 20
        waiting = list(bases)
        while waiting:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(waiting[0] + "/", timeout=1).status_code == 200:
                    waiting.pop(0)
                    continue
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("fixture site did not start")
            time.sleep(0.1)
        yield bases
    finally:
        proc.terminate()
        proc.wait(10)


SITE_PIDS: set[int] = set()  # the fixture site's process: not part of the measured client


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux PR_SET_CHILD_SUBREAPER): Chromium's zygote double-forks
    its renderers, which would otherwise leave our process tree and our CPU accounting."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def tree_cpu_s() -> float:
    """CPU seconds used so far by this process and every descendant but the fixture site: live
    ones (with what they reaped) plus what we reaped. Adopted orphans that exited (zombies) are
    reaped here first, so their time is counted. Unlike the machine's busy time, this does not
    count other programs on a shared machine."""
    import resource

    me = psutil.Process()
    for child in me.children():
        if child.pid in SITE_PIDS:
            continue
        with contextlib.suppress(psutil.Error, ChildProcessError, OSError):
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    site_tree = set(SITE_PIDS)
    for pid in SITE_PIDS:
        with contextlib.suppress(psutil.Error):
            site_tree |= {c.pid for c in psutil.Process(pid).children(recursive=True)}
    for proc in me.children(recursive=True):
        if proc.pid in site_tree:
            continue
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def machine_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far, minus the fixture site's. Counting our
    process tree would miss most of Chromium: its zygote double-forks the renderers, which are
    then no descendants of ours. So run the benchmark on an otherwise idle machine."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
    for pid in SITE_PIDS:
        with contextlib.suppress(psutil.Error):
            site = psutil.Process(pid).cpu_times()
            busy -= site.user + site.system
    return busy


class Clock:
    """Wall time and client CPU time of one measured run."""

    def __enter__(self) -> Clock:
        self.tree0, self.cpu0 = tree_cpu_s(), machine_cpu_s()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu_s = machine_cpu_s() - self.cpu0
        self.tree_cpu_s = tree_cpu_s() - self.tree0

    def report(self, ok: int) -> dict:
        return {
            "seconds": round(self.seconds, 2),
            "pages_ok": ok,
            "pages_per_s": round(ok / self.seconds, 2),
            # our process tree (adopted renderers included): what this client costs
            "cpu_ms_per_page": round(1000 * self.tree_cpu_s / max(ok, 1), 1),
            # the whole machine minus the site: equal to the above only on an idle machine
            "machine_cpu_ms_per_page": round(1000 * self.cpu_s / max(ok, 1), 1),
        }


def tree_rss_bytes() -> int:
    """RSS of this process plus every descendant (Playwright driver, Chromium processes)."""
    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        if child.pid in SITE_PIDS:
            continue
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return total


async def run_ours(urls: list[str], config: ScrapeConfig, warm: bool) -> dict:
    resources = WarmResources()
    try:
        if warm:  # a warm worker: the browser is up before the job arrives
            await fetch_pages([PageRequest(url=urls[0])], config, resources)
        with Clock() as clock:
            pages = await fetch_pages([PageRequest(url=u) for u in urls], config, resources)
    finally:
        await resources.close_all()
    return clock.report(sum(p.ok for p in pages))


async def run_naive(urls: list[str], chromium: str) -> dict:
    from playwright.async_api import async_playwright

    ok = 0
    async with async_playwright() as pw:  # browser launched before the clock, like ours_warm
        browser = await pw.chromium.launch(executable_path=chromium, args=list(LAUNCH_ARGS))
        page = await browser.new_page()
        with Clock() as clock:
            for url in urls:  # one page, reused: goto + content, one URL at a time
                response = await page.goto(url, wait_until="load")
                html = await page.content()
                ok += bool(response and response.ok and html)
        await browser.close()
    return clock.report(ok)


async def run_crawlee(urls: list[str], chromium: str, tag: str) -> dict:
    from crawlee import Request
    from crawlee.crawlers import PlaywrightCrawler, PlaywrightCrawlingContext
    from crawlee.storage_clients import MemoryStorageClient

    ok = 0

    crawler = PlaywrightCrawler(
        # same binary and flags as the others (root needs --no-sandbox); crawler options default
        browser_launch_options={
            "executable_path": chromium,
            "chromium_sandbox": False,
            "args": list(LAUNCH_ARGS),
        },
        storage_client=MemoryStorageClient(),
        configure_logging=False,
    )

    @crawler.router.default_handler
    async def handle(context: PlaywrightCrawlingContext) -> None:
        nonlocal ok
        html = await context.page.content()
        ok += bool(html)

    with Clock() as clock:
        # unique keys per round: crawlee's default queue outlives a crawler and dedupes URLs
        await crawler.run(
            [Request.from_url(u, unique_key=f"{tag}:{u}") for u in urls]
        )  # launches and closes its own browser (about 1 s of the run)
    return clock.report(ok)


async def run_rss(base: str, config: ScrapeConfig, calls: int, per_call: int) -> dict:
    resources = WarmResources()
    try:
        urls = [f"{base}/article/{n}" for n in range(per_call)]
        await fetch_pages([PageRequest(url=u) for u in urls], config, resources)  # warm-up
        gc.collect()
        start = tree_rss_bytes()
        peak = start
        failures = 0
        for call in range(calls):
            urls = [f"{base}/article/{(call * per_call + k) % 240}" for k in range(per_call)]
            pages = await fetch_pages([PageRequest(url=u) for u in urls], config, resources)
            failures += sum(not p.ok for p in pages)
            peak = max(peak, tree_rss_bytes())
        gc.collect()
        await asyncio.sleep(1)  # let Chromium release the closed contexts
        end = tree_rss_bytes()
    finally:
        await resources.close_all()
    mb = 1024 * 1024
    return {
        "calls": calls,
        "pages_per_call": per_call,
        "failures": failures,
        "rss_start_mb": round(start / mb, 1),
        "rss_end_mb": round(end / mb, 1),
        "rss_peak_mb": round(peak / mb, 1),
        "rss_growth_mb": round((end - start) / mb, 1),
    }


def best(runs: list[dict]) -> dict:
    """The fastest of the rounds (the machine is shared: slower rounds measure the neighbours)."""
    top = max(runs, key=lambda r: r["pages_per_s"])
    return {**top, "rounds_pages_per_s": [r["pages_per_s"] for r in runs]}


def parse_scenarios(text: str) -> list[tuple[float, int]]:
    """`0,300,300x4` -> [(0, 1), (300, 1), (300, 4)]: (median latency ms, hosts)."""
    scenarios = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        latency, _, hosts = entry.partition("x")
        try:
            scenario = (float(latency), int(hosts) if hosts else 1)
        except ValueError:
            scenario = (-1.0, 0)
        if scenario[0] < 0 or not 1 <= scenario[1] <= 250:
            raise SystemExit(
                f"--scenarios: comma-separated MS or MSxHOSTS (MS >= 0, HOSTS 1-250) expected, "
                f"got {entry!r}"
            )
        scenarios.append(scenario)
    if not scenarios:
        raise SystemExit(f"--scenarios: at least one scenario expected, got {text!r}")
    return scenarios


async def run_scenario(
    args: argparse.Namespace, config: ScrapeConfig, latency_ms: float, hosts: int, first: bool
) -> tuple[dict, dict]:
    """All three contenders at one site latency; the first scenario also measures cold and RSS."""
    rounds = args.rounds if latency_ms == 0 else args.latency_rounds
    scenario: dict = {
        "latency_ms_median": latency_ms,
        "rounds": rounds,
        "load_average_1m_at_start": round(os.getloadavg()[0], 1),
    }
    runs: dict[str, list[dict]] = {"ours_warm": [], "crawlee": [], "naive": []}
    extra: dict = {}
    scenario["hosts"] = hosts
    with fixture_site(latency_ms, args.jitter, hosts) as bases:
        base = bases[0]
        urls = [f"{bases[n % len(bases)]}/article/{n % 240}" for n in range(args.pages)]
        for round_no in range(rounds):  # interleaved, so a busy spell hits every peer alike
            runs["ours_warm"].append(await run_ours(urls, config, warm=True))
            if "crawlee" not in args.skip:
                tag = f"{latency_ms}x{hosts}:r{round_no}"
                runs["crawlee"].append(await run_crawlee(urls, args.chromium, tag))
            if "naive" not in args.skip:
                runs["naive"].append(await run_naive(urls, args.chromium))
        if first:
            extra["ours_cold"] = await run_ours(urls, config, warm=False)
            if "rss" not in args.skip:
                extra["rss"] = await run_rss(base, config, args.rss_calls, 10)
    for name, measured in runs.items():
        if measured:
            scenario[name] = best(measured)
    scenario["load_average_1m_at_end"] = round(os.getloadavg()[0], 1)
    ours = scenario["ours_warm"]["pages_per_s"]
    scenario["ratios"] = {
        f"ours_vs_{peer}": round(ours / scenario[peer]["pages_per_s"], 2)
        for peer in ("crawlee", "naive")
        if peer in scenario
    }
    return scenario, extra


def print_scenario(name: str, scenario: dict, cold: dict | None) -> None:
    print(
        f"\n== site latency {name} (load {scenario['load_average_1m_at_start']}"
        f" -> {scenario['load_average_1m_at_end']}) =="
    )
    print(
        f"{'run':<12}{'seconds':>10}{'pages ok':>10}{'pages/s':>10}{'CPU ms/page':>13}"
        f"{'machine ms/page':>17}  rounds"
    )
    rows = {k: scenario[k] for k in ("ours_warm", "crawlee", "naive") if k in scenario}
    if cold:
        rows = {"ours_warm": rows.pop("ours_warm"), "ours_cold": cold, **rows}
    for run, r in rows.items():
        cpu = "-" if r["cpu_ms_per_page"] is None else f"{r['cpu_ms_per_page']:.1f}"
        machine = r.get("machine_cpu_ms_per_page")
        machine = "-" if machine is None else f"{machine:.1f}"
        print(
            f"{run:<12}{r['seconds']:>10.2f}{r['pages_ok']:>10}{r['pages_per_s']:>10.1f}"
            f"{cpu:>13}{machine:>17}  {r.get('rounds_pages_per_s', '')}"
        )
    for ratio, value in scenario["ratios"].items():
        print(f"{ratio:<20}{value:>8.2f}x")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=240)
    parser.add_argument(
        "--scenarios",
        default="0,300,300x4",
        help="comma-separated MS (median site latency; 0 = pure loopback) or MSxHOSTS (the "
        "pages dealt over HOSTS loopback addresses), one scenario each",
    )
    parser.add_argument("--jitter", type=float, default=0.5, help="uniform +-fraction of latency")
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds at 0 ms; best kept"
    )
    parser.add_argument("--latency-rounds", type=int, default=1, help="rounds at latency > 0")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--rss-calls", type=int, default=50)
    parser.add_argument("--skip", nargs="*", default=[], help="crawlee, naive, rss")
    parser.add_argument(
        "--per-domain-concurrency", type=int, default=None, help="ours; default: the setting's"
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="ours; default: derived from memory"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scrape.json")
    args = parser.parse_args()
    subreaper = become_subreaper()
    scenarios = parse_scenarios(args.scenarios)
    hosts = site_hosts(max(h for _, h in scenarios))
    if not 0 <= args.jitter < 1:
        raise SystemExit(f"--jitter: a fraction in [0, 1) expected, got {args.jitter}")
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    logging.getLogger("crawlee").setLevel(logging.WARNING)
    os.environ.setdefault("CRAWLEE_STORAGE_DIR", tempfile.mkdtemp(prefix="crawlee-"))

    # the site moves to a free port per scenario: its loopback hosts on every port
    config = ScrapeConfig(executable_path=args.chromium, allow_hosts=tuple(f"{h}:*" for h in hosts))
    if args.per_domain_concurrency is not None:
        config = config.model_copy(update={"per_domain_concurrency": args.per_domain_concurrency})
    if args.concurrency is not None:
        config = config.model_copy(update={"concurrency": args.concurrency})
    results: dict = {
        "pages": args.pages,
        "load_average_1m_at_start": round(os.getloadavg()[0], 1),
        "chromium": args.chromium,
        "cpus": os.cpu_count(),
        "cpu_accounting": "process tree, orphaned renderers adopted"
        if subreaper
        else "process tree (no subreaper: renderers may be missed)",
        "concurrency": config.concurrency or default_concurrency(),
        "per_domain_concurrency": config.per_domain_concurrency,
        "latency_jitter": f"uniform +-{args.jitter:.0%} of the median, fixed per URL",
        "scenarios": {},
    }
    started = time.perf_counter()
    for k, (latency_ms, n_hosts) in enumerate(scenarios):
        name = f"{latency_ms:g}ms" + (f" over {n_hosts} hosts" if n_hosts > 1 else "")
        scenario, extra = await run_scenario(args, config, latency_ms, n_hosts, first=k == 0)
        results["scenarios"][name] = scenario
        results.update(extra)
        print_scenario(name, scenario, extra.get("ours_cold"))
    results["load_average_1m_at_end"] = round(os.getloadavg()[0], 1)
    results["total_seconds"] = round(time.perf_counter() - started, 1)

    if "rss" in results:
        r = results["rss"]
        print(
            f"\nRSS over {r['calls']} calls of {r['pages_per_call']} pages: "
            f"start {r['rss_start_mb']} MB, end {r['rss_end_mb']} MB, peak {r['rss_peak_mb']} MB, "
            f"growth {r['rss_growth_mb']} MB ({r['failures']} failed pages)"
        )
    print(
        f"load average (1 min): {results['load_average_1m_at_start']} at start, "
        f"{results['load_average_1m_at_end']} at end, on {results['cpus']} CPUs; "
        f"{results['total_seconds']} s in all"
    )
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    asyncio.run(main())
