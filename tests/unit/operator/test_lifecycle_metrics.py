"""The lifecycle metrics: pre-check findings by level, the next upgrade and
maintenance window, patch available, the last backup. Derived from the stored
status, so a restarted operator exports them again from its first status write,
and they go with the object (or with the section: a part turned off)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from cce_upgrade_watch.metrics import OperatorMetrics
from cce_upgrade_watch.pollloop import PollLoop
from tests.unit.operator.test_pollloop import (
    FakeCce,
    FakeSecrets,
    FakeWriter,
    body,
    make_services,
)

NOT_BEFORE = "2026-12-01T02:00:00Z"
WINDOW = "2026-12-05T02:00:00Z"
BACKUP = "2026-11-28T08:14:45.098832Z"

LIFECYCLE: dict[str, Any] = {
    "phase": "Success",
    "preCheck": {
        "taskID": "68f66f81-d3f1-4a0d-a03e-469870ebb932",
        "phase": "Failed",
        "fatal": 2,
        "warning": 1,
        "info": 0,
        "findings": [{"name": "DeprecatedAPICheck", "level": "Fatal"}],
    },
    "nextUpgrade": {
        "targetVersion": "v1.28.3-r1",
        "notBefore": NOT_BEFORE,
        "phase": "Pending",
        "maintenanceWindow": {
            "weeklyPeriod": "Saturday",
            "startTime": "02:00",
            "nextStart": WINDOW,
        },
    },
    "versions": {
        "release": "v1.28.3",
        "patch": "r0",
        "suggestedPatch": "r1",
        "patchAvailable": True,
    },
    "lastBackupTime": BACKUP,
}


def unix(text: str) -> float:
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"namespace": "ns", "name": "w", **labels})


def lifecycle_samples(
    metrics: OperatorMetrics,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name.startswith(
            (
                "cceupgradewatch_precheck",
                "cceupgradewatch_next",
                "cceupgradewatch_patch",
                "cceupgradewatch_last_backup",
            )
        )
    }


def test_each_section_becomes_its_series() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.status_written("ns", "w", LIFECYCLE)
    findings = "cceupgradewatch_precheck_findings"
    assert sample(metrics, findings, level="Fatal") == 2
    assert sample(metrics, findings, level="Warning") == 1
    assert sample(metrics, findings, level="Info") == 0
    assert sample(metrics, "cceupgradewatch_next_upgrade_timestamp_seconds") == unix(NOT_BEFORE)
    assert sample(
        metrics, "cceupgradewatch_next_maintenance_window_timestamp_seconds"
    ) == unix(WINDOW)  # fmt: skip
    assert sample(metrics, "cceupgradewatch_patch_available") == 1
    assert sample(metrics, "cceupgradewatch_last_backup_timestamp_seconds") == unix(BACKUP)


def test_patch_available_false_is_zero_not_absent() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.status_written("ns", "w", {**LIFECYCLE, "versions": {"patchAvailable": False}})
    assert sample(metrics, "cceupgradewatch_patch_available") == 0


def test_a_section_that_goes_away_takes_its_series() -> None:
    # A plan that ran, a part turned off (spec.lifecycle.*: false), an API the
    # region does not offer: the section is absent, so is the series, rather
    # than a stale time an alert would keep firing on.
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.status_written("ns", "w", LIFECYCLE)
    metrics.status_written("ns", "w", {"phase": "Success"})
    assert lifecycle_samples(metrics) == {}
    assert sample(metrics, "cceupgradewatch_workflow_phase", phase="Success") == 1


def test_the_window_alone_without_a_plan() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    window = {"maintenanceWindow": LIFECYCLE["nextUpgrade"]["maintenanceWindow"]}
    metrics.status_written("ns", "w", {"nextUpgrade": window})
    assert sample(metrics, "cceupgradewatch_next_upgrade_timestamp_seconds") is None
    assert sample(
        metrics, "cceupgradewatch_next_maintenance_window_timestamp_seconds"
    ) == unix(WINDOW)  # fmt: skip


def test_the_series_go_with_the_object() -> None:
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.status_written("ns", "w", LIFECYCLE)
    metrics.status_written("ns", "other", LIFECYCLE)
    metrics.forget("ns", "w")
    remaining = lifecycle_samples(metrics)
    assert remaining
    assert all(dict(labels)["name"] == "other" for _, labels in remaining)


def test_a_restarted_operator_exports_the_same_from_the_stored_status() -> None:
    before, after = OperatorMetrics(CollectorRegistry()), OperatorMetrics(CollectorRegistry())
    before.status_written("ns", "w", LIFECYCLE)
    after.status_written("ns", "w", LIFECYCLE)  # the first write after a restart
    assert lifecycle_samples(after) == lifecycle_samples(before)
    assert len(lifecycle_samples(after)) == 7


def test_odd_values_are_left_out_never_exported_wrong() -> None:
    # A status edited by hand or written by a future version: nothing raises,
    # nothing unreadable becomes a series, and no label comes from the value.
    metrics = OperatorMetrics(CollectorRegistry())
    odd: dict[str, Any] = {
        "preCheck": {"fatal": "2", "warning": True, "info": 3, "Critical": 9},
        "nextUpgrade": {"notBefore": "next Tuesday", "maintenanceWindow": "Saturday"},
        "versions": {"patchAvailable": "yes"},
        "lastBackupTime": 1700000000,
    }
    metrics.status_written("ns", "w", odd)
    assert lifecycle_samples(metrics) == {
        (
            "cceupgradewatch_precheck_findings",
            (("level", "Info"), ("name", "w"), ("namespace", "ns")),
        ): 3.0
    }
    metrics.status_written("ns", "w", {"preCheck": [], "nextUpgrade": None, "versions": 1})
    assert lifecycle_samples(metrics) == {}


def test_a_restarted_poll_loop_exports_them_before_any_call() -> None:
    # The poll loop hands the stored status to the metrics as it starts: after a
    # restart the series are back before the first poll (which may be minutes
    # away), and without asking the cloud anything.
    metrics = OperatorMetrics(CollectorRegistry())
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    stored = {**body(), "status": LIFECYCLE}
    loop = PollLoop(
        stored, make_services(cce, writer, secrets, observer=metrics), lambda event: None
    )
    loop.start()  # what the scheduler calls as it takes the watch; no poll yet

    assert cce.calls == []
    assert writer.patches == []
    assert sample(metrics, "cceupgradewatch_next_upgrade_timestamp_seconds") == unix(NOT_BEFORE)
    assert len(lifecycle_samples(metrics)) == 7
