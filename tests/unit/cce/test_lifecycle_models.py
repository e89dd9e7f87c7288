"""The lifecycle answers' models: lenient, bounded, timestamps in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cce_upgrade_watch.cce.lifecycle_models import (
    MAX_ERROR_CODES,
    MAX_LIST,
    LifecycleParseError,
    MaintenanceWindow,
    PreCheckTask,
    PreCheckTaskList,
    SnapshotTaskList,
    UpgradeInfo,
    UpgradePlanList,
    parse_lifecycle,
)
from cce_upgrade_watch.cce.models import MAX_STRING

MODELS = (
    PreCheckTask,
    PreCheckTaskList,
    UpgradePlanList,
    MaintenanceWindow,
    UpgradeInfo,
    SnapshotTaskList,
)

PRECHECK: dict[str, Any] = {
    "kind": "PreCheckTask",
    "apiVersion": "v3",
    "metadata": {
        "uid": "pc-1",
        "creationTimestamp": "2024-06-01 10:00:00.5 +0200 CEST",
        "updateTimestamp": "2024-06-01T08:05:00Z",
    },
    "spec": {"clusterID": "c", "clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"},
    "status": {
        "phase": "Failed",
        "expireTimeStamp": "2024-06-02 08:05:00 +0000 UTC",
        "clusterCheckStatus": {
            "phase": "Failed",
            "itemsStatus": [
                {
                    "name": "DeprecatedAPICheck",
                    "kind": "Exception",
                    "group": "LimitCheck",
                    "level": "Fatal",
                    "phase": "Failed",
                    "errorCodes": ["E1", "E2"],
                    "riskSource": {
                        "deprecatedAPIRisks": [{"url": "/apis/x/v1beta1/y", "userAgent": "ua"}]
                    },
                }
            ],
        },
        "nodeCheckStatus": {
            "phase": "Failed",
            "nodeStageStatus": [
                {"nodeInfo": {"uid": "n-1", "name": "node-a"}, "itemsStatus": [{"name": "N"}]}
            ],
        },
    },
}


def test_a_precheck_task_reads_as_the_sdk_names_it() -> None:
    task = parse_lifecycle(PreCheckTask, PRECHECK)
    assert task.metadata.uid == "pc-1"
    # Go's layout with a zone, and RFC 3339: both become UTC.
    assert task.metadata.creation_timestamp == datetime(2024, 6, 1, 8, 0, 0, 500000, tzinfo=UTC)
    assert task.status.expire_time_stamp == datetime(2024, 6, 2, 8, 5, tzinfo=UTC)
    (item,) = task.status.cluster_check_status.items_status
    assert (item.name, item.kind, item.group, item.level) == (
        "DeprecatedAPICheck",
        "Exception",
        "LimitCheck",
        "Fatal",
    )
    assert item.error_codes == ["E1", "E2"]
    (risk,) = item.risk_source.deprecated_api_risks
    assert (risk.url, risk.user_agent) == ("/apis/x/v1beta1/y", "ua")
    (stage,) = task.status.node_check_status.node_stage_status
    assert stage.node_info.name == "node-a"
    assert task.status.addon_check_status.items_status == []


def test_unknown_values_survive_and_junk_is_dropped() -> None:
    body = {
        "metadata": {"uid": ["not", "a", "string"], "creationTimestamp": "yesterday"},
        "spec": "not an object",
        "status": {
            "phase": "Exploded",  # unknown: kept as it is
            "expireTimeStamp": 12,
            "clusterCheckStatus": {
                "itemsStatus": [
                    "junk",
                    None,
                    {"name": "X", "level": "Catastrophic", "errorCodes": "E9", "riskSource": 3},
                ]
            },
            "nodeCheckStatus": [],
        },
    }
    task = parse_lifecycle(PreCheckTask, body)
    assert task.metadata.uid is None
    assert task.metadata.creation_timestamp is None
    assert task.spec.target_version is None
    assert task.status.phase == "Exploded"
    assert task.status.expire_time_stamp is None
    (item,) = task.status.cluster_check_status.items_status
    assert (item.name, item.level, item.error_codes) == ("X", "Catastrophic", ["E9"])
    assert item.risk_source.deprecated_api_risks == []


def test_strings_and_lists_are_bounded() -> None:
    items: list[dict[str, Any]] = [
        {"name": f"item-{i}", "message": "m" * 10_000} for i in range(MAX_LIST + 50)
    ]
    items[0]["errorCodes"] = ["E"] * 50
    body = {"status": {"clusterCheckStatus": {"itemsStatus": items}}}
    task = parse_lifecycle(PreCheckTask, body)
    kept = task.status.cluster_check_status.items_status
    assert len(kept) == MAX_LIST
    assert all(len(item.message or "") == MAX_STRING for item in kept)
    assert kept[0].message is not None
    assert kept[0].message.endswith("...")
    assert len(kept[0].error_codes) == MAX_ERROR_CODES


@pytest.mark.parametrize("shape", ["single", "list"])
def test_plans_as_one_object_or_a_list(shape: str) -> None:
    plan = {
        "metadata": {"uid": "p-1"},
        "spec": {
            "targetVersion": "v1.28.3-r1",
            "notBefore": "2024-06-04T02:00:00Z",
            "notAfter": "2024-06-04 06:00:00 +0000 UTC",
            "notBeforeDeadline": "2024-06-10T02:00:00+08:00",
        },
        "status": {"phase": "Pending"},
    }
    body = {"kind": "List", "items": plan if shape == "single" else [plan, plan]}
    plans = parse_lifecycle(UpgradePlanList, body).items
    assert len(plans) == (1 if shape == "single" else 2)
    assert plans[0].spec.not_after == datetime(2024, 6, 4, 6, tzinfo=UTC)
    assert plans[0].spec.not_before_deadline == datetime(2024, 6, 9, 18, tzinfo=UTC)


def test_the_window_is_snake_case_and_its_hours_a_number() -> None:
    window = parse_lifecycle(
        MaintenanceWindow,
        {"weekly_period": "Friday,Saturday", "start_time": "22:30", "duration_hours": "4"},
    )
    assert (window.weekly_period, window.start_time, window.duration_hours) == (
        "Friday,Saturday",
        "22:30",
        4,
    )
    assert parse_lifecycle(MaintenanceWindow, {"duration_hours": "four"}).duration_hours is None
    assert parse_lifecycle(MaintenanceWindow, {"duration_hours": True}).duration_hours is None


def test_upgrade_info_and_snapshots() -> None:
    info = parse_lifecycle(
        UpgradeInfo,
        {
            "spec": {
                "versionInfo": {
                    "release": "v1.28.3",
                    "patch": "r0",
                    "suggestPatch": "r1",
                    "targetVersions": ["v1.29.1-r0", 7, None, {"x": 1}],
                },
                "lastUpgradeInfo": {"phase": "Success", "completionTime": "2024-01-01T00:00:00Z"},
            }
        },
    )
    assert info.spec.version_info.suggest_patch == "r1"
    assert info.spec.version_info.target_versions == ["v1.29.1-r0", "7"]
    snapshots = parse_lifecycle(
        SnapshotTaskList,
        {
            "items": [{"spec": {"items": [{"type": "master-backup", "status": "Success"}]}}],
            "status": {"latestBackupTime": "2024-05-31 23:00:00 -0100 -01"},
        },
    )
    assert snapshots.status.latest_backup_time == datetime(2024, 6, 1, 0, tzinfo=UTC)
    assert snapshots.items[0].spec.items[0].type == "master-backup"


@pytest.mark.parametrize("body", [[], "text", 3, None, True])
def test_only_a_non_object_is_an_error(body: Any) -> None:
    with pytest.raises(LifecycleParseError, match="not a JSON object"):
        parse_lifecycle(UpgradeInfo, body)


_json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_any_json = st.recursive(
    _json_leaf,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "items",
                    "metadata",
                    "spec",
                    "status",
                    "phase",
                    "itemsStatus",
                    "clusterCheckStatus",
                    "nodeCheckStatus",
                    "nodeStageStatus",
                    "riskSource",
                    "deprecatedAPIRisks",
                    "errorCodes",
                    "versionInfo",
                    "targetVersions",
                    "notBefore",
                    "latestBackupTime",
                    "weekly_period",
                    "duration_hours",
                    "creationTimestamp",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MODELS), st.dictionaries(st.text(max_size=10), _any_json, max_size=5))
def test_any_object_parses_without_error(model: Any, body: dict[str, Any]) -> None:
    parse_lifecycle(model, body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(MODELS),
    st.sampled_from(["items", "metadata", "spec", "status"]),
    _any_json,
)
def test_any_value_under_a_known_key_parses_without_error(model: Any, key: str, value: Any) -> None:
    parse_lifecycle(model, {key: value})
