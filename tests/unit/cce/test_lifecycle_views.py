"""The pure derivations of the lifecycle answers: pre-check to-do list, next window,
the plan to come, versions, last backup."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cce_upgrade_watch.cce.lifecycle_models import (
    MaintenanceWindow,
    PreCheckTask,
    SnapshotTaskList,
    UpgradeInfo,
    UpgradePlanList,
    parse_lifecycle,
)
from cce_upgrade_watch.cce.lifecycle_views import (
    MAX_FINDINGS,
    last_backup_time,
    next_window_start,
    patch_available,
    plan_summary,
    precheck_summary,
    select_plan,
    select_precheck,
    versions_summary,
    window_days,
    window_start_time,
    window_summary,
)


def item(name: str, level: str, kind: str = "Exception", phase: str = "Failed", **more: Any) -> Any:
    return {"name": name, "level": level, "kind": kind, "phase": phase, "group": "G", **more}


def task(
    cluster: list[Any] | None = None,
    addons: list[Any] | None = None,
    nodes: list[Any] | None = None,
    **status: Any,
) -> PreCheckTask:
    return parse_lifecycle(
        PreCheckTask,
        {
            "metadata": {"uid": "pc-1", "creationTimestamp": "2024-06-01T08:00:00Z"},
            "spec": {"clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"},
            "status": {
                "phase": "Failed",
                "expireTimeStamp": "2024-06-02 08:00:00 +0000 UTC",
                "clusterCheckStatus": {"itemsStatus": cluster or []},
                "addonCheckStatus": {"itemsStatus": addons or []},
                "nodeCheckStatus": {"nodeStageStatus": nodes or []},
                **status,
            },
        },
    )


# -- pre-check --------------------------------------------------------------------------


def test_precheck_reads_like_a_to_do_list() -> None:
    summary = precheck_summary(
        task(
            cluster=[
                item("Hint", "Info", kind="Risk"),
                item("Passed", "Fatal", phase="Success"),
                item("StillRunning", "Fatal", phase="Running"),
                item(
                    "Deprecated",
                    "Fatal",
                    errorCodes=["Cluster.0101"],
                    message="v1beta2 is removed",
                    riskSource={
                        "deprecatedAPIRisks": [
                            {
                                "url": "/apis/flowcontrol.apiserver.k8s.io/v1beta2/flowschemas",
                                "userAgent": "kubectl/v1.27.4",
                            }
                        ],
                        "configurationRisks": [{"package": "kube-apiserver", "field": "f"}],
                    },
                ),
                item("ConfirmMe", "Fatal", kind="Risk"),
            ],
            addons=[
                item(
                    "Addon",
                    "Warning",
                    kind="Risk",
                    riskSource={"addonRisks": [{"addonTemplateName": "coredns"}, {"alias": "X"}]},
                )
            ],
            nodes=[
                {
                    "nodeInfo": {"uid": "n-uid", "name": "node-a"},
                    "itemsStatus": [
                        item(
                            "NodeReady",
                            "Fatal",
                            riskSource={"nodeRisks": [{"NodeID": "n-uid"}, {"NodeID": "n-2"}]},
                        )
                    ],
                }
            ],
        )
    )
    assert {k: summary[k] for k in ("taskID", "phase", "expireTime", "createdAt")} == {
        "taskID": "pc-1",
        "phase": "Failed",
        "expireTime": "2024-06-02T08:00:00Z",
        "createdAt": "2024-06-01T08:00:00Z",
    }
    assert (summary["fatal"], summary["warning"], summary["info"]) == (3, 1, 1)
    # Fatal first, Exception before Risk, else in the API's order; passed and running left out.
    assert [f["name"] for f in summary["findings"]] == [
        "Deprecated",
        "NodeReady",
        "ConfirmMe",
        "Addon",
        "Hint",
    ]
    deprecated = summary["findings"][0]
    assert deprecated == {
        "name": "Deprecated",
        "kind": "Exception",
        "group": "G",
        "level": "Fatal",
        "phase": "Failed",
        "message": "v1beta2 is removed",
        "errorCodes": ["Cluster.0101"],
        "riskSource": {
            "deprecatedAPIs": [
                {
                    "url": "/apis/flowcontrol.apiserver.k8s.io/v1beta2/flowschemas",
                    "userAgent": "kubectl/v1.27.4",
                }
            ],
            "configurations": ["kube-apiserver f"],
        },
    }
    assert summary["findings"][1]["riskSource"] == {"nodes": ["node-a", "n-2"]}
    assert summary["findings"][3]["riskSource"] == {"addons": ["coredns", "X"]}
    assert "findingsOmitted" not in summary


def test_findings_are_bounded_with_the_fatal_ones_kept() -> None:
    many = [item(f"w{i}", "Warning") for i in range(30)] + [item("last-fatal", "Fatal")]
    summary = precheck_summary(task(cluster=many))
    assert len(summary["findings"]) == MAX_FINDINGS
    assert summary["findings"][0]["name"] == "last-fatal"
    assert summary["findingsOmitted"] == 31 - MAX_FINDINGS
    assert (summary["fatal"], summary["warning"]) == (1, 30)


def test_an_unknown_level_is_a_finding_after_the_known_ones() -> None:
    summary = precheck_summary(task(cluster=[item("odd", "Catastrophic"), item("i", "Info")]))
    assert [f["name"] for f in summary["findings"]] == ["i", "odd"]
    assert (summary["fatal"], summary["warning"], summary["info"]) == (0, 0, 1)


def test_a_passed_precheck_has_no_findings() -> None:
    summary = precheck_summary(
        task(cluster=[item("ok", "Fatal", phase="Success")], phase="Success")
    )
    assert summary["findings"] == []
    assert (summary["fatal"], summary["warning"], summary["info"]) == (0, 0, 0)


def test_the_newest_precheck_is_selected() -> None:
    def dated(uid: str, created: str | None) -> PreCheckTask:
        return parse_lifecycle(
            PreCheckTask, {"metadata": {"uid": uid, "creationTimestamp": created}}
        )

    tasks = [
        dated("undated", None),
        dated("old", "2024-01-01T00:00:00Z"),
        dated("new", "2024-06-01 00:00:00 +0000 UTC"),
    ]
    chosen = select_precheck(tasks)
    assert chosen is not None
    assert chosen.metadata.uid == "new"
    assert select_precheck([]) is None


# -- maintenance window ---------------------------------------------------------------------


def window(period: str | None, start: str | None, hours: int | None = 4) -> MaintenanceWindow:
    return parse_lifecycle(
        MaintenanceWindow,
        {"weekly_period": period, "start_time": start, "duration_hours": hours},
    )


# 2024-06-05 is a Wednesday.
WEDNESDAY_NOON = datetime(2024, 6, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "start", "expected"),
    [
        ("Friday,Saturday", "02:00", datetime(2024, 6, 7, 2, 0, tzinfo=UTC)),
        ("Wednesday", "12:00", WEDNESDAY_NOON),  # starts right now
        ("Wednesday", "11:59", datetime(2024, 6, 12, 11, 59, tzinfo=UTC)),  # a week on
        ("wed, THU", "23:30:15", datetime(2024, 6, 5, 23, 30, 15, tzinfo=UTC)),
        ("Sunday", "00:00", datetime(2024, 6, 9, 0, 0, tzinfo=UTC)),
        ("Someday", "02:00", None),
        ("Friday", "25:00", None),
        ("Friday", "2 am", None),
        (None, "02:00", None),
        ("Friday", None, None),
    ],
)
def test_next_window_start(period: str, start: str, expected: datetime | None) -> None:
    assert next_window_start(window(period, start), WEDNESDAY_NOON) == expected


def test_window_summary_in_the_status_shape() -> None:
    summary = window_summary(
        parse_lifecycle(
            MaintenanceWindow,
            {
                "weekly_period": "Friday,Saturday",
                "start_time": "02:00",
                "duration_hours": 4,
                "upgrade_scope": "patch",
            },
        ),
        WEDNESDAY_NOON.astimezone(),
    )
    assert summary == {
        "weeklyPeriod": "Friday,Saturday",
        "startTime": "02:00",
        "durationHours": 4,
        "scope": "patch",
        "nextStart": "2024-06-07T02:00:00Z",
    }
    assert window_summary(window(None, None, None), WEDNESDAY_NOON) == {}


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@given(
    days=st.sets(st.integers(0, 6), min_size=1),
    start=st.times(),
    now=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
)
def test_next_window_start_is_the_first_start_at_or_after_now(
    days: set[int], start: time, now: datetime
) -> None:
    start = start.replace(microsecond=0)
    period = ",".join(_DAY_NAMES[d] for d in sorted(days))
    found = next_window_start(window(period, start.strftime("%H:%M:%S")), now)
    assert found is not None
    assert found.tzinfo == UTC
    assert now <= found < now + timedelta(days=7, seconds=1)
    assert found.weekday() in days
    assert found.time() == start
    # Nothing earlier qualifies: every start between now and it is on another day.
    moment = datetime.combine(now.date(), start, tzinfo=UTC)
    while moment < found:
        assert moment < now or moment.weekday() not in days
        moment += timedelta(days=1)


def test_window_parts() -> None:
    assert window_days("Friday, saturday,SUN") == frozenset({4, 5, 6})
    assert window_days("") is None
    assert window_start_time("7:05") == time(7, 5, tzinfo=UTC)
    assert window_start_time("07:60") is None


# -- plans ----------------------------------------------------------------------------------


def plans(*entries: dict[str, Any]) -> Any:
    return parse_lifecycle(UpgradePlanList, {"items": list(entries)}).items


def test_the_pending_plan_that_starts_first_is_next() -> None:
    found = plans(
        {"metadata": {"uid": "done"}, "spec": {"notBefore": "2024-01-01T00:00:00Z"},
         "status": {"phase": "Success"}},
        {"metadata": {"uid": "later"}, "spec": {"notBefore": "2024-07-01T00:00:00Z"},
         "status": {"phase": "Pending"}},
        {"metadata": {"uid": "sooner"}, "spec": {"targetVersion": "v1.28.3-r1",
         "clusterVersion": "v1.28.3-r0", "notBefore": "2024-06-08 02:00:00 +0000 UTC",
         "notAfter": "2024-06-08T06:00:00Z", "notBeforeDeadline": "2024-06-15T02:00:00Z"},
         "status": {"phase": "SomethingNew"}},
    )  # fmt: skip
    chosen = select_plan(found)
    assert chosen is not None
    assert plan_summary(chosen) == {
        "planID": "sooner",
        "targetVersion": "v1.28.3-r1",
        "clusterVersion": "v1.28.3-r0",
        "notBefore": "2024-06-08T02:00:00Z",
        "notAfter": "2024-06-08T06:00:00Z",
        "notBeforeDeadline": "2024-06-15T02:00:00Z",
        "phase": "SomethingNew",
    }
    assert select_plan(plans({"status": {"phase": "Cancelled"}})) is None
    assert select_plan([]) is None


# -- versions and backups ---------------------------------------------------------------------


def test_versions_and_patch_available() -> None:
    info = parse_lifecycle(
        UpgradeInfo,
        {
            "spec": {
                "versionInfo": {
                    "release": "v1.28.3",
                    "patch": "r0",
                    "suggestPatch": "r1",
                    "targetVersions": ["v1.28.3-r1", "v1.29.1-r0"],
                },
                "lastUpgradeInfo": {
                    "phase": "Success",
                    "progress": "100",
                    "completionTime": "2024-05-01 10:00:00 +0000 UTC",
                },
            }
        },
    )
    assert versions_summary(info) == {
        "release": "v1.28.3",
        "patch": "r0",
        "suggestedPatch": "r1",
        "targetVersions": ["v1.28.3-r1", "v1.29.1-r0"],
        "lastUpgrade": {
            "phase": "Success",
            "progress": "100",
            "completionTime": "2024-05-01T10:00:00Z",
        },
    }
    assert patch_available(info)
    same = parse_lifecycle(
        UpgradeInfo, {"spec": {"versionInfo": {"patch": "r1", "suggestPatch": "r1"}}}
    )
    assert not patch_available(same)
    assert not patch_available(parse_lifecycle(UpgradeInfo, {}))


def test_last_backup_time() -> None:
    def snapshots(body: dict[str, Any]) -> SnapshotTaskList:
        return parse_lifecycle(SnapshotTaskList, body)

    stated = snapshots({"status": {"latestBackupTime": "2024-06-01T00:00:00Z"}, "items": []})
    assert last_backup_time(stated) == datetime(2024, 6, 1, tzinfo=UTC)
    derived = snapshots(
        {
            "items": [
                {"spec": {"items": [{"type": "master-backup", "status": "Success",
                                     "updateTimestamp": "2024-05-01T00:00:00Z"}]}},
                {"spec": {"items": [{"type": "master-backup", "status": "Failed",
                                     "updateTimestamp": "2024-05-20T00:00:00Z"}]}},
                {"spec": {"items": [{"type": "master-backup-rollback", "status": "Success",
                                     "updateTimestamp": "2024-05-25T00:00:00Z"}]}},
                {"status": {"phase": "Success", "completionTime": "2024-05-10T00:00:00Z"}},
            ]
        }
    )  # fmt: skip
    assert last_backup_time(derived) == datetime(2024, 5, 10, tzinfo=UTC)
    assert last_backup_time(snapshots({})) is None


_items = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.text(max_size=5),
            "level": st.sampled_from(["Fatal", "Warning", "Info", "Odd", None]),
            "kind": st.sampled_from(["Exception", "Risk", "Other", None]),
            "phase": st.sampled_from(["Failed", "Success", "Init", "Running", "Weird", None]),
        }
    ),
    max_size=40,
)


@given(cluster=_items, addons=_items)
def test_precheck_summary_properties(cluster: list[Any], addons: list[Any]) -> None:
    summary = precheck_summary(task(cluster=cluster, addons=addons))
    failing = [i for i in cluster + addons if i["phase"] not in ("Success", "Init", "Running")]
    for level in ("Fatal", "Warning", "Info"):
        assert summary[level.lower()] == sum(1 for i in failing if i["level"] == level)
    findings = summary["findings"]
    assert len(findings) == min(len(failing), MAX_FINDINGS)
    assert summary.get("findingsOmitted", 0) == len(failing) - len(findings)
    level_rank = {"Fatal": 0, "Warning": 1, "Info": 2}
    kind_rank = {"Exception": 0, "Risk": 1}
    ranks = [(level_rank.get(f.get("level"), 3), kind_rank.get(f.get("kind"), 2)) for f in findings]
    assert ranks == sorted(ranks)  # most severe first, Exception before Risk
    levels = [r[0] for r in ranks]
    # Every Fatal finding is kept before anything else is.
    fatal = sum(1 for i in failing if i["level"] == "Fatal")
    assert levels.count(0) == min(fatal, MAX_FINDINGS)
