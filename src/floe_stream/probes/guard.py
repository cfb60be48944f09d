"""Where a contract may make floe connect: the operator's allow-list, checked on resolved addresses.

A contract names its probe target (``servers``, ``floe.probe``), so without a bound any contract author could
make every processor connect to any host and port the processors can reach (an admin endpoint on loopback, a
metadata service on a link-local address, a port scan of the private network). The rule:

* public addresses are allowed (``checks.probe_allow_public``, default true);
* loopback, link-local, private, shared, multicast and reserved addresses (everything that is not globally
  routable) are denied unless a network in ``checks.probe_allow`` contains them;
* a name is resolved and *every* address it resolves to must be allowed; the ping then connects to the
  address that was checked (never re-resolving, so a name cannot change its answer between check and connect).

A target that is not allowed is not pinged: "not evaluated: probe target not allowed" (explain, lint, the
metric ``floe_probes_refused``), never a failed ping. :func:`static_problem` is the part that needs no DNS
(literal addresses, ``localhost``) for lint and explain.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from floe_stream.probes.base import Endpoint, ProbeTarget

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"postgres": 5432, "kafka": 9092}
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class ProbeRefused(Exception):
    """The target is not one the operator allows; ``str(exc)`` says which address and why."""


def _kind(ip: Address) -> str | None:
    """Why ``ip`` is denied by default (None: globally routable)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            return _kind(embedded)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


@dataclass(frozen=True, slots=True)
class ProbeGuard:
    """The operator's allow-list (``checks.probe_allow``, ``checks.probe_allow_public``)."""

    allow: tuple[Network, ...] = ()
    allow_public: bool = True
    unrestricted: bool = False  # tests and benchmarks with fake targets only: checks nothing

    @classmethod
    def from_settings(cls, networks: Iterable[str], allow_public: bool = True) -> ProbeGuard:
        """Raises ValueError naming an entry that is not an address or network (``10.0.0.0/8``, ``::1``)."""
        parsed: list[Network] = []
        for entry in networks:
            try:
                parsed.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"checks.probe_allow: {entry!r} is not an IP address or network (e.g. 10.0.0.0/8, 127.0.0.1)"
                ) from None
        return cls(tuple(parsed), allow_public)

    @classmethod
    def everything(cls) -> ProbeGuard:
        return cls(unrestricted=True)

    def denial(self, ip: Address) -> str | None:
        """Why a connection to ``ip`` is not allowed, or None."""
        if self.unrestricted or any(ip in net for net in self.allow if net.version == ip.version):
            return None
        kind = _kind(ip)
        if kind is not None:
            return f"{ip} is a {kind} address (allow it in checks.probe_allow)"
        if not self.allow_public:
            return f"{ip} is not in checks.probe_allow"
        return None

    async def pin(self, target: ProbeTarget) -> ProbeTarget:
        """``target`` with every host it names resolved, checked and pinned (``endpoints``); raises
        :class:`ProbeRefused` when one of its addresses is not allowed, OSError when a name does not resolve."""
        if self.unrestricted:
            return target
        loop = asyncio.get_running_loop()
        endpoints: list[Endpoint] = []
        for host, port in hosts_of(target):
            try:
                ip = ipaddress.ip_address(host.strip("[]"))
                addresses: list[Address] = [ip]
            except ValueError:
                infos = await loop.getaddrinfo(host, port or None, type=socket.SOCK_STREAM)
                addresses = list(
                    dict.fromkeys(ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos)
                )
            for ip in addresses:
                why = self.denial(ip)
                if why is not None:
                    shown = "" if host.strip("[]") == str(ip) else f"{host} ({ip}): "
                    raise ProbeRefused(f"probe target not allowed: {shown}{why}")
            if addresses:
                endpoints.append(Endpoint(host, str(addresses[0]), port))
        return replace(target, endpoints=tuple(endpoints))


def hosts_of(target: ProbeTarget) -> list[tuple[str, int]]:
    """(host, port) pairs a probe of ``target`` connects to (port 0: the probe's default / none)."""
    out: list[tuple[str, int]] = []
    if target.url:
        text = target.url.removeprefix("kafka://") if target.type == "kafka" else target.url
        if "://" in text:
            parts = urlsplit(text)
            if parts.hostname:
                default = 443 if parts.scheme == "https" else 80 if parts.scheme == "http" else 0
                out.append((parts.hostname, _port(parts) or default))
        else:  # kafka bootstrap list "a:9092,b:9092"
            for item in text.split(","):
                host, _, port = item.strip().rpartition(":")
                if host:
                    out.append((host, int(port) if port.isdigit() else DEFAULT_PORTS.get(target.type, 0)))
        return out
    if target.host:
        host, sep, port = target.host.rpartition(":")
        if sep and port.isdigit() and "]" not in port and host:  # "host:port" in `host` (ODCS kafka servers)
            out.append((host, target.port or int(port)))
        else:
            default = 80 if target.type == "http" else DEFAULT_PORTS.get(target.type, 0)
            out.append((target.host, target.port or default))
    return out


def _port(parts: object) -> int | None:
    try:
        return getattr(parts, "port", None)
    except ValueError:  # a port that is not a number: the probe reports the URL as invalid
        return None


def static_problem(target: ProbeTarget, guard: ProbeGuard) -> str | None:
    """What can be said without DNS: a literal address or a local name the allow-list does not permit."""
    for host, _ in hosts_of(target):
        bare = host.strip("[]")
        try:
            ip = ipaddress.ip_address(bare)
        except ValueError:
            if bare.lower().rstrip(".") in _LOCAL_NAMES or bare.lower().rstrip(".").endswith(".localhost"):
                ip = ipaddress.ip_address("127.0.0.1")
            else:
                continue
        why = guard.denial(ip)
        if why is not None:
            return (
                f"probe target not allowed: {why}"
                if bare == str(ip)
                else f"probe target not allowed: {host}: {why}"
            )
    return None
