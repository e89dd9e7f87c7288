"""The operator's Prometheus metrics, scraped from the running operator during a scenario."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

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
