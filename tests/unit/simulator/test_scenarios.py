"""Scenario files and the built-in scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cce_upgrade_watch.simulator.clock import ManualClock
from cce_upgrade_watch.simulator.scenarios import (
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    ScenarioError,
    builtin_scenario_names,
    builtin_timelines,
    load_credentials_file,
    load_scenario,
    scenario_from_data,
)
from cce_upgrade_watch.simulator.state import SimulatorState

PROJECT = "fedcba9876543210fedcba9876543210"
CLUSTER = "11111111-2222-3333-4444-555555555555"


def test_the_required_built_ins_exist() -> None:
    names = set(builtin_scenario_names())
    assert {"success", "precheck-fails", "rollback", "cancelled", "idle"} <= names
    for name in names:
        scenario = load_scenario(name)
        assert scenario.description
        assert [cluster.cluster_id for cluster in scenario.clusters] == [DEMO_CLUSTER_ID]


@pytest.mark.parametrize(
    ("timeline", "total_seconds", "final_phase"),
    [
        ("success", 206, "Success"),
        ("precheck-fails", 27, "Pending"),
        ("rollback", 196, "Pending"),
        ("cancelled", 40, "Cancel"),
    ],
)
def test_built_in_timelines_end_when_documented(
    timeline: str, total_seconds: float, final_phase: str
) -> None:
    clock = ManualClock()
    state = SimulatorState(clock=clock)
    state.load(load_scenario(timeline))
    workflow = state.clusters[DEMO_CLUSTER_ID].workflows[0]
    assert workflow.timeline_name == timeline
    clock.advance(total_seconds - 0.01)
    assert not workflow.snapshot(clock.now()).settled
    clock.advance(0.01)
    snap = workflow.snapshot(clock.now())
    assert (snap.phase, snap.settled) == (final_phase, True)


def test_idle_has_no_workflow_and_history_has_three() -> None:
    state = SimulatorState(clock=ManualClock())
    state.load(load_scenario("idle"))
    assert state.clusters[DEMO_CLUSTER_ID].workflows == []
    state.load(load_scenario("history"))
    cluster = state.clusters[DEMO_CLUSTER_ID]
    now = state.clock.now()
    assert [w.snapshot(now).phase for w in cluster.workflows] == ["Success", "Cancel", "Init"]
    assert cluster.current_version(now) == "v1.28.3-r0"


def test_a_yaml_file_with_its_own_timeline_and_credentials(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        f"""
description: mine
credentials:
  - {{projectId: {PROJECT}, accessKey: AK1, secretKey: SK1, tokens: [tok]}}
timelines:
  quick:
    steps:
      - {{task: PreCheck, run: 1}}
      - {{task: Cluster, run: 2, outcome: Failed}}
    endPhase: Cancel
clusters:
  - clusterId: {CLUSTER}
    itemsShape: single
    workflows:
      - {{timeline: quick, targetVersion: v1.30.0-r0, at: -100}}
      - timeline:
          steps: [{{task: Cluster, run: 5}}]
        at: 10
"""
    )
    scenario = load_scenario(path)
    assert scenario.credentials[0].access_key == "AK1"
    cluster = scenario.clusters[0]
    assert cluster.items_shape == "single"
    assert cluster.project_id is None  # defaults to the first credentials' project
    assert cluster.workflows[0].timeline.end_phase == "Cancel"
    assert cluster.workflows[1].timeline.steps[0].run == 5

    state = SimulatorState(clock=ManualClock())
    state.load(scenario)
    loaded = state.clusters[CLUSTER]
    assert loaded.project_id == PROJECT
    assert [w.target_version for w in loaded.visible_workflows(state.clock.now())] == ["v1.30.0-r0"]


def test_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"clusters": [{"clusterId": CLUSTER, "workflows": [{}]}]}))
    seed = load_scenario(path).clusters[0]
    assert seed.workflows[0].timeline == builtin_timelines()["success"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"clusters": [{"clusterId": "not-a-uuid"}]}, "clusters.0.clusterId"),
        ({"credentials": [{"projectId": "short", "tokens": ["t"]}]}, "credentials.0.projectId"),
        ({"credentials": [{"projectId": PROJECT, "accessKey": "AK"}]}, "go together"),
        ({"credentials": [{"projectId": PROJECT}]}, "or tokens"),
        ({"clusters": [{"clusterId": CLUSTER, "colour": "red"}]}, "colour"),
        (
            {"clusters": [{"clusterId": CLUSTER, "workflows": [{"timeline": "nope"}]}]},
            "unknown timeline 'nope'",
        ),
        ({"clusters": [{"clusterId": CLUSTER}, {"clusterId": CLUSTER}]}, "appears twice"),
        ({"timelines": {"t": {"steps": []}}}, "timelines.t.steps"),
        ({"timelines": {"t": {"steps": [{"task": "A", "run": -1}]}}}, "run"),
    ],
)
def test_bad_scenarios_say_where(data: object, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_from_data(data, "bad")


def test_unknown_name_lists_the_built_ins() -> None:
    with pytest.raises(ScenarioError, match="built-in scenarios: cancelled"):
        load_scenario("no-such-scenario")


def test_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text(f"- {{projectId: {PROJECT}, accessKey: A, secretKey: S, securityToken: T}}\n")
    (spec,) = load_credentials_file(path)
    assert (spec.project_id, spec.security_token) == (PROJECT, "T")


def test_demo_credentials_only_when_none_are_given() -> None:
    state = SimulatorState(clock=ManualClock())
    state.load(load_scenario("idle"))
    assert state.credentials.project_ids() == {DEMO_PROJECT_ID}
    state.load(scenario_from_data({"credentials": [{"projectId": PROJECT, "tokens": ["t"]}]}))
    assert state.credentials.project_ids() == {PROJECT}
