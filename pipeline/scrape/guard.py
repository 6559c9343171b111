"""Address safety: which URLs the browser may reach.

Only `http`/`https` URLs whose host resolves to public addresses are fetched. Loopback, private
(RFC 1918), link-local, CGNAT, unique-local IPv6, multicast, unspecified and cloud-metadata
addresses are refused unless the host is in the allow-list. Every address a name resolves to is
checked (a name with one public and one private address is refused). Decisions are cached per
host for the life of one guard (one `fetch_pages` call).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["AddressGuard", "Verdict", "host_of"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_NAMES = frozenset(
    {
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_SAFE_SCHEMES = frozenset({"http", "https", "ws", "wss"})


@dataclass(frozen=True)
class Verdict:
    """The guard's decision on one host. `addresses` are the checked ones, to connect to."""

    allowed: bool
    reason: str = ""
    addresses: tuple[str, ...] = ()


def host_of(url: str) -> str:
    """Lower-case host of a URL without brackets (`[::1]` → `::1`); '' when there is none."""
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def _classify(ip: IPAddress) -> str | None:
    """Why an address must not be fetched, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return _classify(ip.ipv4_mapped)
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return "a reserved address"
    if ip.is_private or not ip.is_global:
        return "a private address"
    return None


class AddressGuard:
    """Checks hosts against the address rules; resolves names once per host (in a thread)."""

    def __init__(self, allow_hosts: tuple[str, ...] | list[str] = ()) -> None:
        self.allow_hosts = frozenset(
            h.strip().lower().strip("[]") for h in allow_hosts if h.strip()
        )
        self._cache: dict[str, Verdict] = {}
        self._pending: dict[str, asyncio.Future[Verdict]] = {}
        self.refused: dict[str, str] = {}  # host -> reason, for error messages

    def is_allowed_host(self, host: str) -> bool:
        host = host.lower()
        return host in self.allow_hosts or any(
            a.startswith(".") and host.endswith(a) for a in self.allow_hosts
        )

    def reason_for(self, host: str) -> str | None:
        return self.refused.get(host.lower())

    def scheme_refusal(self, url: str) -> str | None:
        """Why a URL's scheme is refused (file:, data:, chrome:, ...), or None."""
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme not in _SAFE_SCHEMES:
            return f"refused: {scheme or 'missing'}: URLs are not fetched (only http and https)"
        if not host_of(url):
            return "refused: the URL has no host"
        return None

    async def check_url(self, url: str) -> Verdict:
        refusal = self.scheme_refusal(url)
        if refusal:
            return Verdict(False, refusal)
        port = urlsplit(url).port
        return await self.check_host(host_of(url), port)

    async def check_host(self, host: str, port: int | None = None) -> Verdict:
        host = host.lower().strip("[]").rstrip(".")
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        pending = self._pending.get(host)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._pending[host] = future
        try:
            verdict = await self._decide(host, port)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            self._pending.pop(host, None)
        self._cache[host] = verdict
        if not verdict.allowed:
            self.refused[host] = verdict.reason
        if not future.done():
            future.set_result(verdict)
        return verdict

    async def _decide(self, host: str, port: int | None) -> Verdict:
        allowed_by_list = self.is_allowed_host(host)
        if not allowed_by_list and (
            host in _METADATA_NAMES or host == "localhost" or host.endswith(".localhost")
        ):
            kind = "a loopback name" if "localhost" in host else "a cloud metadata name"
            return Verdict(False, f"refused: {host} is {kind}")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port or 80, type=socket.SOCK_STREAM
                )
            except (OSError, UnicodeError) as exc:
                return Verdict(False, f"could not resolve host {host}: {exc}")
            addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if not allowed_by_list:
            for address in addresses:
                why = _classify(ipaddress.ip_address(address.split("%", 1)[0]))
                if why:
                    shown = host if host == address else f"{host} ({address})"
                    return Verdict(False, f"refused: {shown} is {why}")
        return Verdict(True, "", tuple(addresses))
