"""Run what is rendered: the chart (default values and every values file in tests/deploy/values/) and
docker-compose.yaml's floe services, started as LOCAL processes exactly as rendered — the container's
command + args (the image's entrypoint is `floe`: the venv's `floe` here), its env, its mounted ConfigMaps
and Secrets — against the real test broker (Tansu), the test PostgreSQL, a real Alertmanager, a local
OpenLineage HTTP receiver (and, where a values file enables the Iceberg source, a local REST catalog).

What the test changes, and why (nothing else is touched):

* mount paths: each pod (compose service) gets its own folder; a volume it mounts at /etc/floe/config is
  written to <its folder>/etc/floe/config, and every env value or arg under one of ITS mount paths is
  rewritten the same way (the process runs on this machine's root, and sees only its own pod's files);
* service hostnames (in env values and in mounted files): the Kafka bootstrap list → the test broker, the
  PostgreSQL DSN (a Secret in the chart, a literal in compose) → the test database, alertmanager /
  marquez / iceberg-rest hosts → the local Alertmanager / OpenLineage receiver / Apache Iceberg REST catalog server;
* FLOE_HEALTH_PORT: the chart gives every container the same port (they are separate pods); local
  processes need distinct ones, so each gets a free port;
* FLOE_KAFKA__TOPIC_PREFIX / GROUP_PREFIX: one broker serves every run of the session, so each run gets
  its own prefix; FLOE_KAFKA__REPLICATION_FACTOR=1: the test broker is one node;
* Kafka security: the test broker speaks PLAINTEXT only, so a values file with SASL/TLS (external-secrets)
  runs with FLOE_KAFKA__SECURITY_PROTOCOL=PLAINTEXT and without its SASL/SSL variables (the rest of its
  rendering — secretKeyRefs, mounts, the DSN Secret under another key — runs as rendered);
* Secrets: the chart carries none; the test provides each referenced (name, key) — the DSN, a Slack
  webhook URL pointing at a local receiver, dummy values for the rest.

Each run: the hook Job's containers exit 0 in order; every Deployment answers /readyz 200; one
materialization breaching its freshness SLA ends as a row in PostgreSQL, and — where the rendering
configures them — as an alert at Alertmanager and a FAIL RunEvent at the OpenLineage receiver (the console
transport: in the sink's log). With the chart's defaults (no routes) the alerts sink says in /readyz
that nothing will be delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from floe_stream.client import FloeClient
from floe_stream.runtime.devtools.embedded import EmbeddedKafka
from floe_stream.settings import KafkaSettings
from tests.conftest import empty_database
from tests.deploy.support import REPO, Helm, Manifests, containers, pod_spec, values_files
from tests.integration.receivers import Alertmanager, HttpReceiver, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FLOE_BIN = Path(sys.executable).parent / "floe"
EXAMPLES = REPO / "examples" / "contracts"
ASSET = "sales.orders"  # examples/contracts/sales-orders.odcs.yaml: latency (freshness) SLA 20 s
READY_TIMEOUT_S = 90.0


# --- the local stand-ins for the cluster's services ------------------------------------------------------
@dataclass
class Services:
    broker: str
    am: Alertmanager
    am_hook: HttpReceiver
    lineage: HttpReceiver
    slack: HttpReceiver
    rest_uri: str

    def hosts(self) -> dict[str, str]:
        """Service host:port of the renderings → local host:port."""
        am = self.am.url.removeprefix("http://")
        ol = self.lineage.url.removeprefix("http://")
        rest = self.rest_uri.removeprefix("http://")
        return {
            "alertmanager.monitoring:9093": am,
            "alertmanager:9093": am,
            "marquez.lineage:5000": ol,
            "marquez:5000": ol,
            "iceberg-rest.lake:8181": rest,
        }


@pytest.fixture(scope="module")
def rest_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty catalog of its own on Apache Iceberg's REST catalog server (installed by `make tools`)."""
    from tests.integration.tools import ICEBERG_REST_VERSION, IcebergRestServer, tool

    jar = tool(
        f"iceberg-rest/iceberg-open-api-{ICEBERG_REST_VERSION}.jar", "Apache Iceberg's REST catalog server"
    )
    server = IcebergRestServer(tmp_path_factory.mktemp("deploy-iceberg-rest"), jar).start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
