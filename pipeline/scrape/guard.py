"""Address safety: which URLs the browser may reach.

Only `http`/`https` (and, for WebSockets, `ws`/`wss`) URLs whose host resolves to public addresses
are fetched. URLs are read the way Chromium reads them (WHATWG parsing by `ada_url`: `0x7f.1`,
`2130706433`, `%31%32%37.0.0.1` and full-width digits are all 127.0.0.1). Loopback, private,
link-local, site-local, CGNAT, unique-local, multicast, unspecified, reserved and cloud-metadata
addresses are refused, and so are IPv6 transition forms that carry an IPv4 address (IPv4-mapped
and -compatible, 6to4, NAT64, Teredo) unless it is an IPv4-mapped public one. Every address a name
resolves to is checked (one private address refuses the name). `SCRAPE_ALLOW_HOSTS` exempts hosts
on given ports only (see `AllowList`). Decisions are cached per host for one guard (one
`fetch_pages` call), so a name is resolved once and the proxy connects to the checked addresses.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import ada_url

__all__ = [
    "DEFAULT_PORTS",
    "AddressGuard",
    "AllowList",
    "Resolver",
    "Verdict",
    "classify_address",
    "host_of",
    "port_of",
    "scheme_of",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`async resolve(host, port) -> addresses`: how the guard turns a name into addresses."""

DEFAULT_PORTS = frozenset({80, 443})
_SCHEME_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_PAGE_SCHEMES = frozenset({"http", "https"})
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
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.169.253", "100.100.100.200")
) | frozenset({ipaddress.ip_address("fd00:ec2::254")})
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


@dataclass(frozen=True)
class Verdict:
    """The guard's decision on one host. `addresses` are the checked ones, to connect to."""

    allowed: bool
    reason: str = ""
    addresses: tuple[str, ...] = ()


def _parse(url: str) -> ada_url.URL | None:
    try:
        return ada_url.URL(url)
    except (ValueError, TypeError):
        return None


def scheme_of(url: str) -> str:
    """Lower-case scheme without the colon ('' when the URL does not parse)."""
    parsed = _parse(url)
    return parsed.protocol.rstrip(":").lower() if parsed is not None else ""


def _bare(host: str) -> str:
    return host.lower().strip("[]").rstrip(".")


def host_of(url: str) -> str:
    """The host Chromium would connect to, canonical and without brackets or trailing dots
    (`http://0x7f.1/` → `127.0.0.1`, `http://[::1]/` → `::1`); '' when there is none."""
    parsed = _parse(url)
    return _bare(parsed.hostname) if parsed is not None and parsed.hostname else ""


def port_of(url: str) -> int:
    """Explicit port, else the scheme's default (0 for a scheme without one)."""
    parsed = _parse(url)
    if parsed is None:
        return 0
    if parsed.port:
        return int(parsed.port)
    return _SCHEME_PORTS.get(parsed.protocol.rstrip(":").lower(), 0)


def canonical_host(host: str) -> str:
    """A host written any way (`0177.1`, `[::1]`, `Example.COM.`) as `host_of` returns it."""
    host = host.strip()
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host_of(f"http://{host}/") if host else ""


def _v4_reason(prefix: str, v4: ipaddress.IPv4Address) -> str:
    inner = classify_address(v4)
    return f"{prefix} of {v4}" + (f", {inner}" if inner else "")


