"""GitOps integrations judged on what the operator really writes.

Every object comes from `_watches.py`: statuses made by the real reconcile core
for each scenario. Then:
- Argo CD's health check (health.lua) runs in Lua 5.1, the dialect of Argo CD's
  gopher-lua, and argocd-cm.yaml carries the same script;
- kstatus' rules for a generic custom resource (what Flux's health checks,
  cli-utils and `kubectl wait` rely on) give Current / InProgress / Failed;
- the Flux example's CEL health expressions are evaluated with cel-python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel
from celpy.evaluation import CELEvalError
from lupa import lua51

from tests.unit.shipping._support import CRD_FILE, INTEGRATIONS, yaml_document, yaml_documents
from tests.unit.shipping._watches import SCENARIOS, condition, watch

HEALTH_LUA = INTEGRATIONS / "argocd" / "health.lua"
ARGOCD_CM = INTEGRATIONS / "argocd" / "argocd-cm.yaml"
FLUX = INTEGRATIONS / "flux" / "kustomizations.yaml"

# scenario: (Argo CD health, kstatus, Flux with the example's healthCheckExprs)
EXPECTED: dict[str, tuple[str, str, str]] = {
    "new, no status yet": ("Progressing", "InProgress", "InProgress"),
    "no upgrade ever": ("Healthy", "Current", "Current"),
    # Init: no task runs, and a workflow may sit in Init for days (design.md).
    "upgrade queued (Init)": ("Healthy", "Current", "Current"),
    "upgrade running": ("Progressing", "InProgress", "InProgress"),
    "upgrade succeeded": ("Healthy", "Current", "Current"),
    "upgrade cancelled": ("Healthy", "Current", "Current"),
    "precheck failed": ("Degraded", "Failed", "Failed"),
    "credentials missing": ("Degraded", "Failed", "Failed"),
    "credentials missing mid-upgrade": ("Degraded", "Failed", "Failed"),
    "credentials invalid": ("Degraded", "Failed", "Failed"),
    # A transient poll failure is neither progress nor failure to kstatus: the
    # last known data says no upgrade runs. Argo CD and the Flux expressions,
    # which require Ready=True, wait instead.
    "throttled while idle": ("Progressing", "Current", "InProgress"),
    "throttled mid-upgrade": ("Progressing", "InProgress", "InProgress"),
    "API unavailable while idle": ("Progressing", "Current", "InProgress"),
    # One failed poll after a good one may be a glitch: nothing changes yet.
    "one dropped answer while idle": ("Healthy", "Current", "Current"),
    "spec changed, not yet observed": ("Progressing", "InProgress", "InProgress"),
    "suspended": ("Suspended", "Current", "Current"),
    "suspended while stalled": ("Suspended", "Failed", "Failed"),
}


def test_every_scenario_has_expectations() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


# ---------------------------------------------------------------- Argo CD


def argocd_health(obj: Mapping[str, Any], script: str | None = None) -> dict[str, str]:
    """Run the health script as Argo CD does: `obj` a global, the script returns a table."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(dict(obj), recursive=True)
    result = lua.execute(script if script is not None else HEALTH_LUA.read_text())
    return {str(key): str(value) for key, value in result.items()}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_argocd_health(name: str) -> None:
    obj = watch(name)
    health = argocd_health(obj)
    assert health["status"] == EXPECTED[name][0], health
    assert health["message"]


@pytest.mark.parametrize(
    ("name", "condition_type"),
    [
        ("precheck failed", "Stalled"),
        ("credentials missing", "Stalled"),
        ("upgrade running", "Reconciling"),
        ("upgrade succeeded", "Ready"),
        ("throttled while idle", "Ready"),
    ],
)
def test_argocd_message_is_the_deciding_conditions(name: str, condition_type: str) -> None:
    obj = watch(name)
    deciding = condition(obj, condition_type)
    assert deciding is not None
    assert argocd_health(obj)["message"] == deciding["message"]


def test_argocd_waits_for_a_lagging_generation() -> None:
    health = argocd_health(watch("spec changed, not yet observed"))
    assert health["message"] == "Waiting for the operator to observe generation 2"


def test_argocd_cm_carries_the_script_verbatim() -> None:
    config_map = yaml_document(ARGOCD_CM)
    crd = yaml_document(CRD_FILE)
    key = f"resource.customizations.health.{crd['spec']['group']}_{crd['spec']['names']['kind']}"
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "argocd-cm"
    assert list(config_map["data"]) == [key]
    assert config_map["data"][key] == HEALTH_LUA.read_text()


# ---------------------------------------------------------------- kstatus