async def services(kafka: EmbeddedKafka, rest_catalog: str, tmp_path: Path) -> AsyncIterator[Services]:
    (tmp_path / "am").mkdir()
    hook = HttpReceiver()
    async with (
        hook,
        HttpReceiver() as lineage,
        HttpReceiver() as slack,
        Alertmanager(tmp_path / "am", f"{hook.url}/hook", group_by=["asset"]) as am,
    ):
        yield Services(kafka.bootstrap, am, hook, lineage, slack, rest_catalog)


@pytest.fixture
async def fresh_db() -> AsyncIterator[str]:
    """An empty database (not migrated: the hook Job / floe-init must do it)."""
    async with empty_database("floe_run") as dsn:
        yield dsn


# --- turning a rendered container into a local process -------------------------------------------------
@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path
    health_port: int | None = None
    process: asyncio.subprocess.Process | None = None
    _fh: Any = field(default=None, repr=False)

    async def start(self) -> None:
        self._fh = open(self.log, "ab")  # noqa: SIM115
        self.process = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, cwd=self.cwd, stdout=self._fh, stderr=self._fh
        )

    async def wait(self, timeout: float) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), 40)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            return None
        finally:
            self._fh.close()

    def tail(self) -> str:
        return f"--- {self.name} ({' '.join(self.argv)}):\n" + self.log.read_text(errors="replace")[-3000:]


@dataclass
class PodFs:
    """One pod's (compose service's) filesystem: its mounts only, below its own root — a process sees the
    files its own pod mounts, never another's."""

    root: Path
    mounts: list[str] = field(default_factory=list)

    def mount(self, path: str) -> Path:
        self.mounts.append(path)
        target = self.root / path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        return target

    def map_paths(self, value: str) -> str:
        for mount in sorted(self.mounts, key=len, reverse=True):
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(self.root) + value
        return value

    def base_env(self) -> dict[str, str]:
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        return {"PATH": f"{FLOE_BIN.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": str(home),
                "LANG": "C.UTF-8"}  # fmt: skip


@dataclass
class Run:
    """One rendering run locally: its root (a folder per pod below it), its prefix, its test secrets."""

    root: Path
    services: Services
    dsn: str
    prefix: str = field(default_factory=lambda: f"r{uuid.uuid4().hex[:8]}.")
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)

    def pod(self, name: str) -> PodFs:
        return PodFs(self.root / "pods" / name.replace("/", "-"))

    def map_hosts(self, text: str) -> str:
        for host, local in sorted(self.services.hosts().items(), key=lambda kv: -len(kv[0])):
            text = text.replace(host, local)
        return text

    def secret(self, name: str, key: str) -> str:
        return self.secrets.get((name, key), f"test-secret-{name}-{key}")

    def overrides(self, env: dict[str, str]) -> dict[str, str]:
        """The documented per-run overrides (see the module docstring)."""
        env = {k: v for k, v in env.items() if not k.startswith(("FLOE_KAFKA__SASL", "FLOE_KAFKA__SSL"))}
        env.update(
            FLOE_KAFKA__BOOTSTRAP_SERVERS=self.services.broker,
            FLOE_KAFKA__SECURITY_PROTOCOL="PLAINTEXT",
            FLOE_KAFKA__TOPIC_PREFIX=self.prefix,
            FLOE_KAFKA__GROUP_PREFIX=self.prefix.rstrip("."),
            FLOE_KAFKA__REPLICATION_FACTOR="1",
        )
        return env


def write_volumes(run: Run, fs: PodFs, workload: dict[str, Any], manifests: Manifests) -> None:
    spec = pod_spec(workload)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in containers(workload):
        for m in c.get("volumeMounts", []):
            target = fs.mount(m["mountPath"])
            vol = volumes[m["name"]]
            if "configMap" in vol:
                cm_name = vol["configMap"]["name"]
                found = [d for d in manifests.kind("ConfigMap") if d["metadata"]["name"] == cm_name]
                assert found, f"{workload['metadata']['name']} mounts ConfigMap {cm_name}, not rendered"
                data = found[0].get("data") or {}
                items = vol["configMap"].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    (target / item["path"]).write_text(run.map_hosts(data[item["key"]]))
            elif "secret" in vol:
                name = vol["secret"]["secretName"]
                for (sname, key), value in run.secrets.items():
                    if sname == name:
                        (target / key).write_text(value)


