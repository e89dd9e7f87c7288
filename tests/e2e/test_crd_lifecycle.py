"""The CRD's lifecycle parts on a real API server (issue 12): spec.lifecycle's
rules and defaults, and that every lifecycle section the core writes is stored
as written, also when a merge patch removes part of it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from cce_upgrade_watch.lifecycle_state import PartNotOffered
from cce_upgrade_watch.reconcile import status_patch
from tests.support.controlplane import ControlPlane
from tests.unit.reconcile._lifecycle import (
    T0,
    Watch,
    answers,
    finding,
    plan,
    precheck,
    versions,
    window,
)

GROUP = "cce.upgradewatch.io"


def _manifest(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "CceUpgradeWatch",
        "metadata": {"name": name},
        "spec": {
            "region": "ap-southeast-1",
            "projectId": "0123456789abcdef0123456789abcdef",
            "clusterId": "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
            "credentialsSecretRef": {"name": "cce-credentials"},
            **spec,
        },
    }


def _create(plane: ControlPlane, namespace: str, manifest: dict[str, Any]) -> Any:
    return plane.kubectl(
        "-n", namespace, "create", "-f", "-", stdin=json.dumps(manifest), check=False
    )


BAD = [
    ({"planInterval": "1m"}, "lifecycle.planInterval must be at least 5m"),
    ({"planInterval": "25h"}, "lifecycle.planInterval must be at most 24h"),
    ({"planInterval": "hourly"}, "lifecycle.planInterval must be a duration"),
    ({"upgradeSoonLeadTime": "30s"}, "lifecycle.upgradeSoonLeadTime must be at least 1m"),
    ({"upgradeSoonLeadTime": "721h"}, "lifecycle.upgradeSoonLeadTime must be at most 720h"),
    ({"plans": "yes"}, "spec.lifecycle.plans"),
]


@pytest.mark.parametrize(("lifecycle", "words"), BAD, ids=[words for _, words in BAD])
def test_bad_lifecycle_settings_are_refused_naming_the_field(
    control_plane: ControlPlane, crd: str, namespace: str, lifecycle: dict[str, Any], words: str
) -> None:
    result = _create(control_plane, namespace, _manifest("bad", lifecycle=lifecycle))
    assert result.returncode != 0
    assert words in result.stderr, result.stderr


def test_lifecycle_defaults_are_filled_in(
    control_plane: ControlPlane, crd: str, namespace: str
) -> None:
    _create(control_plane, namespace, _manifest("defaults", lifecycle={"backups": False}))
    stored = control_plane.kubectl_json("-n", namespace, "get", "cuw", "defaults")
    assert stored["spec"]["lifecycle"] == {
        "preCheck": True,
        "plans": True,
        "versions": True,
        "backups": False,
        "planInterval": "2h",
        "upgradeSoonLeadTime": "24h",
    }


def test_every_lifecycle_section_is_stored_as_the_core_writes_it(
    control_plane: ControlPlane, crd: str, namespace: str
) -> None:
    created = _create(control_plane, namespace, _manifest("sections"))
    assert created.returncode == 0, created.stderr
    hostile = finding("F" * 1000, message="m" * 900, errorCodes=[f"E{i}" for i in range(50)])
    full = answers(
        preCheck=precheck(findings=[hostile] * 40),
        plans=plan(),
        maintenanceWindow=window(),
        versions=versions(suggested="r2") | {"targetVersions": [f"v1.{i}" for i in range(40)]},
        backups="2026-03-01T00:00:00.123456Z",
    )
    watch = Watch()
    watch.poll(T0, full)

    def write(status: dict[str, Any] | None, previous: dict[str, Any] | None) -> Any:
        patch = status_patch(previous, status or {})
        control_plane.kubectl(
            "-n", namespace, "patch", "cuw", "sections", "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": patch}),
        )  # fmt: skip
        return control_plane.kubectl_json("-n", namespace, "get", "cuw", "sections")["status"]

    stored = write(watch.stored, None)
    assert stored == watch.stored

    # The plan is gone and plans become forbidden: the merge patch must remove
    # the plan's fields from nextUpgrade and keep the window.
    before = watch.stored
    watch.poll(T0 + timedelta(hours=1), answers(plans=PartNotOffered(403, "no")))
    stored = write(watch.stored, before)
    assert stored == watch.stored
    assert set(stored["nextUpgrade"]) == {"maintenanceWindow"}

    wide = control_plane.kubectl("-n", namespace, "get", "cuw", "sections", "-o", "wide")
    assert "NEXT UPGRADE" in wide.stdout.splitlines()[0]