def kstatus(obj: Mapping[str, Any]) -> str:
    """kstatus' status of a custom resource it has no special rules for.

    As cli-utils' `checkGenericProperties` (then the default "Current"): a
    deletion is Terminating; an observedGeneration behind metadata.generation is
    InProgress; then the first of `Reconciling=True` (InProgress) or
    `Stalled=True` (Failed) in list order; otherwise Current.
    """
    metadata = obj["metadata"]
    if metadata.get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is not None and observed != metadata.get("generation"):
        return "InProgress"
    for item in status.get("conditions") or []:
        if item["type"] == "Reconciling" and item["status"] == "True":
            return "InProgress"
        if item["type"] == "Stalled" and item["status"] == "True":
            return "Failed"
    return "Current"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_kstatus(name: str) -> None:
    assert kstatus(watch(name)) == EXPECTED[name][1]


def test_kstatus_would_report_a_deletion() -> None:
    obj = watch("upgrade running")
    obj["metadata"]["deletionTimestamp"] = "2024-03-01T09:00:00Z"
    assert kstatus(obj) == "Terminating"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_conditions_follow_the_kstatus_conventions(name: str) -> None:
    obj = watch(name)
    status = obj.get("status")
    if status is None or "conditions" not in status:
        return  # not polled yet: nothing to be consistent about
    reconciling, stalled, ready = (
        condition(obj, kind) for kind in ("Reconciling", "Stalled", "Ready")
    )
    assert reconciling is not None
    assert stalled is not None
    assert ready is not None
    # Never both: kstatus would pick whichever comes first in the list.
    assert not (reconciling["status"] == "True" and stalled["status"] == "True")
    # Ready=True means Current (once the generation is observed) ...
    observed = status["observedGeneration"] == obj["metadata"]["generation"]
    if ready["status"] == "True" and observed:
        assert kstatus(obj) == "Current"
    # ... and Current never hides an upgrade in progress or a stuck one.
    if kstatus(obj) == "Current":
        assert reconciling["status"] == "False"
        assert stalled["status"] == "False"
    # Each condition says which generation it is about.
    for item in status["conditions"]:
        assert item["observedGeneration"] == status["observedGeneration"]


# ---------------------------------------------------------------- Flux


def flux_documents() -> list[dict[str, Any]]:
    return yaml_documents(FLUX)


def health_expressions() -> dict[str, str]:
    gate = flux_documents()[0]
    (exprs,) = gate["spec"]["healthCheckExprs"]
    return {key: exprs[key] for key in ("inProgress", "failed", "current")}


def cel_true(expression: str, obj: Mapping[str, Any]) -> bool:
    """Evaluate as Flux does (the object's top-level fields are the variables); an
    evaluation error counts as no match (Flux then keeps waiting)."""
    environment = celpy.Environment()
    program = environment.program(environment.compile(expression))
    activation = {key: json_to_cel(value) for key, value in obj.items()}
    try:
        return bool(program.evaluate(activation))
    except CELEvalError:
        return False


def flux_status(obj: Mapping[str, Any]) -> str:
    expressions = health_expressions()
    observed = (obj.get("status") or {}).get("observedGeneration")
    if observed is not None and observed != obj["metadata"]["generation"]:
        return "InProgress"
    if cel_true(expressions["inProgress"], obj):
        return "InProgress"
    if cel_true(expressions["failed"], obj):
        return "Failed"
    if cel_true(expressions["current"], obj):
        return "Current"
    return "InProgress"  # nothing matched: Flux waits until its timeout


@pytest.mark.parametrize("name", list(EXPECTED))
def test_flux_health_expressions(name: str) -> None:
    assert flux_status(watch(name)) == EXPECTED[name][2]


def test_flux_gate_and_dependent() -> None:
    gate, workloads = flux_documents()
    crd = yaml_document(CRD_FILE)["spec"]
    api_version = f"{crd['group']}/{crd['versions'][0]['name']}"
    for doc in (gate, workloads):
        assert doc["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
        assert doc["kind"] == "Kustomization"
    (check,) = gate["spec"]["healthChecks"]
    assert (check["apiVersion"], check["kind"]) == (api_version, crd["names"]["kind"])
    assert check["name"]
    assert check["namespace"]
    (exprs,) = gate["spec"]["healthCheckExprs"]
    assert (exprs["apiVersion"], exprs["kind"]) == (api_version, crd["names"]["kind"])
    # The workloads wait for the gate, in the same namespace.
    assert workloads["spec"]["dependsOn"] == [{"name": gate["metadata"]["name"]}]
    assert workloads["metadata"]["namespace"] == gate["metadata"]["namespace"]