def classify_address(ip: IPAddress) -> str | None:
    """Why an address must not be fetched, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            inner = classify_address(ip.ipv4_mapped)
            return f"an IPv4-mapped address of {ip.ipv4_mapped}, {inner}" if inner else None
        if ip in _METADATA_ADDRESSES:
            return "a cloud metadata address"
        if ip in _SIX_TO_FOUR:
            return _v4_reason("a 6to4 address", ip.sixtofour)  # type: ignore[arg-type]
        if ip in _NAT64:
            return _v4_reason("a NAT64 address", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if ip in _NAT64_LOCAL:
            return "a local-use NAT64 address"
        if ip.teredo is not None:
            return _v4_reason("a Teredo address", ip.teredo[1])
        if ip in _IPV4_COMPATIBLE and int(ip) > 1:
            v4 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
            return _v4_reason("an IPv4-compatible address", v4)
        if ip.is_site_local:
            return "a site-local address"
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


class AllowList:
    """`SCRAPE_ALLOW_HOSTS` entries: which (host, port) pairs skip the address rules.

    `host` allows ports 80 and 443 only; `host:port` that port; `host:*` every port. A host is a
    name, an IPv4 address (any spelling) or a bracketed IPv6 address (`[::1]:8080`). `.suffix`
    (with the same port forms) allows the domain itself and every name under it.
    """

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.rules: list[tuple[str, bool, frozenset[int] | None]] = []
        for raw in entries:
            if raw.strip():
                self.rules.append(self.parse_entry(raw))

    @staticmethod
    def parse_entry(raw: str) -> tuple[str, bool, frozenset[int] | None]:
        """(canonical host, is_suffix, ports or None for any); ValueError names the entry."""
        text = raw.strip()
        suffix = text.startswith(".")
        body = text[1:] if suffix else text
        ports: frozenset[int] | None = DEFAULT_PORTS
        host = body
        if body.startswith("["):
            end = body.find("]")
            host, rest = body[: end + 1], body[end + 1 :]
            if end < 0 or (rest and not rest.startswith(":")):
                raise ValueError(f"SCRAPE_ALLOW_HOSTS entry {raw!r}: unclosed [IPv6] address")
            port_text = rest[1:] if rest else None
        elif body.count(":") == 1:
            host, port_text = body.split(":")
        elif ":" in body:  # a bare IPv6 address: no port can follow it
            port_text = None
        else:
            port_text = None
        if port_text is not None:
            if port_text == "*":
                ports = None
            elif port_text.isdigit() and 0 < int(port_text) < 65536:
                ports = frozenset({int(port_text)})
            else:
                raise ValueError(
                    f"SCRAPE_ALLOW_HOSTS entry {raw!r}: the port must be 1-65535 or *, "
                    f"got {port_text!r}"
                )
        canonical = canonical_host(host)
        if not canonical:
            raise ValueError(
                f"SCRAPE_ALLOW_HOSTS entry {raw!r}: expected host, host:port, host:*, "
                "[IPv6]:port or .domain[:port]"
            )
        return canonical, suffix, ports

    def allows(self, host: str, port: int) -> bool:
        host = _bare(host)
        for name, suffix, ports in self.rules:
            if ports is not None and port not in ports:
                continue
            if host == name or (suffix and host.endswith("." + name)):
                return True
        return False

    def names_host(self, host: str) -> bool:
        """The host is listed on some port (name checks are skipped for it)."""
        host = _bare(host)
        return any(host == n or (s and host.endswith("." + n)) for n, s, _p in self.rules)


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port or 80, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class AddressGuard:
    """Checks hosts against the address rules; resolves each name once (`resolver`, default
    the system's getaddrinfo in a thread)."""

    def __init__(self, allow_hosts: Iterable[str] = (), resolver: Resolver | None = None) -> None:
        self.allow = AllowList(allow_hosts)
        self.resolver = resolver or _system_resolver
        self._cache: dict[tuple[str, bool], Verdict] = {}
        self._pending: dict[tuple[str, bool], asyncio.Future[Verdict]] = {}
        self.refused: dict[str, str] = {}  # host -> reason, for error messages
        self.refused_at: dict[tuple[str, int], str] = {}  # (host, port) -> reason

    def is_allowed_host(self, host: str, port: int = 443) -> bool:
        return self.allow.allows(host, port)

    def reason_for(self, host: str) -> str | None:
        """Why `host` was refused on some port (None when it never was)."""
        return self.refused.get(canonical_host(host) or _bare(host))

    def reason_for_url(self, url: str) -> str | None:
        """Why the host and port of `url` were refused (None when they never were)."""
        return self.refused_at.get((host_of(url), port_of(url)))

    @staticmethod
    def scheme_refusal(url: str, field: str = "url") -> str | None:
        """Why a page URL is refused before any check of its host (file:, data:, chrome:,
        view-source:, blob:, ws: ..., or no host), naming `field`; None when it is http(s)."""
        shown = url if len(url) <= 120 else url[:117] + "..."
        parsed = _parse(url)
        if parsed is None:
            return f"refused: {field} {shown!r} is not a valid URL"
        scheme = parsed.protocol.rstrip(":").lower()
        if scheme not in _PAGE_SCHEMES:
            return (
                f"refused: {field} {shown!r} is a {scheme}: URL; only http and https URLs "
                "are fetched"
            )
        if not parsed.hostname:
            return f"refused: {field} {shown!r} has no host"
        return None

    async def check_url(self, url: str, schemes: frozenset[str] = _PAGE_SCHEMES) -> Verdict:
        parsed = _parse(url)
        scheme = parsed.protocol.rstrip(":").lower() if parsed is not None else ""
        if parsed is None or scheme not in schemes or not parsed.hostname:
            return Verdict(False, self.scheme_refusal(url) or f"refused: {scheme}: URL")
        return await self.check_host(host_of(url), port_of(url))

    async def check_host(self, host: str, port: int) -> Verdict:
        """The verdict on connecting to `host` (any spelling) on `port`."""
        host = canonical_host(host)
        if not host:
            return Verdict(False, "refused: the request has no valid host")
        listed = self.allow.allows(host, port)
        key = (host, listed)
        cached = self._cache.get(key)
        if cached is not None:
            if not cached.allowed:
                self.refused_at[(host, port)] = cached.reason
            return cached
        pending = self._pending.get(key)
        if pending is not None:
            verdict = await asyncio.shield(pending)
            if not verdict.allowed:
                self.refused_at[(host, port)] = verdict.reason
            return verdict
        future: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            verdict = await self._decide(host, port, listed)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it themselves
            raise
        finally:
            self._pending.pop(key, None)
        self._cache[key] = verdict
        if not verdict.allowed:
            self.refused[host] = verdict.reason
            self.refused_at[(host, port)] = verdict.reason
        if not future.done():
            future.set_result(verdict)
        return verdict

    async def _addresses(self, host: str, port: int) -> list[str]:
        """Addresses of `host`, resolved once per guard whatever the port or listing."""
        for (cached_host, _listed), verdict in self._cache.items():
            if cached_host == host and verdict.addresses:
                return list(verdict.addresses)
        return list(dict.fromkeys(await self.resolver(host, port)))

    async def _decide(self, host: str, port: int, listed: bool) -> Verdict:
        if not listed and not self.allow.names_host(host):
            if host in _METADATA_NAMES:
                return Verdict(False, f"refused: {host} is a cloud metadata name")
            if host == "localhost" or host.endswith(".localhost"):
                return Verdict(False, f"refused: {host} is a loopback name")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await self._addresses(host, port)
            except (OSError, UnicodeError, ValueError) as exc:
                return Verdict(False, f"could not resolve host {host}: {exc}")
            if not addresses:
                return Verdict(False, f"could not resolve host {host}: no addresses")
        if not listed:
            for address in addresses:
                try:
                    why = classify_address(ipaddress.ip_address(address.split("%", 1)[0]))
                except ValueError:
                    why = "not an IP address"
                if why:
                    shown = host if host == address else f"{host} ({address})"
                    return Verdict(False, f"refused: {shown} is {why}")
        return Verdict(True, "", tuple(addresses))
