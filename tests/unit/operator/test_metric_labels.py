"""Label values that come from the cloud are bounded: the known values plus `Other`,
so one hostile or odd answer cannot create series without end."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from cce_upgrade_watch.metrics import OperatorMetrics


def series(metrics: OperatorMetrics, name: str) -> list[dict[str, str]]:
    return [
        dict(sample.labels)
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == name
    ]


def status(phase: str, *points: tuple[str, str]) -> dict[str, Any]:
    return {
        "phase": phase,
        "pointStatuses": [{"taskType": t, "status": s} for t, s in points],
    }


def test_known_values_are_kept() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.status_written(
        "ns", "w", status("Running", ("PreCheck", "Success"), ("Cluster", "Running"))
    )
    phases = {s["phase"] for s in series(metrics, "cceupgradewatch_workflow_phase")}
    assert phases == {"Init", "Running", "Pending", "Success", "Cancel"}
    tasks = {(s["task_type"], s["status"]) for s in series(metrics, "cceupgradewatch_task_status")}
    assert ("PreCheck", "Success") in tasks
    assert {t for t, _ in tasks} == {"PreCheck", "Cluster"}


def test_unknown_cloud_values_become_other_and_stay_bounded() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    points = [(f"Task{i}", f"Status{i}") for i in range(1000)]
    metrics.status_written("ns", "w", status("Phase-x" * 30, *points))
    phases = series(metrics, "cceupgradewatch_workflow_phase")
    assert {s["phase"] for s in phases} == {
        "Init",
        "Running",
        "Pending",
        "Success",
        "Cancel",
        "Other",
    }
    tasks = series(metrics, "cceupgradewatch_task_status")
    # One task type (Other) x (five known statuses + Other): 6 series, not 6000.
    assert len(tasks) == 6
    assert {s["task_type"] for s in tasks} == {"Other"}
    values = {
        sample.labels["status"]: sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "cceupgradewatch_task_status"
    }
    assert values["Other"] == 1.0
    assert values["Success"] == 0.0


def test_other_is_one_when_any_unknown_task_has_the_status() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.status_written("ns", "w", status("Running", ("Foo", "Failed"), ("Bar", "Success")))
    values = {
        (sample.labels["task_type"], sample.labels["status"]): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "cceupgradewatch_task_status"
    }
    assert values[("Other", "Failed")] == 1.0
    assert values[("Other", "Success")] == 1.0
    assert values[("Other", "Running")] == 0.0
