"""A FloeClient nobody closes (module-level in an Airflow worker or a Dagster code location) stops its producer
at interpreter exit: the event is delivered and no "Unclosed AIOKafkaProducer" is printed."""

from __future__ import annotations

import asyncio
import sys

import pytest

from floe_stream.settings import Settings
from floe_stream.topics import MaterializationEvent, TopicKey
from tests.integration.helpers import read_all

pytestmark = [pytest.mark.kafka]

SCRIPT = """
import sys
from floe_stream.client import FloeClient

floe = FloeClient(sys.argv[1], topic_prefix=sys.argv[2])   # module level, never closed
floe.publish_materialization("test.fast", row_count=1, run_id="left-open")
"""


async def test_an_unclosed_client_stops_its_producer_at_exit(settings: Settings) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-X", "dev", "-c", SCRIPT, settings.kafka.bootstrap_servers, settings.kafka.topic_prefix,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "Unclosed" not in err.decode(), err.decode()
    (rec,) = await read_all(settings, TopicKey.MATERIALIZATIONS)
    assert MaterializationEvent.model_validate_json(rec.value).event_id == "test.fast:left-open"
