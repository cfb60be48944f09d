"""Probes go only where the operator allows, with no credential a contract could capture, and one contract's
pings cannot take every slot."""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from floe_stream.probes.base import ProbeError, ProbeTarget
from floe_stream.probes.builtin import KafkaProbe, PostgresProbe, TcpProbe
from floe_stream.probes.credentials import ProbeCredentials
from floe_stream.probes.guard import ProbeGuard, ProbeRefused, hosts_of, static_problem
from floe_stream.probes.runner import FairSlots, ProbeRunner
from tests.conftest import wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),  # cloud metadata services
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("fd00::1", "private"),
    ],
)
def test_non_global_addresses_are_denied_unless_listed(address: str, kind: str) -> None:
    import ipaddress

    ip = ipaddress.ip_address(address)
    assert kind in (ProbeGuard().denial(ip) or "")
    assert ProbeGuard.from_settings(["0.0.0.0/0", "::/0"]).denial(ip) is None


def test_public_addresses_are_allowed_unless_the_operator_says_only_the_list() -> None:
    import ipaddress

    ip = ipaddress.ip_address("93.184.216.34")
    assert ProbeGuard().denial(ip) is None
    assert "not in checks.probe_allow" in (ProbeGuard(allow_public=False).denial(ip) or "")
    assert ProbeGuard.from_settings(["93.184.216.0/24"], allow_public=False).denial(ip) is None
    with pytest.raises(ValueError, match="not an IP address or network"):
        ProbeGuard.from_settings(["example.com"])


def test_hosts_of_every_target_shape() -> None:
    assert hosts_of(ProbeTarget(type="http", url="http://127.0.0.1:18080/internal/admin?x=1")) == [
        ("127.0.0.1", 18080)
    ]
    assert hosts_of(ProbeTarget(type="http", url="https://api.example/health")) == [("api.example", 443)]
    assert hosts_of(ProbeTarget(type="kafka", host="k.internal:9093")) == [("k.internal", 9093)]
    assert hosts_of(ProbeTarget(type="kafka", url="kafka://a:9092,b:9094")) == [("a", 9092), ("b", 9094)]
    assert hosts_of(ProbeTarget(type="postgres", host="db")) == [("db", 5432)]
    assert hosts_of(ProbeTarget(type="tcp", host="10.0.0.1", port=22)) == [("10.0.0.1", 22)]


def test_static_problem_names_literal_addresses_and_local_names() -> None:
    http = ProbeTarget(type="http", url="http://127.0.0.1:18080/internal/admin/delete?all=1")
    assert static_problem(http, ProbeGuard()) == (
        "probe target not allowed: 127.0.0.1 is a loopback address (allow it in checks.probe_allow)"
    )
    assert "localhost" in (
        static_problem(ProbeTarget(type="tcp", host="localhost", port=1), ProbeGuard()) or ""
    )
    assert (
        static_problem(ProbeTarget(type="tcp", host="db.acme.internal", port=1), ProbeGuard()) is None
    )  # DNS: at ping
    assert static_problem(http, ProbeGuard.from_settings(["127.0.0.1"])) is None


async def test_a_name_is_resolved_and_every_address_checked_then_pinned() -> None:
    with pytest.raises(ProbeRefused, match=r"localhost \((127\.0\.0\.1|::1)\): .* loopback"):
        await ProbeGuard().pin(ProbeTarget(type="tcp", host="localhost", port=9))
    pinned = await ProbeGuard.from_settings(["127.0.0.0/8", "::1"]).pin(
        ProbeTarget(type="tcp", host="localhost", port=9)
    )
    assert pinned.endpoints[0].host == "localhost" and pinned.endpoints[0].address in ("127.0.0.1", "::1")


async def test_a_refused_target_is_not_pinged_and_gives_no_result() -> None:
    seen: list[str] = []
    told: list[tuple[str, str]] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append("connected")
        writer.close()

    srv = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    async with srv:
        runner = ProbeRunner({"tcp": TcpProbe()}, on_refused=lambda a, r: told.append((a, r)))
        target = ProbeTarget(type="tcp", host="127.0.0.1", port=port)
        assert await runner.ping("a", target, T0, 5) is None
        assert await runner.ping("a", target, T0, 5) is None
        assert runner.submit("a", target, T0, 5)
        await wait_for(lambda: not runner.inflight)
    assert seen == [] and runner.results == [] and runner.refused == 3
    assert told == [
        ("a", "probe target not allowed: 127.0.0.1 is a loopback address (allow it in checks.probe_allow)")
    ]


async def test_one_contract_never_holds_more_than_its_share_of_the_slots() -> None:
    slots = FairSlots(8, per_owner=2)
    for _ in range(2):
        await slots.acquire("tarpit")
    blocked = asyncio.ensure_future(slots.acquire("tarpit"))
    await asyncio.sleep(0)
    assert not blocked.done()  # over its share although 6 slots are free
    await asyncio.wait_for(slots.acquire("healthy"), 1)
    assert slots.held == {"tarpit": 2, "healthy": 1}
    slots.release("tarpit")
    await asyncio.wait_for(blocked, 1)
    blocked.cancel()


