"""Credentials, spec changes, suspend, poll-now, restarts and idle writes, on a real cluster."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.support.controlplane import OPERATOR_USER
from tests.support.waiting import wait_until
from tests.support.world import World

STEP = 1000.0


def long_timeline(*tasks: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"task": t, "queue": STEP, "run": STEP} for t in tasks]
    steps[0]["wait"] = STEP
    return {"steps": steps}


def request_count(world: World, cluster: str) -> int:
    return int(world.sim.requests(cluster)["count"])


def test_missing_secret_then_created_recovers(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.create_watch("nosecret", cluster)
    condition = world.wait_condition("nosecret", "Synced", "False", "CredentialsNotFound")
    assert "cce-credentials" in condition["message"]
    world.wait_condition("nosecret", "Stalled", "True", "CredentialsNotFound")
    world.wait_condition("nosecret", "Ready", "False", "CredentialsNotFound")
    assert request_count(world, cluster) == 0  # nothing was sent without credentials

    world.create_secret()
    world.wait_condition("nosecret", "Synced", "True", "PollSucceeded", timeout=40)
    world.wait_condition("nosecret", "Ready", "True", "NoUpgrade")
    events = world.wait_events("nosecret", 2)
    assert [(kind, reason) for kind, reason, _ in events] == [
        ("Warning", "PollFailed"),
        ("Normal", "PollRecovered"),
    ]


def test_wrong_keys_are_credentials_invalid(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.create_secret(secret_key="not-the-right-secret-key")
    world.create_watch("wrongkeys", cluster)
    condition = world.wait_condition("wrongkeys", "Synced", "False", "CredentialsInvalid")
    assert "401" in condition["message"]
    assert "not-the-right-secret-key" not in json.dumps(world.get("wrongkeys"))
    world.wait_condition("wrongkeys", "Stalled", "True", "CredentialsInvalid")
    events = world.wait_events("wrongkeys", 1)
    assert [(kind, reason) for kind, reason, _ in events] == [("Warning", "PollFailed")]


def test_rotated_secret_is_used_without_restart(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.create_secret(secret_key="old-secret-key-that-will-be-revoked")
    world.create_watch("rotated", cluster, pollInterval="1h")
    world.wait_condition("rotated", "Synced", "False", "CredentialsInvalid")
    # The Secret is fixed; the operator re-reads it on the poll that follows.
    world.create_secret()
    world.poll_now("rotated")
    world.wait_condition("rotated", "Synced", "True", "PollSucceeded")


def test_unknown_cluster_is_cluster_not_found(world: World) -> None:
    world.create_secret()
    world.create_watch("nocluster", "00000000-0000-4000-8000-000000000000")
    condition = world.wait_condition("nocluster", "Synced", "False", "ClusterNotFound")
    assert "404" in condition["message"]
    world.wait_condition("nocluster", "Stalled", "True", "ClusterNotFound")


def test_spec_change_to_another_cluster_takes_effect_at_once(world: World) -> None:
    first = world.sim.add_cluster(version="v1.27.0-r0")
    second = world.sim.add_cluster(version="v1.28.0-r0")
    world.sim.start_workflow(first, long_timeline("PreCheck"), targetVersion="v1.28.0-r0")
    world.sim.start_workflow(second, long_timeline("PreCheck"), targetVersion="v1.29.0-r0")
    world.create_secret()
    # Long intervals: only the spec change itself can explain a quick update.
    world.create_watch("switch", first, pollInterval="1h", activePollInterval="1h")
    world.wait_status("switch", clusterVersion="v1.27.0-r0")
    world.patch_spec("switch", clusterId=second)
    status = world.wait_status("switch", clusterVersion="v1.28.0-r0", timeout=15)
    assert status["targetVersion"] == "v1.29.0-r0"
    assert status["observedGeneration"] == world.get("switch")["metadata"]["generation"]


def test_suspend_stops_polling_and_keeps_status(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.sim.start_workflow(cluster, long_timeline("PreCheck", "Cluster"))
    world.create_secret()
    world.create_watch("suspended", cluster, activePollInterval="5s")
    before = world.wait_status("suspended", phase="Init")
    world.patch_spec("suspended", suspend=True)
    generation = world.get("suspended")["metadata"]["generation"]
    world.wait_status("suspended", observedGeneration=generation)
    requests_at_suspend = request_count(world, cluster)
    world.sim.advance(STEP)  # the cluster moves on, unseen
    world.poll_now("suspended")  # even an explicit poll request is ignored
    # An observation window longer than the active interval: no poll may happen in it.
    time.sleep(7)
    assert request_count(world, cluster) == requests_at_suspend
    status = world.status("suspended")
    assert status["phase"] == before["phase"] == "Init"
    assert status["pointStatuses"] == before["pointStatuses"]

    world.patch_spec("suspended", suspend=False)
    world.wait_status("suspended", phase="Running", timeout=15)
    assert request_count(world, cluster) > requests_at_suspend


def test_poll_now_annotation_polls_immediately(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.create_secret()
    world.create_watch("pollnow", cluster, pollInterval="1h")
    world.wait_condition("pollnow", "Ready", "True", "NoUpgrade")
    world.sim.start_workflow(cluster, long_timeline("PreCheck"))
    world.poll_now("pollnow")
    world.wait_status("pollnow", phase="Init", timeout=15)


def test_operator_killed_mid_upgrade_loses_nothing_and_repeats_nothing(world: World) -> None:
    tasks = ("PreCheck", "Snapshot", "Cluster", "PostCheck")
    cluster = world.sim.add_cluster()
    world.sim.start_workflow(cluster, long_timeline(*tasks))
    world.create_secret()
    world.create_watch("restart", cluster)
    world.wait_status("restart", phase="Init")
    world.sim.advance(3 * STEP)  # PreCheck done, Snapshot queued
    world.wait_status("restart", currentTask="Snapshot", progress="1/4")
    world.wait_events("restart", 4)

    world.operator.kill()
    world.sim.advance(2 * STEP)  # Snapshot succeeds and Cluster queues while no one watches
    world.operator.start()
    world.wait_status("restart", currentTask="Cluster", progress="2/4")
    world.sim.advance(6 * STEP)  # to the end
    world.wait_status("restart", phase="Success", progress="4/4")

    events = world.wait_events("restart", 9)
    duplicates = [e for e, n in Counter(events).items() if n > 1]
    assert duplicates == [], events
    # Time jumps in whole steps, so each poll sees a jump; what happened while the
    # operator was dead shows up once, after the restart, and nothing twice.
    assert [message for _, reason, message in events if reason == "TaskStatusChanged"] == [
        "PreCheck: Init -> Success",
        "Snapshot: Init -> Queuing",
        # the operator was killed here
        "Snapshot: Queuing -> Success",
        "Cluster: Init -> Queuing",
        "Cluster: Queuing -> Success",
        "PostCheck: Init -> Success",
    ]
    assert [reason for _, reason, _ in events].count("PhaseChanged") == 2
    status = world.status("restart")
    assert [p["status"] for p in status["pointStatuses"]] == ["Success"] * 4


def _operator_writes_in(world: World, namespace: str) -> list[str]:
    return [
        f"{event['verb']} {event['requestURI']}"
        for event in world.plane.audit_events(OPERATOR_USER)
        if event.get("objectRef", {}).get("namespace") == namespace
    ]


def flush_audit_log(world: World) -> None:
    """The audit log is written in batches: make a write and wait until it is logged,
    so every earlier request is in the file too."""
    marker = f"audit-flush-{uuid.uuid4().hex[:8]}"
    world.kubectl("create", "configmap", marker)
    wait_until(
        lambda: any(
            e.get("objectRef", {}).get("name") == marker for e in world.plane.audit_events("admin")
        ),
        timeout=20,
        message="the audit log was not flushed",
    )


def test_unchanged_polls_write_nothing(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.create_secret()
    world.create_watch("idle", cluster, pollInterval="1h")
    world.wait_condition("idle", "Ready", "True", "NoUpgrade")
    flush_audit_log(world)
    writes_before = _operator_writes_in(world, world.namespace)
    assert writes_before, "the operator's first status write should be in the audit log"

    polls = 10
    start = request_count(world, cluster)
    for index in range(1, polls + 1):
        world.poll_now("idle")
        wait_until(
            lambda n=index: request_count(world, cluster) >= start + n,  # type: ignore[misc]
            timeout=15,
            message="the poll-now annotation did not cause a poll",
        )
    flush_audit_log(world)
    writes_after = _operator_writes_in(world, world.namespace)
    assert request_count(world, cluster) - start == polls
    assert writes_after == writes_before, writes_after[len(writes_before) :]


BAD_SPECS = [
    ({"projectId": "ABC"}, "spec.projectId", "32 lowercase hexadecimal"),
    ({"clusterId": "not-a-uuid"}, "spec.clusterId", "UUID"),
    ({"pollInterval": "1d"}, "spec.pollInterval", "must be a duration"),
    ({"pollInterval": "5s"}, "spec.pollInterval", "at least 10s"),
    ({"pollInterval": "25h"}, "spec.pollInterval", "at most 24h"),
    ({"activePollInterval": "1s"}, "spec.activePollInterval", "at least 5s"),
    ({"historyLimit": 51}, "spec.historyLimit", "50"),
    ({"historyLimit": -1}, "spec.historyLimit", "0"),
    ({"endpoint": "http://cce.example.com"}, "spec.endpoint", "loopback"),
    ({"endpoint": "ftp://127.0.0.1"}, "spec.endpoint", "https://"),
    ({"endpoint": None, "region": None}, "spec", "spec.region or spec.endpoint"),
    ({"region": "Not A Region!"}, "spec.region", "region"),
    ({"credentialsSecretRef": {"name": "Bad_Name"}}, "spec.credentialsSecretRef.name", "Secret"),
    # Since keyless identities (issue 13) a watch names exactly one credentials source.
    (
        {"credentialsSecretRef": None},
        "spec: Invalid value",
        "exactly one credentials source: credentialsSecretRef, identity.oidc or identity.ambient",
    ),
]


@pytest.mark.parametrize(("change", "field", "words"), BAD_SPECS, ids=[c[1] for c in BAD_SPECS])
def test_crd_rejects_bad_specs_naming_the_field(
    world: World, change: dict[str, Any], field: str, words: str
) -> None:
    manifest = world.watch_manifest("bad", "0b3c4a7e-5f1d-4c8e-9a1b-2c3d4e5f6a7b")
    manifest["spec"].pop("endpoint")
    manifest["spec"]["region"] = "ap-southeast-1"
    for key, value in change.items():
        if value is None:
            manifest["spec"].pop(key, None)
        else:
            manifest["spec"][key] = value
    result = world.plane.kubectl("create", "-f", "-", stdin=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert field in result.stderr, result.stderr
    assert words in result.stderr, result.stderr


def test_secret_ref_cannot_name_another_namespace(world: World) -> None:
    manifest = world.watch_manifest("othernamespace", "0b3c4a7e-5f1d-4c8e-9a1b-2c3d4e5f6a7b")
    manifest["spec"]["credentialsSecretRef"]["namespace"] = "kube-system"
    result = world.plane.kubectl("create", "-f", "-", stdin=json.dumps(manifest), check=False)
    assert result.returncode != 0
    assert 'unknown field "spec.credentialsSecretRef.namespace"' in result.stderr, result.stderr
