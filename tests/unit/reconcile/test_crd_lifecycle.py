"""The CRD's lifecycle parts (issue 12) agree with the operator: spec.lifecycle's
rules and defaults with `spec.py`, the status sections with `lifecycle_sections.py`
(which cuts what the operator stores to exactly these limits)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import yaml

from cce_upgrade_watch.durations import parse_duration
from cce_upgrade_watch.lifecycle_parts import Part, PartState
from cce_upgrade_watch.lifecycle_sections import (
    SECTION_SCHEMAS,
    STATE_SCHEMA,
    Bool,
    Int,
    ListOf,
    Object,
    Text,
    Time,
)
from cce_upgrade_watch.spec import (
    DEFAULT_PLAN_INTERVAL,
    DEFAULT_UPGRADE_SOON_LEAD_TIME,
    LEAD_TIME_MAX,
    LEAD_TIME_MIN,
    PLAN_INTERVAL_MAX,
    PLAN_INTERVAL_MIN,
    SpecError,
    parse_watch_spec,
)

from ._support import BASE_SPEC
from .test_crd import CRD_PATH, _cel_regex, _rules


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    with CRD_PATH.open(encoding="utf-8") as handle:
        [only] = yaml.safe_load(handle)["spec"]["versions"]
    return only["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def lifecycle_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["properties"]["spec"]["properties"]["lifecycle"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def status_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return schema["properties"]["status"]  # type: ignore[no-any-return]


def test_lifecycle_defaults_are_the_operator_s(lifecycle_schema: dict[str, Any]) -> None:
    defaults = {name: p["default"] for name, p in lifecycle_schema["properties"].items()}
    assert defaults == {
        "preCheck": True,
        "plans": True,
        "versions": True,
        "backups": True,
        "planInterval": "2h",
        "upgradeSoonLeadTime": "24h",
    }
    assert parse_watch_spec({**BASE_SPEC, "lifecycle": defaults}) == parse_watch_spec(BASE_SPEC)
    assert parse_duration(defaults["planInterval"]) == DEFAULT_PLAN_INTERVAL
    assert parse_duration(defaults["upgradeSoonLeadTime"]) == DEFAULT_UPGRADE_SOON_LEAD_TIME


@pytest.mark.parametrize(
    ("field", "minimum", "maximum"),
    [
        ("planInterval", PLAN_INTERVAL_MIN, PLAN_INTERVAL_MAX),
        ("upgradeSoonLeadTime", LEAD_TIME_MIN, LEAD_TIME_MAX),
    ],
)
def test_duration_rules_agree_with_the_spec_model(
    lifecycle_schema: dict[str, Any],
    schema: dict[str, Any],
    field: str,
    minimum: timedelta,
    maximum: timedelta,
) -> None:
    poll_format = _rules(schema["properties"]["spec"]["properties"]["pollInterval"])[0]
    format_rule, low, high = _rules(lifecycle_schema["properties"][field])
    assert _cel_regex(format_rule["rule"]) == _cel_regex(poll_format["rule"])
    assert parse_duration(re.findall(r"duration\('([^']+)'\)", low["rule"])[0]) == minimum
    assert parse_duration(re.findall(r"duration\('([^']+)'\)", high["rule"])[0]) == maximum
    for message in (low["message"], high["message"]):
        assert message.startswith(f"lifecycle.{field} must be at")
    just_under = minimum - timedelta(seconds=1)
    for bad in (f"{int(just_under.total_seconds())}s", f"{int(maximum.total_seconds()) + 1}s"):
        with pytest.raises(SpecError, match=rf"spec\.lifecycle\.{field}: must be at"):
            parse_watch_spec({**BASE_SPEC, "lifecycle": {field: bad}})
    for good in (minimum, maximum):
        parse_watch_spec({**BASE_SPEC, "lifecycle": {field: f"{int(good.total_seconds())}s"}})


def test_a_lifecycle_switch_must_be_a_boolean() -> None:
    with pytest.raises(SpecError, match=r"spec\.lifecycle\.plans"):
        parse_watch_spec({**BASE_SPEC, "lifecycle": {"plans": "sometimes"}})
    spec = parse_watch_spec({**BASE_SPEC, "lifecycle": {"plans": False}})
    assert spec.lifecycle.plans is False
    assert spec.lifecycle.pre_check is True


def _agrees(crd: dict[str, Any], wanted: Any, path: str) -> None:
    """The CRD's schema at `path` is the one `lifecycle_sections` cleans to."""
    if isinstance(wanted, Text):
        assert crd["type"] == "string", path
        assert crd.get("maxLength") == wanted.max_length, path
        assert "format" not in crd, path
    elif isinstance(wanted, Time):
        assert (crd["type"], crd.get("format")) == ("string", "date-time"), path
        assert crd["maxLength"] >= len("2006-01-02T15:04:05.999999Z"), path
    elif isinstance(wanted, Int):
        assert (crd["type"], crd.get("minimum")) == ("integer", 0), path
    elif isinstance(wanted, Bool):
        assert crd["type"] == "boolean", path
    elif isinstance(wanted, ListOf):
        assert crd["type"] == "array", path
        assert crd["maxItems"] == wanted.max_items, path
        _agrees(crd["items"], wanted.item, f"{path}[]")
    else:
        assert isinstance(wanted, Object)
        assert crd["type"] == "object", path
        assert "x-kubernetes-preserve-unknown-fields" not in crd, path
        assert set(crd["properties"]) == set(wanted.properties), path
        for name, child in wanted.properties.items():
            _agrees(crd["properties"][name], child, f"{path}.{name}")


def test_status_sections_agree_with_what_the_operator_stores(
    status_schema: dict[str, Any],
) -> None:
    properties = status_schema["properties"]
    _agrees(properties["preCheck"], SECTION_SCHEMAS[Part.PRECHECK], "preCheck")
    _agrees(properties["versions"], SECTION_SCHEMAS[Part.VERSIONS], "versions")
    _agrees(properties["lastBackupTime"], SECTION_SCHEMAS[Part.BACKUPS], "lastBackupTime")
    upcoming = properties["nextUpgrade"]
    plan_and_window = Object(
        {
            **SECTION_SCHEMAS[Part.PLANS].properties,
            "maintenanceWindow": SECTION_SCHEMAS[Part.WINDOW],
        }
    )
    _agrees(upcoming, plan_and_window, "nextUpgrade")


def test_status_lifecycle_has_one_entry_per_part(status_schema: dict[str, Any]) -> None:
    lifecycle = status_schema["properties"]["lifecycle"]
    assert set(lifecycle["properties"]) == {str(part) for part in Part}
    for part in Part:
        entry = lifecycle["properties"][str(part)]
        assert entry["required"] == ["state"]
        assert entry["properties"]["state"]["enum"] == [str(state) for state in PartState]
        message = entry["properties"]["message"]
        assert message["maxLength"] == STATE_SCHEMA.properties["message"].max_length
