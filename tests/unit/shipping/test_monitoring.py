"""The monitoring integrations agree with what exists: the CRD's fields, the
operator's metric names and label values, the Service that exposes them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import generate_latest

from cce_upgrade_watch.cce.models import TaskStatus
from cce_upgrade_watch.conditions import ConditionType
from cce_upgrade_watch.metrics import OperatorMetrics
from tests.unit.shipping._support import (
    CRD_FILE,
    INTEGRATIONS,
    manifest,
    yaml_document,
    yaml_documents,
)
from tests.unit.shipping._watches import SCENARIOS

KSM_CONFIG = INTEGRATIONS / "kube-state-metrics" / "custom-resource-state.yaml"
KSM_RBAC = INTEGRATIONS / "kube-state-metrics" / "clusterrole.yaml"
PROMETHEUS_RULE = INTEGRATIONS / "prometheus" / "prometheusrule.yaml"
SERVICE_MONITOR = INTEGRATIONS / "prometheus" / "servicemonitor.yaml"


def crd_version() -> dict[str, Any]:
    (version,) = yaml_document(CRD_FILE)["spec"]["versions"]
    assert isinstance(version, dict)
    return version


def schema_at(schema: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    """The schema of the field at `path` (lists are walked into), or None."""
    for key in path:
        while schema.get("type") == "array":
            schema = schema["items"]
        properties = schema.get("properties", {})
        if key not in properties:
            return None
        schema = properties[key]
    return schema


def ksm_resource() -> dict[str, Any]:
    config = yaml_document(KSM_CONFIG)
    assert config["kind"] == "CustomResourceStateMetrics"
    (resource,) = config["spec"]["resources"]
    assert isinstance(resource, dict)
    return resource


def ksm_paths(resource: dict[str, Any]) -> list[list[str]]:
    paths = list(resource["labelsFromPath"].values())
    for metric in resource["metrics"]:
        each = metric["each"]
        body = each[each["type"][0].lower() + each["type"][1:]]
        base = body.get("path", [])
        if base:
            paths.append(base)
        paths += [base + path for path in body.get("labelsFromPath", {}).values()]
        if "valueFrom" in body:
            paths.append(base + body["valueFrom"])
    return paths


def test_kube_state_metrics_reads_the_crds_fields() -> None:
    resource = ksm_resource()
    crd = yaml_document(CRD_FILE)["spec"]
    version = crd_version()
    assert resource["groupVersionKind"] == {
        "group": crd["group"],
        "version": version["name"],
        "kind": crd["names"]["kind"],
    }
    schema = version["schema"]["openAPIV3Schema"]
    for path in ksm_paths(resource):
        if path[0] == "metadata":  # not in a CRD's schema; always there
            assert path[1:] in (["name"], ["namespace"]), path
            continue
        assert schema_at(schema, path) is not None, f"{path} is not a field of the CRD"


def test_kube_state_metrics_phases_are_the_apis() -> None:
    (phase,) = [m for m in ksm_resource()["metrics"] if m["name"] == "phase"]
    assert phase["each"]["type"] == "StateSet"
    assert phase["each"]["stateSet"]["list"] == ["Init", "Running", "Pending", "Success", "Cancel"]


def test_kube_state_metrics_may_read_the_watches() -> None:
    role, binding = yaml_documents(KSM_RBAC)
    crd = yaml_document(CRD_FILE)["spec"]
    (rule,) = role["rules"]
    assert rule == {
        "apiGroups": [crd["group"]],
        "resources": [crd["names"]["plural"]],
        "verbs": ["list", "watch"],
    }
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def operator_metric_names() -> set[str]:
    """Every sample name the operator's /metrics can show."""
    metrics = OperatorMetrics()
    metrics.observe_cce_request("ListUpgradeWorkflows", "200", 0.1)
    metrics.poll_finished("success", 0.1)
    metrics.fields_dropped({"startTimeStamp": 1})
    metrics.watch_count(lambda: 1)
    metrics.status_written("team-a", "prod", SCENARIOS["upgrade running"].object()["status"])
    # The lifecycle sections as the core stores them.
    news = SCENARIOS["no upgrade; pre-check failed, upgrade soon, patch waiting"]
    metrics.status_written("team-a", "news", news.object()["status"])
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split()[0] for line in text.splitlines() if not line.startswith("#")}