def container_env(run: Run, fs: PodFs, container: dict[str, Any], manifests: Manifests) -> dict[str, str]:
    env: dict[str, str] = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = fs.map_paths(run.map_hosts(str(e["value"])))
            continue
        ref = e["valueFrom"]
        if "secretKeyRef" in ref:
            s = ref["secretKeyRef"]
            env[e["name"]] = run.secret(s["name"], s["key"])
        elif "configMapKeyRef" in ref:
            c = ref["configMapKeyRef"]
            (cm,) = [d for d in manifests.kind("ConfigMap") if d["metadata"]["name"] == c["name"]]
            env[e["name"]] = run.map_hosts(cm["data"][c["key"]])
        else:
            raise AssertionError(f"unsupported valueFrom {ref}")
    return env


def processes_of(run: Run, manifests: Manifests) -> tuple[list[Proc], list[Proc]]:
    """(the hook Job's containers in order, one process per Deployment), each pod with its own files."""
    job: list[Proc] = []
    for w in manifests.kind("Job"):
        fs = run.pod(w["metadata"]["name"])
        write_volumes(run, fs, w, manifests)
        for c in containers(w):  # init containers first, then the container
            assert "command" not in c, "the image entrypoint (floe) is the command"
            env = {**fs.base_env(), **run.overrides(container_env(run, fs, c, manifests))}
            argv = [str(FLOE_BIN), *[fs.map_paths(a) for a in c["args"]]]
            job.append(Proc(f"job/{c['name']}", argv, env, run.root / f"job-{c['name']}.log", fs.root))
    deployments: list[Proc] = []
    for w in manifests.kind("Deployment"):
        name = w["metadata"]["name"]
        fs = run.pod(name)
        write_volumes(run, fs, w, manifests)
        (c,) = pod_spec(w)["containers"]
        assert "command" not in c
        port = free_port()
        env = {
            **fs.base_env(),
            **run.overrides(container_env(run, fs, c, manifests)),
            "FLOE_HEALTH_PORT": str(port),
        }
        argv = [str(FLOE_BIN), *[fs.map_paths(a) for a in c["args"]]]
        deployments.append(Proc(name, argv, env, run.root / f"{name}.log", fs.root, port))
    return job, deployments


# --- the run ---------------------------------------------------------------------------------------------
async def readyz(p: Proc) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient() as http:
            r = await http.get(f"http://127.0.0.1:{p.health_port}/readyz", timeout=2)
    except httpx.TransportError:
        return None
    return r.json() if r.status_code == 200 else None  # type: ignore[no-any-return]


async def until(predicate: Any, timeout: float, what: str, procs: list[Proc]) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        for p in procs:
            assert p.process is None or p.process.returncode is None, f"{p.name} exited:\n{p.tail()}"
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not within {timeout}s\n" + "\n".join(p.tail() for p in procs))
        await asyncio.sleep(0.25)


async def run_job(job: list[Proc]) -> None:
    for step in job:  # in order, like init containers
        await step.start()
        rc = await step.wait(120)
        step._fh.close()
        assert rc == 0, f"{step.name} exited {rc}:\n{step.tail()}"


