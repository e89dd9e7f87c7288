"""GitOps integrations judged by the GitOps tools' own libraries, on what the operator writes.

Every object comes from `_watches.py`: statuses made by the real reconcile core
for each scenario. The GitOps oracle (hack/gitops-oracle, see
tests/support/gitops.py) then runs, on each object:
- kstatus' `status.Compute` from sigs.k8s.io/cli-utils (what cli-utils, kpt and
  Flux's plain `healthChecks` conclude);
- the Flux example's `healthCheckExprs`, read from
  manifests/integrations/flux/kustomizations.yaml and evaluated by
  github.com/fluxcd/pkg/runtime/cel as kustomize-controller does;
- manifests/integrations/argocd/health.lua in gopher-lua, with `obj` built and
  the result read as Argo CD does.
The e2e counterpart (tests/e2e/test_gitops.py) judges live objects after real
upgrades and checks `kubectl wait` itself.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.gitops import ARGOCD_HEALTH, FLUX_EXAMPLE, GitOpsOracle, Judgement
from tests.unit.shipping._support import CRD_FILE, REPO_ROOT, yaml_document, yaml_documents
from tests.unit.shipping._watches import SCENARIOS, condition, watch

ARGOCD_CM = ARGOCD_HEALTH.parent / "argocd-cm.yaml"

# scenario: (Argo CD health, kstatus, Flux with the example's healthCheckExprs)
EXPECTED: dict[str, tuple[str, str, str]] = {
    # The CRD stores a new object with `observedGeneration: 0`, so every reader
    # waits for the first poll instead of passing the gate.
    "new, no status yet": ("Progressing", "InProgress", "InProgress"),
    "no upgrade ever": ("Healthy", "Current", "Current"),
    # Init: the workflow exists but no task runs (and may not for days).
    "upgrade queued (Init)": ("Healthy", "Current", "Current"),
    "upgrade running": ("Progressing", "InProgress", "InProgress"),
    "upgrade succeeded": ("Healthy", "Current", "Current"),
    "upgrade cancelled": ("Healthy", "Current", "Current"),
    "precheck failed": ("Degraded", "Failed", "Failed"),
    "credentials missing": ("Degraded", "Failed", "Failed"),
    "credentials missing mid-upgrade": ("Degraded", "Failed", "Failed"),
    "credentials invalid": ("Degraded", "Failed", "Failed"),
    "no permission": ("Degraded", "Failed", "Failed"),
    "no such cluster": ("Degraded", "Failed", "Failed"),
    "endpoint not allowed": ("Degraded", "Failed", "Failed"),
    # A transient poll failure: Ready=False, neither Reconciling nor Stalled.
    # kstatus reads Ready=False as InProgress, so every reader waits.
    "throttled while idle": ("Progressing", "InProgress", "InProgress"),
    "throttled mid-upgrade": ("Progressing", "InProgress", "InProgress"),
    "API unavailable while idle": ("Progressing", "InProgress", "InProgress"),
    # One failed poll after a good one may be a glitch: nothing changes yet.
    "one dropped answer while idle": ("Healthy", "Current", "Current"),
    "spec changed, not yet observed": ("Progressing", "InProgress", "InProgress"),
    "suspended": ("Suspended", "Current", "Current"),
    "suspended while stalled": ("Suspended", "Failed", "Failed"),
    # The lifecycle conditions change nothing of the above: news, not trouble or work.
    "no upgrade; pre-check failed, upgrade soon, patch waiting": ("Healthy", "Current", "Current"),
    "upgrade queued (Init); pre-check failed, upgrade soon": ("Healthy", "Current", "Current"),
    "upgrade running; upgrade soon, patch waiting": ("Progressing", "InProgress", "InProgress"),
    "precheck failed; its findings and a plan": ("Degraded", "Failed", "Failed"),
    "upgrade succeeded; all calm": ("Healthy", "Current", "Current"),
    "no upgrade; lifecycle calls refused": ("Healthy", "Current", "Current"),
    "throttled while idle; pre-check failed": ("Progressing", "InProgress", "InProgress"),
}


@pytest.fixture(scope="module")
def judged(gitops_oracle: GitOpsOracle) -> dict[str, Judgement]:
    """Every scenario judged in one run of the oracle."""
    names = list(SCENARIOS)
    return dict(zip(names, gitops_oracle.judge_all([watch(n) for n in names]), strict=True))


def test_every_scenario_has_expectations() -> None:
    assert set(EXPECTED) == set(SCENARIOS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_argocd_kstatus_and_flux(name: str, judged: dict[str, Judgement]) -> None:
    judgement = judged[name]
    assert judgement.summary() == EXPECTED[name], judgement
    # What the operator writes never makes an expression or the script fail:
    # Flux would wait for its timeout, Argo CD would show Unknown.
    assert not judgement.flux.error, judgement.flux
    assert not judgement.argocd.error, judgement.argocd
    assert judgement.argocd.message


# ---------------------------------------------------------------- the lifecycle conditions

#: Conditions beside the four kstatus ones, as the lifecycle calls set them: the
#: ones a reader could most mistake for trouble (False) or for work (True), and
#: the calm ones.
NEWS = (
    (
        "PreCheckPassed",
        "False",
        "FatalFindings",
        "2 fatal findings: DeprecatedAPICheck, NodeStatusCheck",
    ),
    (
        "UpgradeScheduled",
        "True",
        "StartsSoon",
        "v1.28.3-r0 -> v1.28.3-r1 not before 2024-03-02T02:00:00Z",
    ),
    ("UpToDate", "False", "PatchAvailable", "patch r1 is suggested; the cluster runs r0"),
)
CALM = (
    ("PreCheckPassed", "True", "Passed", "the pre-check found nothing blocking"),
    ("UpgradeScheduled", "False", "NoPlan", "no automatic upgrade is scheduled"),
    ("UpToDate", "True", "UpToDate", "the cluster runs the suggested patch"),
)
#: Not known (the part is turned off, not offered, or not asked yet).
UNKNOWN = tuple(
    (kind, "Unknown", reason, "not known yet")
    for kind, reason in (
        ("PreCheckPassed", "NotRun"),
        ("UpgradeScheduled", "Unavailable"),
        ("UpToDate", "Unavailable"),
    )
)
SETS = {"news": NEWS, "calm": CALM, "unknown": UNKNOWN}
PLACEMENTS = tuple(f"{name} {where}" for name in SETS for where in ("first", "last"))


def with_lifecycle_conditions(obj: dict[str, Any], placement: str) -> dict[str, Any]:
    """`obj` with one set of lifecycle conditions added in front of the four
    (where a reader that takes the first condition would see them) or after them."""
    obj = json.loads(json.dumps(obj))
    status = obj.get("status")
    if status is None or "conditions" not in status:
        return obj
    added = [
        {
            "type": kind,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": "2024-03-01T08:00:00Z",
            "observedGeneration": status.get("observedGeneration", 1),
        }
        for kind, value, reason, message in SETS[placement.split()[0]]
    ]
    replaced = {kind for kind, *_ in SETS[placement.split()[0]]}
    four = [c for c in status["conditions"] if c["type"] not in replaced]
    status["conditions"] = added + four if placement.endswith("first") else four + added
    return obj


@pytest.fixture(scope="module")
def judged_with_lifecycle(gitops_oracle: GitOpsOracle) -> dict[tuple[str, str], Judgement]:
    cases = [(name, placement) for name in SCENARIOS for placement in PLACEMENTS]
    objects = [with_lifecycle_conditions(watch(name), placement) for name, placement in cases]
    return dict(zip(cases, gitops_oracle.judge_all(objects), strict=True))


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("name", list(EXPECTED))
def test_lifecycle_conditions_change_no_verdict(
    name: str,
    placement: str,
    judged: dict[str, Judgement],
    judged_with_lifecycle: dict[tuple[str, str], Judgement],
) -> None:
    # A failed pre-check, a scheduled upgrade, a waiting patch: kstatus, Flux
    # (with and without the example's expressions) and Argo CD conclude exactly
    # what they conclude without those conditions, wherever they stand.
    before, after = judged[name], judged_with_lifecycle[(name, placement)]
    assert after.summary() == EXPECTED[name], after
    assert after.kstatus == before.kstatus
    assert after.flux == before.flux
    assert after.flux_kstatus == before.flux_kstatus
    assert not after.argocd.error, after.argocd
    obj = with_lifecycle_conditions(watch(name), placement)
    assert kubectl_wait_for_ready_returns(obj) == (after.kstatus.status == "Current")
    # Argo CD's message changes only where it helps: a healthy watch with an
    # upgrade scheduled says when.
    if after.argocd.status == "Healthy":
        ready, scheduled = condition(obj, "Ready"), condition(obj, "UpgradeScheduled")
        assert ready is not None
        expected = ready["message"]
        if scheduled is not None and scheduled["status"] == "True":
            expected += f"; {scheduled['message']}"
        assert after.argocd.message == expected
    else:
        assert after.argocd.message == before.argocd.message


def test_lifecycle_conditions_reach_every_scenario_with_conditions(
    judged_with_lifecycle: dict[tuple[str, str], Judgement],
) -> None:
    # The cases above are not vacuous: every polled scenario carries them.
    with_news = [
        name
        for name in SCENARIOS
        if condition(with_lifecycle_conditions(watch(name), "news first"), "UpToDate")
    ]
    assert len(with_news) == len(SCENARIOS) - 1  # all but the never-polled one
    healthy_and_scheduled = [
        name
        for (name, placement), judgement in judged_with_lifecycle.items()
        if placement.startswith("news") and judgement.argocd.status == "Healthy"
    ]
    assert healthy_and_scheduled


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "no upgrade; pre-check failed, upgrade soon, patch waiting",
            [("False", "FatalFindings"), ("True", "StartsSoon"), ("False", "PatchAvailable")],
        ),
        (
            "upgrade succeeded; all calm",
            [("True", "Passed"), ("False", "NoPlan"), ("True", "OnSuggestedPatch")],
        ),
        ("no upgrade; lifecycle calls refused", [("Unknown", "Unavailable")] * 3),
    ],
)
def test_the_lifecycle_scenarios_carry_what_the_core_sets(
    name: str, expected: list[tuple[str, str]]
) -> None:
    # The scenarios above are judged with the conditions the real core derives
    # from the lifecycle answers, after the four kstatus ones.
    conditions = watch(name)["status"]["conditions"]
    assert [c["type"] for c in conditions][4:] == ["PreCheckPassed", "UpgradeScheduled", "UpToDate"]
    assert [(c["status"], c["reason"]) for c in conditions[4:]] == expected


def test_argocd_names_the_scheduled_upgrade_of_a_healthy_watch(
    judged: dict[str, Judgement],
) -> None:
    name = "no upgrade; pre-check failed, upgrade soon, patch waiting"
    ready, scheduled = condition(watch(name), "Ready"), condition(watch(name), "UpgradeScheduled")
    assert ready is not None
    assert scheduled is not None
    assert judged[name].argocd.message == f"{ready['message']}; {scheduled['message']}"
    assert "v1.28.3-r1" in judged[name].argocd.message
    # Not healthy: the deciding condition alone, as before.
    running = "upgrade running; upgrade soon, patch waiting"
    reconciling = condition(watch(running), "Reconciling")
    assert reconciling is not None
    assert judged[running].argocd.message == reconciling["message"]


# ---------------------------------------------------------------- Argo CD


@pytest.mark.parametrize(
    ("name", "condition_type"),
    [
        ("precheck failed", "Stalled"),
        ("credentials missing", "Stalled"),
        ("upgrade running", "Reconciling"),
        ("upgrade succeeded", "Ready"),
        ("upgrade queued (Init)", "Ready"),
        ("throttled while idle", "Ready"),
    ],
)
def test_argocd_message_is_the_deciding_conditions(
    name: str, condition_type: str, judged: dict[str, Judgement]
) -> None:
    deciding = condition(watch(name), condition_type)
    assert deciding is not None
    assert judged[name].argocd.message == deciding["message"]


def test_argocd_waits_for_a_lagging_generation(judged: dict[str, Judgement]) -> None:
    assert judged["spec changed, not yet observed"].argocd.message == (
        "Waiting for the operator to observe generation 2"
    )


def test_argocd_cm_carries_the_script_verbatim() -> None:
    config_map = yaml_document(ARGOCD_CM)
    crd = yaml_document(CRD_FILE)
    key = f"resource.customizations.health.{crd['spec']['group']}_{crd['spec']['names']['kind']}"
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == "argocd-cm"
    assert list(config_map["data"]) == [key]
    assert config_map["data"][key] == ARGOCD_HEALTH.read_text()


def test_argocd_reports_a_broken_script_as_unknown(
    gitops_oracle: GitOpsOracle, tmp_path: Path
) -> None:
    # The oracle reads the result as Argo CD does: a status outside Argo CD's
    # set is Unknown, a runtime error is Unknown with the error. Proves the
    # verdicts above come from running the script, not from a default.
    invalid = tmp_path / "invalid.lua"
    invalid.write_text('return {status = "Fine", message = "m"}')
    verdict = gitops_oracle.judge(watch("upgrade succeeded"), argocd_health=invalid).argocd
    assert (verdict.status, verdict.message) == ("Unknown", "Lua returned an invalid health status")
    failing = tmp_path / "failing.lua"
    failing.write_text("return obj.status.nothing.here")
    verdict = gitops_oracle.judge(watch("upgrade succeeded"), argocd_health=failing).argocd
    assert verdict.status == "Unknown"
    assert "nil" in verdict.error


# ---------------------------------------------------------------- kstatus


def test_kstatus_reports_a_deletion(gitops_oracle: GitOpsOracle) -> None:
    obj = watch("upgrade succeeded")
    obj["metadata"]["deletionTimestamp"] = "2024-03-01T09:00:00Z"
    judgement = gitops_oracle.judge(obj)
    assert judgement.kstatus.status == "Terminating"
    assert judgement.argocd.status == "Progressing"  # Argo CD's own "Pending deletion"


def kubectl_wait_for_ready_returns(obj: dict[str, Any]) -> bool:
    """`kubectl wait --for=condition=Ready` on this object: Ready=True, unless the
    condition's (else the status') observedGeneration is behind metadata.generation
    (k8s.io/kubectl pkg/cmd/wait/condition.go, checkCondition). The e2e test runs
    kubectl itself; this covers every scenario here."""
    ready = condition(obj, "Ready")
    if ready is None:
        return False
    observed = ready.get("observedGeneration", obj.get("status", {}).get("observedGeneration"))
    if observed is not None and observed < obj["metadata"]["generation"]:
        return False
    return bool(ready["status"] == "True")


@pytest.mark.parametrize("name", list(EXPECTED))
def test_conditions_follow_the_kstatus_conventions(name: str, judged: dict[str, Judgement]) -> None:
    obj = watch(name)
    current = judged[name].kstatus.status == "Current"
    # `kubectl wait --for=condition=Ready` returns exactly when kstatus says Current.
    assert kubectl_wait_for_ready_returns(obj) == current
    status = obj.get("status")
    if status is None or "conditions" not in status:
        return  # not polled yet: nothing to be consistent about
    reconciling, stalled, ready = (
        condition(obj, kind) for kind in ("Reconciling", "Stalled", "Ready")
    )
    assert reconciling is not None
    assert stalled is not None
    assert ready is not None
    # Never both: kstatus reads whichever comes first in the list.
    assert not (reconciling["status"] == "True" and stalled["status"] == "True")
    # Current never hides an upgrade in progress or a stuck one.
    if current:
        assert reconciling["status"] == "False"
        assert stalled["status"] == "False"
    # Each condition says which generation it is about.
    for item in status["conditions"]:
        assert item["observedGeneration"] == status["observedGeneration"]


# ---------------------------------------------------------------- Flux


def test_flux_expressions_are_stricter_than_kstatus_without_a_status(
    gitops_oracle: GitOpsOracle,
) -> None:
    # An object stored without any status (a CRD older than the one shipped,
    # which defaults `observedGeneration: 0`): kstatus finds nothing to object
    # to, the example's expressions cannot evaluate, and Flux keeps waiting.
    obj = watch("no upgrade ever")
    del obj["status"]
    judgement = gitops_oracle.judge(obj)
    assert judgement.kstatus.status == "Current"
    assert judgement.flux.status == "Unknown"
    assert "status" in judgement.flux.error
    assert judgement.argocd.status == "Progressing"


@pytest.mark.parametrize("name", list(EXPECTED))
def test_flux_without_the_expressions_concludes_as_kstatus(
    name: str, judged: dict[str, Judgement]
) -> None:
    # A Kustomization that only lists the watch in healthChecks: Flux's kstatus
    # fork (github.com/fluxcd/cli-utils) agrees with cli-utils' kstatus.
    assert judged[name].flux_kstatus == judged[name].kstatus


def test_flux_names_a_failed_watch_without_its_message(judged: dict[str, Judgement]) -> None:
    # Flux's CEL reader gives a status, no message: a failed gate names the
    # watch as Failed, and the reason is read on the watch (as INSTALL.md says).
    flux = judged["precheck failed"].flux
    assert (flux.status, flux.message) == ("Failed", "")


def test_flux_reads_the_example_file(gitops_oracle: GitOpsOracle, tmp_path: Path) -> None:
    # The oracle evaluates the file's expressions, not a copy: change one and
    # the verdict follows.
    gate, workloads = yaml_documents(FLUX_EXAMPLE)
    gate["spec"]["healthCheckExprs"][0]["current"] = "false"
    changed = tmp_path / "kustomizations.yaml"
    changed.write_text(json.dumps(gate) + "\n---\n" + json.dumps(workloads))
    obj = watch("upgrade succeeded")
    assert gitops_oracle.judge(obj).flux.status == "Current"
    assert gitops_oracle.judge(obj, flux=changed).flux.status == "InProgress"


def test_flux_gate_and_dependent() -> None:
    gate, workloads = yaml_documents(FLUX_EXAMPLE)
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


# ---------------------------------------------------------------- the oracle itself


def test_install_doc_names_the_versions_the_oracle_builds() -> None:
    go_mod = (REPO_ROOT / "hack" / "tools" / "gitops-oracle" / "go.mod").read_text()
    required = dict(re.findall(r"^\t(\S+) (v\S+)$", go_mod, flags=re.MULTILINE))
    install = (REPO_ROOT / "docs" / "INSTALL.md").read_text()
    for module, mentioned in (
        ("sigs.k8s.io/cli-utils", "`sigs.k8s.io/cli-utils`"),
        ("github.com/fluxcd/pkg/runtime", "`github.com/fluxcd/pkg/runtime/cel`"),
        ("github.com/yuin/gopher-lua", "gopher-lua"),
    ):
        assert f"{mentioned} {required[module]}" in " ".join(install.split()), module