def ksm_metric_names() -> set[str]:
    resource = ksm_resource()
    return {f"{resource['metricNamePrefix']}_{metric['name']}" for metric in resource["metrics"]}


def alert_rules() -> list[dict[str, Any]]:
    rule = yaml_document(PROMETHEUS_RULE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def test_alerts_use_metrics_that_exist() -> None:
    known = operator_metric_names() | ksm_metric_names()
    for rule in alert_rules():
        used = set(re.findall(r"\b((?:kube_)?cceupgradewatch_\w+|cce_api_\w+)", rule["expr"]))
        assert used, rule["alert"]
        assert used <= known, f"{rule['alert']}: unknown {used - known}"


def test_alerts_use_label_values_that_exist() -> None:
    values = {
        "status": {str(s) for s in TaskStatus},
        "type": {str(t) for t in ConditionType},
        "result": {"success"},
        "level": {"Fatal", "Warning", "Info"},
    }
    for rule in alert_rules():
        for label, value in re.findall(r'(\w+)!?="(\w+)"', rule["expr"]):
            assert value in values[label], f"{rule['alert']}: {label}={value!r}"


@pytest.mark.parametrize(
    ("alert", "fragment"),
    [
        ("CceUpgradeTaskFailed", 'cceupgradewatch_task_status{status="Failed"}) == 1'),
        ("CceUpgradeWatchPollingStalled", 'kube_cceupgradewatch_status_condition{type="Synced"}'),
        ("CceUpgradeWatchPollingFailing", 'cceupgradewatch_polls_total{result!="success"}[15m]'),
        ("CceUpgradeScheduledSoon", "cceupgradewatch_next_upgrade_timestamp_seconds)"),
        ("CcePreCheckFatalFindings", 'cceupgradewatch_precheck_findings{level="Fatal"}) > 0'),
        ("CceBackupTooOldBeforeUpgrade", "cceupgradewatch_last_backup_timestamp_seconds"),
    ],
)
def test_the_required_alerts(alert: str, fragment: str) -> None:
    (rule,) = [r for r in alert_rules() if r["alert"] == alert]
    assert fragment in rule["expr"]
    if alert == "CceUpgradeWatchPollingStalled":
        assert rule["for"] == "15m"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    assert rule["annotations"]["summary"]


def test_alert_expressions_are_well_formed() -> None:
    # No promtool here: at least the brackets pair up, every label matcher is
    # quoted, `for` is a duration, and each alert says what to do.
    pairs = {")": "(", "]": "[", "}": "{"}
    for rule in alert_rules():
        stack: list[str] = []
        for char in re.sub(r'"[^"]*"', '""', rule["expr"]):
            if char in "([{":
                stack.append(char)
            elif char in pairs:
                assert stack[-1:] == [pairs[char]], rule["alert"]
                stack.pop()
        assert not stack, rule["alert"]
        for matchers in re.findall(r"\{([^}]*)\}", rule["expr"]):
            for matcher in matchers.split(","):
                assert re.fullmatch(r'\s*\w+\s*(=|!=|=~|!~)\s*"[^"]*"\s*', matcher), rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_lifecycle_alerts_fire_only_per_watch() -> None:
    # Each keeps namespace and name, so the annotation names the watch and two
    # clusters' alerts never merge into one.
    lifecycle = {
        "CceUpgradeScheduledSoon",
        "CcePreCheckFatalFindings",
        "CceBackupTooOldBeforeUpgrade",
    }
    rules = [r for r in alert_rules() if r["alert"] in lifecycle]
    assert len(rules) == len(lifecycle)
    for rule in rules:
        for aggregation in re.findall(r"\bby \(([^)]*)\)", rule["expr"]):
            assert [label.strip() for label in aggregation.split(",")] == ["namespace", "name"]
        assert "{{ $labels.namespace }}/{{ $labels.name }}" in rule["annotations"]["summary"]


def test_service_monitor_selects_the_metrics_service() -> None:
    monitor = yaml_document(SERVICE_MONITOR)
    service = manifest("Service", "cce-upgrade-watch-metrics")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]


def test_every_integration_file_is_valid_yaml() -> None:
    files = sorted(INTEGRATIONS.rglob("*.yaml"))
    assert len(files) >= 6
    for path in files:
        documents = yaml_documents(path)
        assert documents, path
        for document in documents:
            assert document.get("kind"), f"{path}: a document without kind"
