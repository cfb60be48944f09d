"""Install Apache Kafka from Maven Central — no tarball, no Docker: ``floe tools install-kafka`` (and ``make tools``).

``apache_kafka/pom.xml`` (shipped in the wheel) declares ``org.apache.kafka:kafka_2.13`` and an SLF4J binding;
Maven copies their runtime jars into ``<home>/lib`` and :class:`~floe_stream.runtime.devtools.embedded.ApacheKafka` runs
``java -cp '<home>/lib/*' kafka.Kafka``. ``<home>`` is :func:`~floe_stream.runtime.devtools.embedded.kafka_home`:
``$FLOE_KAFKA_HOME``, a clone's ``.tools/kafka``, else ``~/.local/share/floe-stream/kafka``. Needs ``java``
(OpenJDK 17) and ``mvn`` (Maven 3.8). Idempotent: nothing to do when ``<home>/INSTALLED`` names this version and
these files (the stamp ``make tools`` always wrote).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from floe_stream.runtime.devtools.embedded import BrokerNotInstalled, kafka_home

DIST = Path(__file__).parent / "apache_kafka"
POM = DIST / "pom.xml"
LOG4J = DIST / "log4j2.properties"


def default_version() -> str:
    """The Apache Kafka version the pom declares (``KAFKA_VERSION`` overrides it at install)."""
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    assert found is not None, POM
    return found.group(1)


def stamp(version: str) -> str:
    """``<version> <16 hex of sha256(pom + log4j config)>``: a changed pom or log config reinstalls."""
    return f"{version} {hashlib.sha256(POM.read_bytes() + LOG4J.read_bytes()).hexdigest()[:16]}"


def install_kafka(
    home: Path | None = None, version: str | None = None, say: Callable[[str], None] = print
) -> Path:
    """Install Apache Kafka ``version`` (default: ``$KAFKA_VERSION``, else the pom's) into ``home``; returns it.
    Raises BrokerNotInstalled (one line) when java or mvn is missing or Maven fails."""
    home = home or kafka_home()
    version = version or os.environ.get("KAFKA_VERSION") or default_version()
    want = stamp(version)
    installed = home / "INSTALLED"
    if (
        installed.is_file()
        and installed.read_text().strip() == want
        and any((home / "lib").glob("kafka_2.13-*.jar"))
    ):
        say(f"Apache Kafka {version} already installed: {home}")
        return home
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise BrokerNotInstalled(f"install-kafka: '{tool}' is required (OpenJDK 17 + Maven 3.8)")
    say(f"install-kafka: resolving org.apache.kafka:kafka_2.13:{version} from Maven Central…")
    home.parent.mkdir(parents=True, exist_ok=True)
    work = Path(
        tempfile.mkdtemp(prefix="kafka-install.", dir=home.parent)
    )  # beside home: the final move is a rename
    try:
        build = work / "build"
        build.mkdir()
        shutil.copy(POM, build / "pom.xml")  # the package may be read-only: Maven works in a copy
        done = subprocess.run(
            ["mvn", "-q", "-B", "-Dstyle.color=never", "-f", str(build / "pom.xml"), f"-Dkafka.version={version}",
             "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={work / 'lib'}"],
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            raise BrokerNotInstalled(
                f"install-kafka: Maven failed (exit {done.returncode}), see its output above"
            )
        shutil.rmtree(build)
        shutil.copy(LOG4J, work / "log4j2.properties")
        (work / "VERSION").write_text(version + "\n")
        (work / "INSTALLED").write_text(want + "\n")
        shutil.rmtree(home, ignore_errors=True)
        work.rename(home)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    jars = len(list((home / "lib").glob("*.jar")))
    say(f"install-kafka: installed Apache Kafka {version} ({jars} jars) in {home}")
    return home
