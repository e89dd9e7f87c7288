"""`check -o json` and the CR's status use the same names for the lifecycle
sections: every field `check` prints is a field of the CRD's status schema (the
API server would prune any other from the status, silently), with the type the
schema says. Read from the simulator's `lifecycle` scenario, where every section
and nearly every field is present."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.support.lifecyclecheck import check, lifecycle_simulator
from tests.unit.shipping._support import CRD_FILE

SECTIONS = ("preCheck", "nextUpgrade", "versions", "lastBackupTime")
JSON_TYPES = {
    "string": str,
    "integer": int,
    "boolean": bool,
    "object": dict,
    "array": list,
}


@pytest.fixture
def check_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, Any]:
    for sim in lifecycle_simulator(monkeypatch):
        code = check(sim, "-o", "json")
    assert code == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def status_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["status"])


def walk(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """Where `value` does not fit `schema`: a field the schema lacks (pruned), or
    a value of another type."""
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None and not isinstance(value, JSON_TYPES[expected]):
        return [f"{path}: {type(value).__name__}, the schema says {expected}"]
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return problems
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key not in properties:
                problems.append(f"{path}.{key}: not in the CRD's status schema (pruned)")
            else:
                problems += walk(item, properties[key], f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems += walk(item, schema.get("items", {}), f"{path}[{index}]")
    return problems


def test_every_section_is_printed(check_json: dict[str, Any]) -> None:
    # The scenario has all four; without them the next test would prove nothing.
    assert set(SECTIONS) <= check_json.keys(), check_json.keys()
    assert check_json["preCheck"]["findings"][0]["riskSource"]["deprecatedAPIs"]
    assert check_json["nextUpgrade"]["maintenanceWindow"]["nextStart"]
    assert check_json["versions"]["lastUpgrade"]


def test_check_json_fields_are_the_status_fields(check_json: dict[str, Any]) -> None:
    schema = status_schema()
    problems: list[str] = []
    for section in SECTIONS:
        assert section in schema.get("properties", {}), f"status.{section} is not in the CRD"
        problems += walk(check_json[section], schema["properties"][section], f"status.{section}")
    assert not problems, "\n".join(problems)
