"""The operator's Prometheus metrics, scraped from the running operator during a scenario."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.news_simulator import NEWS_CLUSTER, news_simulator
from tests.support.simulator import SimulatorProcess
from tests.support.waiting import wait_until
from tests.support.world import World

STEP = 1000.0


def samples(world: World) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    scraped = {}
    for family in text_string_to_metric_families(world.operator.scrape_metrics()):
        for sample in family.samples:
            scraped[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return scraped


def value(world: World, metric: str, **labels: str) -> float | None:
    return samples(world).get((metric, tuple(sorted(labels.items()))))


def labelled(world: World, namespace: str, name: str) -> bool:
    return any(
        dict(labels).get("name") == name and dict(labels).get("namespace") == namespace
        for _, labels in samples(world)
    )


def test_metrics_follow_a_scenario_and_vanish_with_the_object(world: World) -> None:
    cluster = world.sim.add_cluster()
    steps = [{"task": t, "queue": STEP, "run": STEP} for t in ("PreCheck", "Cluster")]
    steps[0]["wait"] = STEP
    world.sim.start_workflow(cluster, {"steps": steps})
    world.create_secret()
    world.create_watch("metered", cluster)
    world.wait_status("metered", phase="Init")
    world.sim.advance(2 * STEP)  # PreCheck running
    world.poll_now("metered")
    world.wait_status("metered", phase="Running", currentTask="PreCheck")

    ns = world.namespace
    wait_until(
        lambda: value(world, "cceupgradewatch_workflow_phase", namespace=ns, name="metered",
                      phase="Running") == 1.0,
        timeout=15, message="the phase gauge never showed Running",
    )  # fmt: skip
    assert value(world, "cceupgradewatch_workflow_phase", namespace=ns, name="metered",
                 phase="Init") == 0.0  # fmt: skip
    assert value(world, "cceupgradewatch_task_status", namespace=ns, name="metered",
                 task_type="PreCheck", status="Running") == 1.0  # fmt: skip
    assert value(world, "cceupgradewatch_task_status", namespace=ns, name="metered",
                 task_type="Cluster", status="Init") == 1.0  # fmt: skip
    scraped = samples(world)
    requests = sum(
        v
        for (n, labels), v in scraped.items()
        if n == "cce_api_requests_total"
        and dict(labels) == {"operation": "list_upgrade_workflows", "code": "200"}
    )
    assert requests >= 2
    assert value(world, "cceupgradewatch_polls_total", result="success")
    assert any(n == "cce_api_request_duration_seconds_count" for n, _ in scraped)
    assert (value(world, "cceupgradewatch_watches") or 0) >= 1

    assert labelled(world, ns, "metered")
    world.kubectl("delete", "cuw", "metered", "--wait=true", "--timeout=60s")
    wait_until(
        lambda: not labelled(world, ns, "metered"),
        timeout=30,
        message="series of the deleted object are still exported",
    )


def unix_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    with news_simulator(tmp_path_factory.mktemp("news-simulator")) as process:
        yield process


def test_lifecycle_metrics_are_the_stored_status(world: World, news: SimulatorProcess) -> None:
    # A cluster whose pre-check failed, with a plan, a suggested patch, a window
    # and a backup: once the status shows the sections, the operator's metrics
    # say the same, and they go with the object.
    world.create_secret()
    world.create_watch("foresight", NEWS_CLUSTER, endpoint=news.url, lifecycle={})  # every part on

    def lifecycle_status() -> dict[str, Any] | None:
        status = world.status("foresight")
        sections = ("preCheck", "nextUpgrade", "versions", "lastBackupTime")
        return status if all(key in status for key in sections) else None

    status = wait_until(
        lifecycle_status, timeout=60,
        message=lambda: f"the lifecycle sections never all appeared: {world.status('foresight')}",
    )  # fmt: skip
    assert status["preCheck"]["fatal"] >= 1
    assert status["versions"]["patchAvailable"] is True

    ns, name = world.namespace, "foresight"
    expected = {
        ("cceupgradewatch_precheck_findings", "Fatal"): float(status["preCheck"]["fatal"]),
        ("cceupgradewatch_precheck_findings", "Warning"): float(status["preCheck"]["warning"]),
        ("cceupgradewatch_next_upgrade_timestamp_seconds", None): unix_time(
            status["nextUpgrade"]["notBefore"]
        ),
        ("cceupgradewatch_next_maintenance_window_timestamp_seconds", None): unix_time(
            status["nextUpgrade"]["maintenanceWindow"]["nextStart"]
        ),
        ("cceupgradewatch_patch_available", None): 1.0,
        ("cceupgradewatch_last_backup_timestamp_seconds", None): unix_time(
            status["lastBackupTime"]
        ),
    }

    def exported() -> dict[tuple[str, str | None], float | None]:
        return {
            (metric, level): value(
                world, metric, namespace=ns, name=name, **({"level": level} if level else {})
            )
            for metric, level in expected
        }

    wait_until(
        lambda: exported() == expected, timeout=15,
        message=lambda: f"metrics {exported()} are not the status' {expected}",
    )  # fmt: skip

    world.kubectl("delete", "cuw", name, "--wait=true", "--timeout=60s")
    wait_until(
        lambda: not labelled(world, ns, name), timeout=30,
        message="lifecycle series of the deleted object are still exported",
    )  # fmt: skip
