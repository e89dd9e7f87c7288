"""The lifecycle story of the simulator, read over HTTP by the operator's own client:
a failed pre-check, a plan postponed and then run, the pre-check of that run
passing, a new backup and a new patch; faults aimed at one API only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from cce_upgrade_watch.cce.auth import AkSkAuth
from cce_upgrade_watch.cce.client import CceClient, RetryPolicy
from cce_upgrade_watch.cce.errors import ApiUnavailable, CceApiError
from cce_upgrade_watch.cce.lifecycle import LifecycleApi, is_not_available
from cce_upgrade_watch.cce.lifecycle_views import (
    last_backup_time,
    next_window_start,
    patch_available,
    precheck_summary,
    select_plan,
    select_precheck,
)
from cce_upgrade_watch.cce.models import parse_workflow_list
from cce_upgrade_watch.cce.ordering import current_first
from cce_upgrade_watch.simulator import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
)
from cce_upgrade_watch.simulator.scenarios import scenario_from_data
from tests.integration.simulator.conftest import START, Launch, Sim

T0 = datetime.fromtimestamp(START, UTC)


@pytest.fixture
async def client() -> AsyncIterator[CceClient]:
    async with CceClient(retry=RetryPolicy(attempts=1)) as client:
        yield client


def lifecycle_api(client: CceClient, sim: Sim) -> LifecycleApi:
    return LifecycleApi(
        client,
        DEMO_PROJECT_ID,
        DEMO_CLUSTER_ID,
        auth=AkSkAuth(DEMO_ACCESS_KEY, DEMO_SECRET_KEY, DEMO_PROJECT_ID),
        endpoint=sim.server.url,
    )


async def test_the_lifecycle_story(launch: Launch, client: CceClient) -> None:
    sim = await launch("lifecycle")
    api = lifecycle_api(client, sim)

    # Before: a pre-check failed two hours ago with fatal findings.
    failed = select_precheck(await api.list_precheck_tasks())
    assert failed is not None
    summary = precheck_summary(failed)
    assert (summary["phase"], summary["fatal"], summary["warning"], summary["info"]) == (
        "Failed",
        2,
        1,
        1,
    )
    assert summary["findings"][0]["riskSource"]["deprecatedAPIs"][0]["url"].startswith(
        "/apis/flowcontrol.apiserver.k8s.io/v1beta2"
    )
    shown = await api.show_precheck(summary["taskID"])
    assert precheck_summary(shown) == summary

    # A patch is suggested; a plan is scheduled in an hour; a backup was made a day ago.
    assert patch_available(await api.show_upgrade_info())
    plan = select_plan(await api.list_upgrade_plans())
    assert plan is not None
    assert plan.spec.not_before == T0 + timedelta(seconds=3600)
    assert (plan.spec.target_version, plan.status.phase) == ("v1.28.3-r1", "Pending")
    assert last_backup_time(await api.list_snapshot_tasks()) == T0 - timedelta(days=1)
    window = await api.show_maintenance_window()
    assert next_window_start(window, T0) == datetime(2023, 11, 18, 2, tzinfo=UTC)  # Saturday

    # Postponed at 300 to 900.
    sim.clock.advance(300)
    plan = select_plan(await api.list_upgrade_plans())
    assert plan is not None
    assert plan.spec.not_before == T0 + timedelta(seconds=900)

    # At 400 the failed workflow is cancelled (its findings fixed); at 900 the
    # plan runs, and its pre-check passes with a warning only.
    sim.clock.advance(650)
    phases = [item["status"]["phase"] for item in await sim.api.items()]
    assert sorted(phases) == ["Cancel", "Running"]
    plan = select_plan(await api.list_upgrade_plans())
    assert plan is not None
    assert plan.status.phase == "Running"
    passed = select_precheck(await api.list_precheck_tasks())
    assert passed is not None
    assert passed.metadata.uid != failed.metadata.uid
    summary = precheck_summary(passed)
    assert (summary["phase"], summary["fatal"], summary["warning"]) == ("Success", 0, 1)

    # After: backed up during the run, upgraded, nothing to come, up to date.
    sim.clock.advance(600)
    assert last_backup_time(await api.list_snapshot_tasks()) == T0 + timedelta(seconds=959)
    assert select_plan(await api.list_upgrade_plans()) is None
    info = await api.show_upgrade_info()
    assert (info.spec.version_info.patch, info.spec.version_info.suggest_patch) == ("r1", "r1")
    assert not patch_available(info)
    assert info.spec.last_upgrade_info.phase == "Success"
    # The run is the current workflow: nothing failed is left waiting.
    (current, *_) = current_first(parse_workflow_list({"items": await sim.api.items()}).items)
    assert (current.status.phase, current.spec.target_version) == ("Success", "v1.28.3-r1")


async def test_plans_as_a_list(launch: Launch, client: CceClient) -> None:
    sim = await launch(
        scenario_from_data(
            {
                "clusters": [
                    {
                        "clusterId": DEMO_CLUSTER_ID,
                        "lifecycle": {
                            "planItemsShape": "list",
                            "plans": [
                                {"targetVersion": "v1.28.3-r1", "notBefore": 100},
                                {"targetVersion": "v1.29.1-r0", "notBefore": 50000},
                            ],
                            "maintenanceWindow": None,
                        },
                    }
                ]
            }
        )
    )
    api = lifecycle_api(client, sim)
    plans = await api.list_upgrade_plans()
    assert [p.spec.target_version for p in plans] == ["v1.28.3-r1", "v1.29.1-r0"]
    window = await api.show_maintenance_window()
    assert window.weekly_period is None  # none set: an empty answer
    # The single-item fault sends the SDK's shape: the plan still to come.
    await sim.api.control_ok("POST", "/faults", {"kind": "single-item", "api": "plans"})
    (single,) = await api.list_upgrade_plans()
    assert single.spec.target_version == "v1.28.3-r1"
    sim.clock.advance(1000)
    (single,) = await api.list_upgrade_plans()
    assert single.spec.target_version == "v1.29.1-r0"


async def test_a_fault_aimed_at_one_api_leaves_the_others(
    launch: Launch, client: CceClient
) -> None:
    sim = await launch("lifecycle")
    api = lifecycle_api(client, sim)
    await sim.api.control_ok(
        "POST",
        "/faults",
        {"kind": "error", "status": 404, "api": "window", "errorCode": "APIGW.0101"},
    )
    await sim.api.control_ok("POST", "/faults", {"kind": "error", "status": 403, "api": "plans"})
    await sim.api.control_ok(
        "POST", "/faults", {"kind": "error", "status": 503, "api": "snapshots"}
    )
    for call in (api.show_maintenance_window, api.list_upgrade_plans):
        with pytest.raises(CceApiError) as raised:
            await call()
        assert is_not_available(raised.value)
    with pytest.raises(ApiUnavailable):
        await api.list_snapshot_tasks()
    assert (await api.show_upgrade_info()).spec.version_info.release == "v1.28.3"
    assert len(await sim.api.items()) == 1  # the workflow list is untouched
    refused = await sim.api.control("POST", "/faults", {"kind": "error", "api": "nothing"})
    assert refused.status_code == 400


async def test_a_scenario_plan_must_say_when_it_was_postponed_to(launch: Launch) -> None:
    sim = await launch("idle")
    bad = {
        "clusters": [
            {
                "clusterId": DEMO_CLUSTER_ID,
                "lifecycle": {
                    "plans": [{"targetVersion": "v1.28.3-r1", "notBefore": 1, "postponedAt": 2}]
                },
            }
        ]
    }
    response = await sim.api.control("POST", "/reset", {"scenario": bad})
    assert response.status_code == 400
    assert "postponedAt and postponedTo go together" in response.text


async def test_requests_are_counted_per_api_and_operation(
    launch: Launch, client: CceClient
) -> None:
    """`count` stays the workflow list's (one per poll); every call is counted by API
    and operation, so e2e tests can check what the lifecycle calls cost."""
    sim = await launch("lifecycle")
    api = lifecycle_api(client, sim)
    await sim.api.items()
    task = select_precheck(await api.list_precheck_tasks())
    assert task is not None
    assert task.metadata.uid is not None
    await api.show_precheck(task.metadata.uid)
    await api.show_precheck(task.metadata.uid)
    await api.list_upgrade_plans()
    await api.show_maintenance_window()
    await api.show_upgrade_info()
    await api.list_snapshot_tasks()
    log = await sim.api.control_ok("GET", f"/clusters/{DEMO_CLUSTER_ID}/requests")
    assert log["count"] == 1
    assert len(log["timestamps"]) == 1
    assert log["byApi"] == {
        "plans": 1,
        "precheck": 3,
        "snapshots": 1,
        "upgradeinfo": 1,
        "window": 1,
        "workflows": 1,
    }
    assert log["byOperation"] == {
        "list_plans": 1,
        "list_prechecks": 1,
        "list_snapshots": 1,
        "list_workflows": 1,
        "show_precheck": 2,
        "show_upgrade_info": 1,
        "show_window": 1,
    }