async def breach_and_check(run: Run, deployments: list[Proc]) -> dict[str, Any]:
    """Publish one materialization whose data is an hour old (SLA: 20 s + skew) and follow it."""
    client = FloeClient(kafka=KafkaSettings(bootstrap_servers=run.services.broker, topic_prefix=run.prefix))
    try:
        stale = datetime.now(UTC) - timedelta(hours=1)
        await asyncio.to_thread(
            client.publish_materialization, ASSET, materialized_at="now", data_timestamp=stale.isoformat(),
            run_id=f"run-{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
    finally:
        client.close()
    names = {p.name.removeprefix("floe-stream-"): p for p in deployments}
    seen: dict[str, Any] = {}

    async def row() -> bool:
        conn = await asyncpg.connect(run.dsn)
        try:
            n = await conn.fetchval(
                "SELECT count(*) FROM violation_events WHERE asset = $1 AND violation_type = 'freshness'",
                ASSET,
            )
        finally:
            await conn.close()
        return bool(n)

    if "sink-postgres" in names:
        seen["postgres"] = await until(row, 60, "the freshness violation row in PostgreSQL", deployments)
    return seen


async def alert_at_alertmanager(services: Services) -> bool:
    async with httpx.AsyncClient() as http:
        alerts = (await http.get(f"{services.am.url}/api/v2/alerts", timeout=5)).json()
    return any(a["labels"].get("asset") == ASSET for a in alerts)


def fail_at_receiver(services: Services) -> bool:
    for r in services.lineage.requests:
        with contextlib.suppress(ValueError):
            if r.json().get("eventType") == "FAIL" and ASSET in r.body.decode():
                return True
    return False


async def run_all(run: Run, job: list[Proc], deployments: list[Proc]) -> dict[str, Proc]:
    await run_job(job)
    await asyncio.gather(*(p.start() for p in deployments))
    for p in deployments:
        await until(lambda p=p: readyz(p), READY_TIMEOUT_S, f"{p.name} /readyz 200", deployments)
    return {p.name.removeprefix("floe-stream-"): p for p in deployments}


async def stop_all(deployments: list[Proc]) -> dict[str, int | None]:
    codes = await asyncio.gather(*(p.stop() for p in deployments))
    return {p.name: c for p, c in zip(deployments, codes, strict=True)}


# --- the chart ---------------------------------------------------------------------------------------------
EXPECTED = {
    "defaults.yaml": {"postgres"},  # no routes (the sink says so), no OpenLineage sink
    "external-secrets.yaml": {"postgres"},
    "autoscaling.yaml": {"postgres", "openlineage-console"},
    "everything-on.yaml": {"postgres", "alertmanager", "slack", "openlineage-http", "source-iceberg"},
}


def chart_secrets(run: Run) -> dict[tuple[str, str], str]:
    return {
        ("floe-database", "dsn"): run.dsn,
        ("floe-postgres", "uri"): run.dsn,  # external-secrets.yaml
        ("floe-alert-channels", "slack-webhook-url"): f"{run.services.slack.url}/slack",
    }


@pytest.mark.parametrize("values_file", values_files())
async def test_rendered_chart_runs(
    helm: Helm, values_file: str, services: Services, fresh_db: str, tmp_path: Path
) -> None:
    # one render: the values file plus the example contracts, as docs/DEPLOYMENT.md installs them
    set_file = [
        f"contracts.files.{p.name.replace('.', chr(92) + '.')}={p}" for p in sorted(EXAMPLES.glob("*.yaml"))
    ]
    manifests = helm.render(values_file, set_file=set_file)
    run = Run(tmp_path / "run", services, fresh_db)
    run.root.mkdir()
    run.secrets = chart_secrets(run)
    job, deployments = processes_of(run, manifests)
    assert job, "the hook Job is rendered"
    try:
        procs = await run_all(run, job, deployments)
        assert {"processor", "ticker", "sink-postgres", "sink-alerts"} <= set(procs)
        alerts_env = procs["sink-alerts"].env
        with open(alerts_env["FLOE_CONFIG_FILE"]) as fh:
            floe_yaml = yaml.safe_load(fh) or {}
        routes = (floe_yaml.get("alerts") or {}).get("routes")
        alerts_ready = await readyz(procs["sink-alerts"])
        assert alerts_ready is not None
        assert alerts_ready["details"]["alerts"]["delivering"] is bool(routes)
        if not routes:
            assert "nothing will be delivered" in alerts_ready["details"]["alerts"]["reason"]

        seen = await breach_and_check(run, deployments)
        assert seen["postgres"]
        checked = {"postgres"}
        if routes:
            await until(lambda: alert_at_alertmanager(services), 60, "the alert at Alertmanager", deployments)
            checked.add("alertmanager")
        if "sink-openlineage" in procs:
            transport = (floe_yaml.get("openlineage") or {}).get("transport", "openlineage")
            if transport == "http":
                await until(
                    lambda: fail_at_receiver(services), 60, "a FAIL RunEvent at the receiver", deployments
                )
                checked.add("openlineage-http")
            else:  # console (also openlineage with nothing configured): openlineage-python logs the RunEvent
                sink = procs["sink-openlineage"]
                await until(lambda: re.search(r'\\?"eventType\\?": ?\\?"FAIL', sink.log.read_text()), 60,
                            "a FAIL RunEvent on sink-openlineage's console", deployments)  # fmt: skip
                checked.add("openlineage-console")
        if any(r.get("channel") == "slack" for r in routes or ()):
            # the Slack channel's webhook URL came from a (test) Secret through secretEnv + url_env
            await until(lambda: any(r.path == "/slack" for r in services.slack.requests), 60,
                        "the Slack notification", deployments)  # fmt: skip
            checked.add("slack")
        if "source-iceberg" in procs:
            checked.add("source-iceberg")  # ready = its first poll of the catalog succeeded
        # what each values file must reach (a rendering that silently lost a destination fails here)
        assert EXPECTED.get(values_file, {"postgres"}) <= checked, checked
    finally:
        codes = await stop_all(deployments)
    assert all(c == 0 for c in codes.values()), codes


# --- docker-compose.yaml -----------------------------------------------------------------------------------
def compose_processes(run: Run) -> tuple[list[Proc], list[Proc]]:
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    floe = {n: s for n, s in compose["services"].items() if s.get("image") == "floe-stream:dev"}
    assert {"floe-init", "processor", "ticker", "sink-postgres", "sink-alerts", "sink-openlineage"} <= set(
        floe
    )
    job: list[Proc] = []
    deployments: list[Proc] = []
    for name, svc in floe.items():
        fs = run.pod(name)
        for vol in svc.get("volumes", []):
            source, target, *_ = vol.split(":")
            src = REPO / source
            if src.is_dir():
                shutil.copytree(src, fs.mount(target), dirs_exist_ok=True)
            else:
                dest = fs.mount(target)
                dest.rmdir()
                dest.write_text(run.map_hosts(src.read_text()))
        for tmpfs in svc.get("tmpfs", []):
            fs.mount(tmpfs)
        env = {k: fs.map_paths(run.map_hosts(str(v))) for k, v in (svc.get("environment") or {}).items()}
        env = {
            **fs.base_env(),
            **run.overrides(env),
            "FLOE_DATABASE__DSN": run.dsn,
        }  # postgres:5432 → test DB
        entrypoint = svc.get("entrypoint") or [str(FLOE_BIN)]
        argv = [*entrypoint, *svc.get("command", [])]
        if name == "floe-init":
            job.append(Proc(name, argv, env, run.root / f"{name}.log", fs.root))
        else:
            port = free_port()
            deployments.append(
                Proc(
                    name,
                    argv,
                    {**env, "FLOE_HEALTH_PORT": str(port)},
                    run.root / f"{name}.log",
                    fs.root,
                    port,
                )
            )
    return job, deployments


async def test_compose_services_run(services: Services, fresh_db: str, tmp_path: Path) -> None:
    run = Run(tmp_path / "run", services, fresh_db)
    run.root.mkdir()
    job, deployments = compose_processes(run)
    try:
        procs = await run_all(run, job, deployments)
        ready = await readyz(procs["sink-alerts"])
        assert ready is not None and ready["details"]["alerts"]["delivering"] is True
        seen = await breach_and_check(run, deployments)
        assert seen["postgres"]
        await until(lambda: alert_at_alertmanager(services), 60, "the alert at Alertmanager", deployments)
        await until(lambda: fail_at_receiver(services), 60, "a FAIL RunEvent at the receiver", deployments)
        # what a compose user sees of sales.orders' availability: its probe targets the order service's health
        # port on 127.0.0.1 (served by `floe dev --demo` only), a loopback address compose's floe.yaml does not
        # allow — not evaluated, said once in the processor's log and counted, never a failed ping or an alert
        processor = procs["processor"]
        refusal = "asset sales.orders: availability not evaluated: probe target not allowed: 127.0.0.1 is a loopback"
        await until(lambda: refusal in processor.log.read_text(), 60, "the refused probe", deployments)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{processor.health_port}/metrics", timeout=5)).text
        assert re.search(r"^floe_probes_refused_total(\{[^}]*\})? 1\.0$", metrics, re.M), metrics[-2000:]
    finally:
        codes = await stop_all(deployments)
    assert all(c == 0 for c in codes.values()), codes
    conn = await asyncpg.connect(fresh_db)
    try:
        availability = await conn.fetchval(
            "SELECT count(*) FROM check_results WHERE asset = $1 AND check_type = 'availability'", ASSET
        )
    finally:
        await conn.close()
    assert availability == 0
