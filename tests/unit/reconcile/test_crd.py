"""The CRD's structure: names, printer columns, defaults, and rules that agree with the Python side.

Whether the API server accepts the CRD and enforces its rules is checked by the
e2e tests against a real control plane.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cce_upgrade_watch.durations import parse_duration_ns
from cce_upgrade_watch.spec import SpecError, parse_watch_spec

from ._support import BASE_SPEC

CRD_PATH = Path(__file__).parents[3] / "crds" / "cceupgradewatches.cce.upgradewatch.io.yaml"


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    with CRD_PATH.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


@pytest.fixture(scope="module")
def version(crd: dict[str, Any]) -> dict[str, Any]:
    [only] = crd["spec"]["versions"]
    return only  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def spec_schema(version: dict[str, Any]) -> dict[str, Any]:
    return version["schema"]["openAPIV3Schema"]["properties"]["spec"]  # type: ignore[no-any-return]


def _rules(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return schema.get("x-kubernetes-validations", [])  # type: ignore[no-any-return]


def _cel_regex(rule: str) -> str:
    """The first regex literal of a CEL `matches(...)`, as RE2 receives it."""
    match = re.search(r"matches\('((?:[^'\\]|\\.)*)'\)", rule)
    assert match, rule
    return match[1].replace("\\\\", "\\")


def test_names(crd: dict[str, Any]) -> None:
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == "cceupgradewatches.cce.upgradewatch.io"
    spec = crd["spec"]
    assert spec["group"] == "cce.upgradewatch.io"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "CceUpgradeWatch",
        "listKind": "CceUpgradeWatchList",
        "plural": "cceupgradewatches",
        "singular": "cceupgradewatch",
        "shortNames": ["cuw"],
        "categories": ["cce"],
    }


def test_version_and_status_subresource(version: dict[str, Any]) -> None:
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_printer_columns(version: dict[str, Any]) -> None:
    columns = [
        (c["name"].upper(), c["jsonPath"], c["type"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    ]
    assert columns == [
        ("PHASE", ".status.phase", "string", 0),
        ("CURRENT", ".status.currentVersion", "string", 0),  # the target after Success
        ("TARGET", ".status.targetVersion", "string", 0),
        ("TASK", ".status.currentTask", "string", 0),
        ("PROGRESS", ".status.progress", "string", 0),
        ("READY", '.status.conditions[?(@.type=="Ready")].status', "string", 0),
        ("AGE", ".metadata.creationTimestamp", "date", 0),
        ("CLUSTER", ".spec.clusterId", "string", 1),
        ("LAST CHANGE", ".status.lastChangeTime", "date", 1),
        ("NEXT UPGRADE", ".status.nextUpgrade.notBefore", "string", 1),
    ]


def test_spec_defaults_and_required(spec_schema: dict[str, Any]) -> None:
    properties = spec_schema["properties"]
    defaults = {name: p["default"] for name, p in properties.items() if "default" in p}
    # No interval defaults in the schema: unset intervals take the operator-wide
    # defaults (`run --default-poll-interval`, 5m and 30s unless changed).
    assert defaults == {"suspend": False, "historyLimit": 5}
    # credentialsSecretRef or spec.identity: a CEL rule demands exactly one source.
    assert sorted(spec_schema["required"]) == ["clusterId", "projectId"]
    assert properties["historyLimit"]["minimum"] == 0
    assert properties["historyLimit"]["maximum"] == 50
    # Only a name: a Secret of another namespace cannot be named.
    secret_ref = properties["credentialsSecretRef"]
    assert list(secret_ref["properties"]) == ["name"]
    assert secret_ref["required"] == ["name"]
    [region_rule, source_rule] = _rules(spec_schema)
    assert "exactly one credentials source" in " ".join(source_rule["message"].split())
    assert region_rule["rule"] == "has(self.region) || has(self.endpoint)"
    assert "spec.region or spec.endpoint" in region_rule["message"]


def test_defaults_are_valid_for_the_operator(spec_schema: dict[str, Any]) -> None:
    defaults = {
        name: p["default"] for name, p in spec_schema["properties"].items() if "default" in p
    }
    spec = parse_watch_spec({**BASE_SPEC, **defaults})
    assert spec == parse_watch_spec(BASE_SPEC)


def test_every_cel_string_field_has_a_max_length(spec_schema: dict[str, Any]) -> None:
    # The API server estimates CEL cost from maxLength; unbounded strings can exceed it.
    def walk(schema: dict[str, Any], path: str) -> None:
        if _rules(schema) and schema.get("type") == "string":
            assert "maxLength" in schema, path
        for name, child in schema.get("properties", {}).items():
            walk(child, f"{path}.{name}")

    walk(spec_schema, "spec")


def test_every_rule_message_names_its_field(spec_schema: dict[str, Any]) -> None:
    def walk(schema: dict[str, Any], name: str) -> None:
        for rule in _rules(schema):
            message = rule.get("message") or rule["messageExpression"]
            assert name in message, (name, message)
        for child_name, child in schema.get("properties", {}).items():
            walk(child, child_name)

    walk(spec_schema, "spec")


@pytest.mark.parametrize(
    ("field", "good", "bad"),
    [
        (
            "projectId",
            ["0123456789abcdef0123456789abcdef"],
            ["0123456789ABCDEF0123456789ABCDEF", "x"],
        ),
        (
            "clusterId",
            ["b4b9e60f-8aa2-11ee-af09-0255ac10004f"],
            ["B4B9E60F-8AA2-11EE-AF09-0255AC10004F", "b4b9e60f8aa211eeaf090255ac10004f"],
        ),
        (
            "region",
            ["ap-southeast-1", "eu-west-101", "my-kualalumpur-1", "cn-north-4", "ae-ad-1"],
            ["AP_1", "ap-", "-ap", "cce.example.com", "a/b", "cn-north", "region1", "a-b-1"],
        ),
    ],
)
def test_patterns_agree_with_the_spec_model(
    spec_schema: dict[str, Any], field: str, good: list[str], bad: list[str]
) -> None:
    [rule] = _rules(spec_schema["properties"][field])
    pattern = re.compile(_cel_regex(rule["rule"]))
    for value in good:
        assert pattern.search(value), value
        parse_watch_spec({**BASE_SPEC, field: value})
    for value in bad:
        assert not pattern.search(value), value
        with pytest.raises(SpecError, match=f"spec.{field}"):
            parse_watch_spec({**BASE_SPEC, field: value})


@pytest.mark.parametrize(
    "value",
    ["30s", "5m", "1h30m", "1.5h", "500ms", "2h45m30.5s", "0", ".5s", "1.s", "3µs", "3us", "1h1h"],
)
def test_duration_format_accepts_what_go_accepts(spec_schema: dict[str, Any], value: str) -> None:
    for field in ("pollInterval", "activePollInterval"):
        format_rule = _rules(spec_schema["properties"][field])[0]
        assert re.search(_cel_regex(format_rule["rule"]), value)
    parse_duration_ns(value)


@pytest.mark.parametrize("value", ["", "5", "1d", "5 m", "-5m", "+5m", "s", ".s", "5M"])
def test_duration_format_refuses(spec_schema: dict[str, Any], value: str) -> None:
    # Signs are Go syntax but never a valid interval, so the CRD refuses them as format.
    for field in ("pollInterval", "activePollInterval"):
        format_rule = _rules(spec_schema["properties"][field])[0]
        assert not re.search(_cel_regex(format_rule["rule"]), value)


def test_duration_bounds(spec_schema: dict[str, Any]) -> None:
    def bounds(field: str) -> list[str]:
        return [r["message"] for r in _rules(spec_schema["properties"][field])[1:]]

    assert bounds("pollInterval") == [
        "pollInterval must be at least 10s",
        "pollInterval must be at most 24h",
    ]
    assert bounds("activePollInterval") == ["activePollInterval must be at least 5s"]
    for field, limits in (("pollInterval", ["10s", "24h"]), ("activePollInterval", ["5s"])):
        for rule, limit in zip(_rules(spec_schema["properties"][field])[1:], limits, strict=True):
            # Guarded by the format, so a malformed value gets one message, not a CEL error.
            assert rule["rule"].startswith("!self.matches(")
            assert f"duration('{limit}')" in rule["rule"]


def test_endpoint_rules(spec_schema: dict[str, Any]) -> None:
    url_rule, loopback_rule = _rules(spec_schema["properties"]["endpoint"])
    url = re.compile(_cel_regex(url_rule["rule"]))
    loopback = re.compile(_cel_regex(loopback_rule["rule"]))
    for good in ("https://cce.ap-southeast-1.myhuaweicloud.com", "http://127.0.0.1:8080/x"):
        assert url.search(good)
    for bad in ("ftp://x", "https://a b", "https://user@host"):
        assert not url.search(bad)
    for local in ("http://localhost:1", "http://127.0.0.1", "http://[::1]:8080/p"):
        assert loopback.search(local)
    for remote in ("http://example.com", "http://10.0.0.1", "http://localhost.evil.com"):
        assert not loopback.search(remote)


def test_status_schema(version: dict[str, Any]) -> None:
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) == {
        "phase",
        "clusterVersion",
        "targetVersion",
        "currentVersion",
        "watched",
        "workflowID",
        "currentTask",
        "progress",
        "pointStatuses",
        "pointStatusesOmitted",
        "lineStatuses",
        "lineStatusesOmitted",
        "history",
        "observedGeneration",
        "lastChangeTime",
        "conditions",
        # The lifecycle parts (issue 12; tests/unit/reconcile/test_crd_lifecycle.py).
        "preCheck",
        "nextUpgrade",
        "versions",
        "lastBackupTime",
        "lifecycle",
    }
    points = status["pointStatuses"]["items"]["properties"]
    assert set(points) == {
        "taskType",
        "taskID",
        "status",
        "startTimeStamp",
        "endTimeStamp",
        "expireTimeStamp",
    }
    lines = status["lineStatuses"]["items"]["properties"]
    assert lines["critical"]["type"] == "boolean"
    assert lines["startPoint"]["properties"] == {"taskType": {"type": "string", "maxLength": 256}}
    assert set(status["history"]["items"]["properties"]) == {
        "workflowID",
        "phase",
        "clusterVersion",
        "targetVersion",
        "createdAt",
    }
    conditions = status["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {
        "type",
        "status",
        "lastTransitionTime",
        "reason",
        "message",
    }


def test_status_schema_covers_what_reconcile_writes(version: dict[str, Any]) -> None:
    from cce_upgrade_watch.reconcile import OWNED_STATUS_KEYS

    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(OWNED_STATUS_KEYS) == set(status)


def _strings_and_lists(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if schema.get("type") in ("string", "array"):
        found.append((path, schema))
    for name, child in schema.get("properties", {}).items():
        found += _strings_and_lists(child, f"{path}.{name}")
    if "items" in schema:
        found += _strings_and_lists(schema["items"], f"{path}[]")
    return found


def test_everything_copied_from_the_cloud_is_bounded_as_the_models_bound_it(
    version: dict[str, Any],
) -> None:
    """Issue 11.4: the API server and the operator agree on the limits, so a status
    cut by the operator is always accepted, and nothing larger is ever stored."""
    from cce_upgrade_watch.cce.models import MAX_LIST_ITEMS, MAX_STRING
    from cce_upgrade_watch.spec import HISTORY_LIMIT_MAX

    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    # The mirror's fields (the operator's own, such as lastChangeTime, are not from the cloud).
    from_the_cloud = "phase clusterVersion targetVersion workflowID currentTask progress"
    from_the_cloud += " pointStatuses lineStatuses history"
    mirrored = {k: status["properties"][k] for k in from_the_cloud.split()}
    checked = _strings_and_lists({"properties": mirrored})
    assert len(checked) > 20
    for path, schema in checked:
        if schema["type"] == "array":
            assert schema.get("maxItems") == MAX_LIST_ITEMS, path
        elif schema.get("format") == "date-time":
            assert schema.get("maxLength", 0) >= len("2006-01-02T15:04:05.999999Z"), path
        else:
            assert 0 < schema.get("maxLength", 0) <= MAX_STRING, path
    assert status["properties"]["history"]["maxItems"] >= HISTORY_LIMIT_MAX


def test_every_region_of_the_official_sdk_passes_the_crd_and_the_operator(
    spec_schema: dict[str, Any],
) -> None:
    from huaweicloudsdkcce.v3.region.cce_region import CceRegion

    from cce_upgrade_watch.cce.endpoints import endpoint_for_region

    [rule] = _rules(spec_schema["properties"]["region"])
    pattern = re.compile(_cel_regex(rule["rule"]))
    regions = list(CceRegion.static_fields)
    assert len(regions) > 30
    for region in regions:
        assert pattern.search(region), region
        parse_watch_spec({**BASE_SPEC, "region": region})
        assert endpoint_for_region(region) == CceRegion.value_of(region).endpoints[0]
