"""``floe dev --duration`` and ``floe contracts coverage --seen`` take any duration through the one parser
(``--duration`` keeps a plain number of seconds), through the real commands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from floe_stream.cli import seen
from floe_stream.cli.main import main
from floe_stream.runtime.devtools import dev

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("value", "seconds"), [("10m", 600.0), ("PT1H30M", 5400.0), ("45", 45.0), ("2.5", 2.5)]
)
def test_dev_duration_any_duration_or_seconds(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    got: dict[str, Any] = {}

    async def fake_run_dev(**kw: Any) -> None:
        got.update(kw)

    monkeypatch.setattr(dev, "run_dev", fake_run_dev)
    result = CliRunner().invoke(main, ["dev", "--duration", value])
    assert result.exit_code == 0, result.output
    assert got["duration"] == seconds


@pytest.mark.parametrize("value", ["7x", "0", "-3", "nan", "0s"])
def test_dev_duration_rejects_non_durations_in_one_line(value: str) -> None:
    result = CliRunner().invoke(main, ["dev", "--duration", value])
    assert result.exit_code == 2
    assert "Invalid value for '--duration'" in result.output and "Traceback" not in result.output


def test_coverage_seen_takes_any_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    since: list[datetime] = []

    async def fake_seen(settings: Any, registry: Any, t: datetime) -> seen.SeenGap:
        since.append(t)
        return seen.SeenGap([])

    monkeypatch.setattr(seen, "seen_assets", fake_seen)
    before = datetime.now(UTC)
    contracts = str(REPO / "tests" / "fixtures" / "contracts")
    result = CliRunner().invoke(
        main, ["contracts", "coverage", "--contracts", contracts, "--seen", "PT1H30M"]
    )
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    assert "0 asset(s) seen in the last 90m without a contract" in result.output
    assert before - timedelta(minutes=90) <= since[0] <= after - timedelta(minutes=90)


def test_coverage_seen_rejects_a_bare_number_like_other_window_flags() -> None:
    result = CliRunner().invoke(main, ["contracts", "coverage", "--seen", "3600"])
    assert result.exit_code == 2
    assert "'3600' is not a duration (use e.g. 90d" in result.output