async def test_a_freed_slot_goes_to_the_waiting_contract_holding_the_fewest() -> None:
    slots = FairSlots(2, per_owner=2)
    await slots.acquire("a")
    await slots.acquire("a")
    more_a = asyncio.ensure_future(slots.acquire("a"))
    b = asyncio.ensure_future(slots.acquire("b"))
    await asyncio.sleep(0)
    slots.release("a")
    await asyncio.wait_for(b, 1)
    assert not more_a.done()
    more_a.cancel()
    with pytest.raises(asyncio.CancelledError):
        await more_a
    assert slots.waiting == {}


# --- PostgreSQL: availability without a password; a credential only where bound, over verified TLS -------


class FakePostgres:
    """A listener speaking the first step of the PostgreSQL protocol: it asks for a cleartext password
    (AuthenticationCleartextPassword) and records what the client sends back."""

    def __init__(self, answer: bytes | None = None) -> None:
        self.answer = answer or b"R" + struct.pack("!ii", 8, 3)
        self.received: list[bytes] = []
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            n = struct.unpack("!i", await reader.readexactly(4))[0]
            self.received.append(await reader.readexactly(n - 4))
            writer.write(self.answer)
            await writer.drain()
            self.received.append(await reader.read(4096))  # the password message, if the client sends one
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> FakePostgres:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()


SECRET = "platform-secret-123"
CREDS = ProbeCredentials.from_settings("floe", SecretStr(SECRET), ["db.acme.internal:5432"])


async def test_postgres_availability_is_an_authentication_request_and_no_password_is_sent() -> None:
    async with FakePostgres() as pg:
        target = ProbeTarget(type="postgres", host="127.0.0.1", port=pg.port, database="sales")
        await PostgresProbe(CREDS).ping(target)
        await wait_for(lambda: len(pg.received) == 2)
    startup, after = pg.received
    assert b"user\x00floe\x00" in startup and b"database\x00sales\x00" in startup
    assert after == b"" and SECRET.encode() not in startup + after


async def test_postgres_not_accepting_connections_is_down_any_other_error_is_up() -> None:
    def error(code: str) -> bytes:
        body = b"SFATAL\x00C" + code.encode() + b"\x00Mthe database system is starting up\x00\x00"
        return b"E" + struct.pack("!i", len(body) + 4) + body

    async with FakePostgres(error("57P03")) as pg:
        with pytest.raises(Exception, match="not accepting connections: the database system is starting up"):
            await PostgresProbe().ping(ProbeTarget(type="postgres", host="127.0.0.1", port=pg.port))
    async with FakePostgres(error("28000")) as pg:  # no pg_hba.conf entry: the server runs
        await PostgresProbe().ping(ProbeTarget(type="postgres", host="127.0.0.1", port=pg.port))
    async with FakePostgres(b"HTTP/1.1 400 Bad Request\r\n\r\n") as pg:
        with pytest.raises(Exception, match="not a PostgreSQL server"):
            await PostgresProbe().ping(ProbeTarget(type="postgres", host="127.0.0.1", port=pg.port))


def test_a_credential_is_bound_to_the_hosts_the_operator_names() -> None:
    assert CREDS.for_target("127.0.0.1", 5432) is None
    assert CREDS.for_target("db.acme.internal", 6432) is None
    bound = CREDS.for_target("DB.acme.internal", 5432)
    assert bound is not None and bound[:2] == ("floe", SECRET)
    tls = bound[2]
    import ssl

    assert tls.verify_mode == ssl.CERT_REQUIRED and tls.check_hostname
    assert SECRET not in repr(CREDS)
    assert ProbeCredentials.from_settings("floe", SecretStr(SECRET), []).for_target("x", 1) is None


async def test_kafka_probe_needs_an_api_versions_answer_and_contacts_only_the_named_address() -> None:
    async def broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = struct.unpack("!i", await reader.readexactly(4))[0]
        req = await reader.readexactly(size)
        api, _version, correlation = struct.unpack("!hhi", req[:8])
        assert api == 18
        body = struct.pack("!ihi", correlation, 0, 0)
        writer.write(struct.pack("!i", len(body)) + body)
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(broker, "127.0.0.1", 0)
    async with srv:
        port = srv.sockets[0].getsockname()[1]
        await KafkaProbe().ping(ProbeTarget(type="kafka", host=f"127.0.0.1:{port}"))
    async with FakePostgres() as not_kafka:
        with pytest.raises(ProbeError, match="not a Kafka broker"):
            await KafkaProbe().ping(ProbeTarget(type="kafka", host="127.0.0.1", port=not_kafka.port))
