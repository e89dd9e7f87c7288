"""Scenarios progressing over HTTP, moved by an injected clock or the control API."""

from __future__ import annotations

from typing import Any

from cce_upgrade_watch.simulator import SystemClock

from .conftest import Api, Launch


async def tasks(api: Api) -> tuple[str, dict[str, str]]:
    items = await api.items()
    status = items[-1]["status"]
    return status["phase"], {p["taskType"]: p["status"] for p in status["pointStatuses"]}


async def test_success_runs_through_every_task(launch: Launch) -> None:
    sim = await launch("success")
    seen: list[tuple[str, dict[str, str]]] = []
    for elapsed in (0, 5, 7, 27, 64, 184, 206):
        sim.clock.advance(elapsed - (sim.clock.now() - 1_700_000_000.0))
        seen.append(await tasks(sim.api))
    phases = [phase for phase, _ in seen]
    assert phases == ["Init", "Running", "Running", "Running", "Running", "Running", "Success"]
    assert seen[1][1]["PreCheck"] == "Queuing"
    assert seen[2][1]["PreCheck"] == "Running"
    assert seen[4][1] == {
        "PreCheck": "Success",
        "Snapshot": "Success",
        "Cluster": "Running",
        "PostCheck": "Init",
    }
    assert set(seen[-1][1].values()) == {"Success"}
    summary = await sim.api.control_ok("GET", "/clusters")
    assert summary["clusters"][0]["version"] == "v1.29.1-r0"


async def test_precheck_fails_stays_pending(launch: Launch) -> None:
    sim = await launch("precheck-fails")
    sim.clock.advance(27)
    phase, statuses = await tasks(sim.api)
    assert phase == "Pending"
    assert statuses == {
        "PreCheck": "Failed",
        "Snapshot": "Init",
        "Cluster": "Init",
        "PostCheck": "Init",
    }
    sim.clock.advance(86400)
    assert (await tasks(sim.api))[0] == "Pending"


async def test_rollback_task_appears_after_the_failure(launch: Launch) -> None:
    sim = await launch("rollback")
    sim.clock.advance(124)
    phase, statuses = await tasks(sim.api)
    assert (phase, statuses["Cluster"]) == ("Pending", "Failed")
    assert "Rollback" not in statuses
    sim.clock.advance(12)
    phase, statuses = await tasks(sim.api)
    assert (phase, statuses["Rollback"]) == ("Running", "Running")
    items = await sim.api.items()
    lines = items[0]["status"]["lineStatuses"]
    assert {
        "startPoint": {"taskType": "Cluster"},
        "endPoint": {"taskType": "Rollback"},
        "critical": False,
    } in lines
    sim.clock.advance(60)
    assert (await tasks(sim.api))[1]["Rollback"] == "Success"


async def test_cancelled_scenario(launch: Launch) -> None:
    sim = await launch("cancelled")
    sim.clock.advance(39)
    assert (await tasks(sim.api))[0] == "Pending"
    sim.clock.advance(1)
    assert (await tasks(sim.api))[0] == "Cancel"


async def test_time_scale_runs_an_upgrade_in_seconds(launch: Launch) -> None:
    sim = await launch("success", time_scale=10)
    sim.clock.advance(20.5)
    assert (await tasks(sim.api))[0] == "Running"
    sim.clock.advance(0.2)
    assert (await tasks(sim.api))[0] == "Success"


async def test_control_api_advances_a_real_clock(launch: Launch) -> None:
    sim = await launch("success", clock=SystemClock())
    before = (await tasks(sim.api))[0]
    assert before in ("Init", "Running")
    answer = await sim.api.control_ok("POST", "/time/advance", {"seconds": 300})
    assert answer["now"] > 0
    assert (await tasks(sim.api))[0] == "Success"
    bad = await sim.api.control("POST", "/time/advance", {"seconds": -1})
    assert bad.status_code == 400


async def test_updates_and_creation_timestamps(launch: Launch) -> None:
    sim = await launch("success")
    first: dict[str, Any] = (await sim.api.items())[0]
    sim.clock.advance(64)
    later: dict[str, Any] = (await sim.api.items())[0]
    assert first["metadata"]["creationTimestamp"] == later["metadata"]["creationTimestamp"]
    assert first["metadata"]["updateTimestamp"] == "2023-11-14 22:13:20 +0000 UTC"
    assert later["metadata"]["updateTimestamp"] == "2023-11-14 22:14:24 +0000 UTC"
