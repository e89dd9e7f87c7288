"""`cce-upgrade-watch check` against the simulator's `lifecycle` scenario: the
workflows first, as before, then pre-check, next upgrade, versions and backup;
a lifecycle call answering 404 or 403 is "not available", never a failed check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from cce_upgrade_watch.simulator import (
    DEMO_CLUSTER_ID,
    SimulatorThread,
)
from cce_upgrade_watch.simulator.faults import FaultKind
from cce_upgrade_watch.simulator.lifecycle import DEPRECATED_API_URL, NODE_NAME
from tests.support.lifecyclecheck import check, lifecycle_simulator


@pytest.fixture
def simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorThread]:
    yield from lifecycle_simulator(monkeypatch)


def fault(sim: SimulatorThread, api: str, status: int, code: str | None = None) -> None:
    sim.call(
        lambda state: state.faults.add(FaultKind.ERROR, api=api, status=status, error_code=code)
    )


def test_table_shows_the_lifecycle_after_the_workflows(
    simulator: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(simulator) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"Cluster {DEMO_CLUSTER_ID}: 1 upgrade workflow"
    order = [
        "\nWorkflow ",
        "\nPre-check ",
        "\n  Findings: 2 fatal, 1 warning, 1 info\n",
        "\nNext upgrade\n",
        "\nVersions\n",
        "\nLast backup: 2023-11-13T22:13:20Z\n",
    ]
    positions = [out.index(text) for text in order]
    assert positions == sorted(positions)
    findings = out[out.index("  LEVEL") : out.index("Next upgrade")].splitlines()
    assert findings[1].split()[:4] == ["Fatal", "Exception", "LimitCheck", "DeprecatedAPICheck"]
    assert f"      deprecated API: {DEPRECATED_API_URL} (user agent: kubectl/v1.27.4" in out
    assert f"      node: {NODE_NAME}" in lines
    assert "      add-on: coredns" in lines
    assert "  Plan:     v1.28.3-r0 -> v1.28.3-r1 (Pending)" in lines
    assert "  Window:   Saturday,Sunday from 02:00 UTC for 4 h (scope: patch)" in lines
    assert "  Suggested patch: r1 (a newer patch is available)" in lines
    assert "  Upgrade targets: v1.28.3-r1, v1.29.1-r0" in lines


def test_json_has_the_status_fields(
    simulator: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check(simulator, "-o", "json") == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert [w["phase"] for w in document["workflows"]] == ["Pending"]
    precheck = document["preCheck"]
    point = document["workflows"][0]["pointStatuses"][0]
    assert precheck["taskID"] == point["taskID"]  # the PreCheck point's task
    assert precheck["expireTime"] == point["expireTimeStamp"]
    assert (precheck["fatal"], precheck["warning"], precheck["info"]) == (2, 1, 1)
    assert [f["level"] for f in precheck["findings"]] == ["Fatal", "Fatal", "Warning", "Info"]
    upcoming = document["nextUpgrade"]
    assert {k: upcoming[k] for k in ("targetVersion", "notBefore", "phase")} == {
        "targetVersion": "v1.28.3-r1",
        "notBefore": "2023-11-14T23:13:20Z",
        "phase": "Pending",
    }
    window = upcoming["maintenanceWindow"]
    assert window["weeklyPeriod"] == "Saturday,Sunday"
    assert window["nextStart"].endswith("T02:00:00Z")
    assert document["versions"]["suggestedPatch"] == "r1"
    assert document["versions"]["patchAvailable"] is True
    assert document["lastBackupTime"] == "2023-11-13T22:13:20Z"
    assert "notAvailable" not in document
    assert "errors" not in document


def test_404_and_403_make_a_section_not_available_only(
    simulator: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    fault(simulator, "window", 404, "APIGW.0101")
    fault(simulator, "upgradeinfo", 403)
    fault(simulator, "precheck", 404)
    assert check(simulator) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "Pre-check: not available: this region or endpoint does not offer it (HTTP 404" in out
    assert "  Window:   not available: this region or endpoint does not offer it" in out
    assert "Versions: not available: this identity may not read it (HTTP 403 CCE.01403001" in out
    assert "  Plan:     v1.28.3-r0 -> v1.28.3-r1 (Pending)" in out
    assert "Workflow " in out

    assert check(simulator, "-o", "json") == 0
    document = json.loads(capsys.readouterr().out)
    assert sorted(document["notAvailable"]) == ["maintenanceWindow", "preCheck", "versions"]
    assert "APIGW.0101" in document["notAvailable"]["maintenanceWindow"]
    assert "preCheck" not in document
    assert "versions" not in document
    assert document["nextUpgrade"]["targetVersion"] == "v1.28.3-r1"
    assert len(document["workflows"]) == 1


def test_another_failure_shows_in_its_section_and_exits_5(
    simulator: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    fault(simulator, "snapshots", 500)
    assert check(simulator) == 5
    out, err = capsys.readouterr()
    failed = "Last backup: failed: list master snapshot tasks: the API is unavailable: HTTP 500"
    assert failed in out
    assert "Pre-check " in out
    assert err.count("\n") == 1
    assert err.startswith("cce-upgrade-watch check: error: backups: list master snapshot tasks")
