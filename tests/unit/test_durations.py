"""durations.py is the one duration grammar (flags, contracts, floe settings) and the one formatter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from floe_stream.contracts.extension import FloeExtension
from floe_stream.durations import duration_seconds, format_duration, interval_seconds, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30 min", 1800),
        ("2 weeks", 14 * 86400),
        ("1 month", 30 * 86400),
        ("P1Y", 365 * 86400),
        ("4H30M", 16200),
    ],
)
def test_flags_read_the_contract_grammar(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_contracts_and_settings_read_the_flag_grammar() -> None:
    assert interval_seconds("4h30m") == 16200
    assert FloeExtension.model_validate({"intervals": {"quality": "1h30m"}}).intervals == {"quality": 5400}
    assert duration_seconds("PT6H") == parse_duration("PT6H").total_seconds()


@pytest.mark.parametrize(
    ("seconds", "age", "exact", "report", "decimal"),
    [
        (40, "40s", "40s", "40s", "40.0s"),
        (245, "4m05s", "245s", "4m 5s", "4.1m"),
        (3600, "60m00s", "1h", "1h", "1.0h"),
        (9000, "2h30m", "150m", "2h 30m", "2.5h"),
        (183_600, "2d03h", "51h", "2d 3h", "2.1d"),
    ],
)
def test_one_formatter_four_styles(seconds: float, age: str, exact: str, report: str, decimal: str) -> None:
    got = [format_duration(seconds, style) for style in ("age", "exact", "report", "decimal")]  # type: ignore[arg-type]
    assert got == [age, exact, report, decimal]
    assert format_duration(timedelta(seconds=seconds), "exact") == exact
