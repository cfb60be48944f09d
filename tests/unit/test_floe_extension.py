"""The typed ``floe`` custom property: validated at load with field-precise errors, read as typed fields."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from floe_stream.contracts.extension import ChecksOverride, FloeExtension
from floe_stream.contracts.loader import load_contract_text
from floe_stream.contracts.models import ContractError, LoadedContract
from floe_stream.probes.targets import target_for
from floe_stream.processors.policy import CheckPolicy, resolve_policy
from floe_stream.reporting.store import expected_intervals
from floe_stream.topics.enums import Severity

BASE: dict[str, Any] = {
    "apiVersion": "v3.1.0",
    "kind": "DataContract",
    "id": "shop-1",
    "name": "shop",
    "version": "1.0.0",
    "status": "active",
    "servers": [{"server": "db", "type": "postgres", "host": "db.internal", "port": 5432}],
}


def load(
    contract_floe: dict[str, Any] | None = None, table_floe: dict[str, Any] | None = None
) -> LoadedContract:
    doc: dict[str, Any] = {**BASE, "schema": [{"name": "orders", "properties": [{"name": "id"}]}]}
    if contract_floe is not None:
        doc["customProperties"] = [{"property": "floe", "value": contract_floe}]
    if table_floe is not None:
        doc["schema"][0]["customProperties"] = [{"property": "floe", "value": table_floe}]
    return load_contract_text(yaml.safe_dump(doc, sort_keys=False), "c.yaml")


def problem(contract_floe: dict[str, Any] | None = None, table_floe: dict[str, Any] | None = None) -> str:
    with pytest.raises(ContractError) as info:
        load(contract_floe, table_floe)
    return info.value.problem


def test_every_section_is_typed_and_table_settings_win_key_by_key() -> None:
    contract = load(
        {
            "consumers": ["bi"],
            "checks": {"fail_after": 3, "warning_at": 0.95},
            "alerts": {"channels": ["pager"], "min_severity": "error"},
            "intervals": {"quality": "6h", "schema_drift": 1800, "freshness": "PT30M"},
            "timezone": "Europe/Berlin",
        },
        {
            "asset": "sales.orders",
            "consumers": ["ml"],
            "probe": {"port": 6543, "expected_status": 204, "method": "HEAD"},
            "updates": {"zero_rows": True},
            "lifecycle": {"notice_days": 14},
        },
    )
    (asset,) = contract.assets
    ext = asset.floe
    assert ext.asset == "sales.orders" == asset.asset_id
    assert ext.consumers == ("bi", "ml") == asset.consumers
    assert ext.checks == ChecksOverride(fail_after=3, warning_at=0.95)
    assert ext.alerts is not None
    assert (ext.alerts.channels, ext.alerts.min_severity) == (("pager",), Severity.ERROR)
    assert ext.intervals == {"quality": 21_600.0, "schema_drift": 1800.0, "freshness": 1800.0}
    assert ext.zone.key == "Europe/Berlin"
    assert (ext.updates.zero_rows, ext.updates.replace, ext.lifecycle.notice_days) == (True, False, 14.0)
    # readers use the typed fields
    policy, why = resolve_policy(CheckPolicy(), ext)
    assert (policy.fail_after, policy.warning_at, why) == (3, 0.95, None)
    target = target_for(asset)
    assert target is not None
    assert (target.host, target.port, target.expected_status, target.options) == (
        "db.internal",
        6543,
        (204,),
        {"method": "HEAD"},
    )
    assert expected_intervals(asset)["quality"] == 21_600.0
    assert contract.warnings == ()


def test_defaults_when_there_is_no_floe_property() -> None:
    (asset,) = load().assets
    assert asset.floe == FloeExtension()
    assert asset.floe.zone.key == "UTC"
    assert (asset.floe.updates.replace, asset.floe.lifecycle.notice_days) == (False, 30.0)


@pytest.mark.parametrize(
    ("contract_floe", "table_floe", "message"),
    [
        (
            {"checks": {"fail_after": 0}},
            None,
            "customProperties[0] floe.checks.fail_after: input should be greater than or equal to 1, got 0",
        ),
        (
            {"checks": {"fail_aftre": 2}},
            None,
            "customProperties[0] floe.checks.fail_aftre: unknown key; did you mean 'fail_after'?",
        ),
        (
            None,
            {"probe": {"port": "x"}},
            "schema[0].customProperties[0] floe.probe.port: input should be a valid integer",
        ),
        (
            None,
            {"probe": {"expected_status": "ok"}},
            "floe.probe.expected_status: must be a status code or a list",
        ),
        ({"alerts": {"channels": []}}, None, "floe.alerts.channels: tuple should have at least 1 item"),
        (
            {"alerts": {"channels": ["a"], "min_severity": "loud"}},
            None,
            "floe.alerts.min_severity: input should be",
        ),
        ({"intervals": {"quality": "often"}}, None, "floe.intervals: quality: value 'often'"),
        ({"timezone": "Mars/Olympus"}, None, "floe.timezone: 'Mars/Olympus' is not an IANA time zone"),
        (
            {"updates": {"zero_row": True}},
            None,
            "floe.updates.zero_row: unknown key; did you mean 'zero_rows'?",
        ),
        (
            {"lifecycle": {"notice_days": -1}},
            None,
            "floe.lifecycle.notice_days: input should be greater than",
        ),
    ],
)
def test_a_wrong_value_is_a_load_error_naming_the_key(
    contract_floe: dict[str, Any] | None, table_floe: dict[str, Any] | None, message: str
) -> None:
    assert message in problem(contract_floe, table_floe)


def test_unknown_top_level_keys_are_warnings_with_a_suggestion() -> None:
    contract = load({"consumer": ["bi"], "tier": 1})
    assert contract.warnings == (
        "customProperties[0] floe: unknown floe setting 'consumer' ignored; did you mean 'consumers'?",
        "customProperties[0] floe: unknown floe setting 'tier' ignored",
    )


def test_checks_override_mirrors_the_check_policy() -> None:
    assert set(ChecksOverride.model_fields) == set(CheckPolicy.model_fields)


def test_cross_field_policy_rules_are_checked_when_merged() -> None:
    base = CheckPolicy()
    same, why = resolve_policy(base, FloeExtension(checks=ChecksOverride(info_at=0.99)))
    assert same is base
    assert why is not None
    assert "info_at" in why
