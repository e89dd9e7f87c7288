"""The shipped RBAC, proven on the real API server.

The kustomize base is applied for real (server-side apply), then:
- a table of `kubectl auth can-i ... --as=system:serviceaccount:cce-upgrade-watch:
  cce-upgrade-watch`: exactly what the operator needs is allowed, and Secrets
  (in no namespace by default), other kinds and RBAC itself are not;
- a tenant's grant (manifests/examples/tenant-secret-access.yaml) opens one
  Secret of one namespace, by name; the opt-in overlay
  overlays/cluster-wide-secrets opens `get` everywhere, nothing more;
- the operator runs under that ServiceAccount's own token (TokenRequest API)
  through a whole upgrade, and the audit log shows every write it made was
  allowed and went only where the ClusterRole says.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.support.controlplane import REPO_ROOT, ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.rbac import (
    ALL_NAMESPACES,
    SERVICE_ACCOUNT_USER,
    TENANT_TOKEN_GRANT,
    Installed,
    can_i,
    grant_secret_to_operator,
    install_manifests,
    render,
    service_account_kubeconfig,
)
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import World

CUW = "cceupgradewatches.cce.upgradewatch.io"
CRDS = "customresourcedefinitions.apiextensions.k8s.io"
CLUSTERROLES = "clusterroles.rbac.authorization.k8s.io"
#: A namespace no rule names: a ClusterRoleBinding must reach it, nothing more.
SOME_NAMESPACE = "team-a"


class Row(NamedTuple):
    verb: str
    resource: str
    namespace: str | None  # a name, ALL_NAMESPACES, or None (cluster-scoped)
    subresource: str | None
    allowed: bool

    def command(self) -> str:
        scope = {None: "", ALL_NAMESPACES: " -A"}.get(self.namespace, f" -n {self.namespace}")
        sub = f" --subresource={self.subresource}" if self.subresource else ""
        return f"{self.verb} {self.resource}{sub}{scope}"


def rows(
    verbs: str, resource: str, allowed: bool, namespace: str | None = ALL_NAMESPACES,
    subresource: str | None = None,
) -> list[Row]:  # fmt: skip
    return [Row(verb, resource, namespace, subresource, allowed) for verb in verbs.split()]


TABLE: list[Row] = [
    # What the operator does: watch its objects, patch their metadata and status,
    # post Events, read the Secret a watch names, notice CRD changes.
    *rows("get list watch patch", CUW, True),
    *rows("get list watch patch", CUW, True, SOME_NAMESPACE),
    *rows("patch", CUW, True, subresource="status"),
    *rows("create", "events", True),
    *rows("create", "events", True, SOME_NAMESPACE),
    # Secrets: none by default (a tenant namespace grants its own, see below).
    *rows("get", "secrets", False, SOME_NAMESPACE),
    *rows("get", "secrets", False),
    *rows("get", "secrets", False, "kube-system"),
    *rows("list watch", CRDS, True, None),
    # People own the watched objects; the operator never creates, replaces or deletes them.
    *rows("create update delete deletecollection", CUW, False),
    *rows("update get", CUW, False, subresource="status"),
    # Secrets: no enumeration, no following, no writing.
    *rows("list watch create update patch delete deletecollection", "secrets", False),
    *rows("list watch", "secrets", False, SOME_NAMESPACE),
    # Events: only new ones, only in the core group.
    *rows("get list watch update patch delete", "events", False),
    *rows("create patch", "events.events.k8s.io", False),
    # No other kind.
    *rows("get list watch create update patch delete", "pods", False),
    *rows("create", "pods", False, subresource="exec"),
    *rows("get list create update patch delete", "deployments.apps", False),
    *rows("get list watch create update patch delete", "configmaps", False),
    *rows("get create", "serviceaccounts", False),
    *rows("create", "serviceaccounts", False, subresource="token"),
    *rows("get list create update patch delete", "roles.rbac.authorization.k8s.io", False),
    *rows("get list create update patch delete", "rolebindings.rbac.authorization.k8s.io", False),
    *rows("escalate bind", "roles.rbac.authorization.k8s.io", False),
    *rows("get list create update patch delete escalate bind", CLUSTERROLES, False, None),
    *rows("create update delete", "clusterrolebindings.rbac.authorization.k8s.io", False, None),
    *rows("get create update patch delete", CRDS, False, None),
    *rows("get list watch create delete", "namespaces", False, None),
    *rows("list", "nodes", False, None),
    *rows("impersonate", "users", False, None),
    *rows("impersonate", "serviceaccounts", False),
    # Peering is opt-in (manifests/components/peering): the base runs standalone.
    *rows("list watch patch", "clusterkopfpeerings.kopf.dev", False, None),
    *rows("list watch patch", "kopfpeerings.kopf.dev", False),
]


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> Iterator[Installed]:
    installation = install_manifests(control_plane)
    try:
        yield installation
    finally:
        installation.uninstall()


def format_table(results: list[tuple[Row, bool]]) -> str:
    width = max(len(row.command()) for row, _ in results)
    lines = [f"{'kubectl auth can-i ... --as=' + SERVICE_ACCOUNT_USER:<{width}}"]
    lines.append(f"{'REQUEST':<{width}}  EXPECTED  ACTUAL")
    for row, actual in results:
        expected = "yes" if row.allowed else "no"
        mark = "" if actual == row.allowed else "   <-- WRONG"
        lines.append(f"{row.command():<{width}}  {expected:<8}  {'yes' if actual else 'no'}{mark}")
    return "\n".join(lines)


def test_can_i_table(control_plane: ControlPlane, installed: Installed) -> None:
    results = [
        (row, can_i(control_plane, row.verb, row.resource, namespace=row.namespace,
                    subresource=row.subresource))
        for row in TABLE
    ]  # fmt: skip
    table = format_table(results)
    print(table)
    wrong = [row for row, actual in results if actual != row.allowed]
    assert not wrong, f"RBAC differs from the table:\n{table}"


def test_every_resource_in_the_table_is_served(
    control_plane: ControlPlane, installed: Installed
) -> None:
    # can-i answers "no" for a misspelt resource too: make sure each "no" above
    # is about a real resource. Not served, on purpose: kopf's peering CRDs (not
    # installed; RBAC answers without them) and `users` (impersonation only).
    served = set(control_plane.kubectl("api-resources", "-o", "name").stdout.split())
    unserved = {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev", "users"}
    named = {row.resource for row in TABLE}
    assert named - unserved <= served, (named - unserved) - served
    assert unserved <= named


def test_cluster_roles_have_no_wildcards(installed: Installed) -> None:
    roles = [obj for obj in installed.objects if obj["kind"] == "ClusterRole"]
    assert len(roles) == 3  # the operator's; Secret reader and token creator, bound nowhere
    for role in roles:
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], rule
            assert "resourceNames" not in rule or rule["resourceNames"]


def secret_access(plane: ControlPlane, namespace: str) -> dict[str, bool]:
    """What the operator may do with Secrets, asked of the API server."""
    questions = {
        "get cce-credentials here": ("get", "secrets/cce-credentials", namespace),
        "get another Secret here": ("get", "secrets/other", namespace),
        "list here": ("list", "secrets", namespace),
        "get cce-credentials in default": ("get", "secrets/cce-credentials", "default"),
        "get in kube-system": ("get", "secrets/anything", "kube-system"),
    }
    return {
        question: can_i(plane, verb, resource, namespace=ns)
        for question, (verb, resource, ns) in questions.items()
    }


def test_a_tenant_grants_its_one_secret_by_name(
    control_plane: ControlPlane, installed: Installed, namespace: str
) -> None:
    before = secret_access(control_plane, namespace)
    assert not any(before.values()), before
    grant_secret_to_operator(control_plane, namespace)
    after = secret_access(control_plane, namespace)
    print("measured: secret access after the tenant's grant:", after)
    assert after == {
        "get cce-credentials here": True,
        "get another Secret here": False,
        "list here": False,
        "get cce-credentials in default": False,
        "get in kube-system": False,
    }


def test_the_cluster_wide_overlay_grants_get_everywhere_and_nothing_more(
    control_plane: ControlPlane, installed: Installed, namespace: str
) -> None:
    overlay = render(control_plane, REPO_ROOT / "overlays" / "cluster-wide-secrets")
    extra = [obj for obj in overlay if obj not in installed.objects]
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in extra] == [
        ("ClusterRoleBinding", "cce-upgrade-watch-secret-reader")
    ]
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(extra[0]))
    try:
        access = secret_access(control_plane, namespace)
        print("measured: secret access with the cluster-wide overlay:", access)
        assert access == {
            "get cce-credentials here": True,
            "get another Secret here": True,
            "list here": False,
            "get cce-credentials in default": True,
            "get in kube-system": True,
        }
        for verb in ("list", "watch", "create", "update", "delete"):
            assert not can_i(control_plane, verb, "secrets", namespace=ALL_NAMESPACES), verb
    finally:
        control_plane.kubectl(
            "delete", "clusterrolebinding", "cce-upgrade-watch-secret-reader", "--ignore-not-found"
        )


def token_access(plane: ControlPlane, namespace: str) -> dict[str, bool]:
    """Whose tokens the operator may mint (TokenRequest), asked of the API server."""
    questions = {
        "watcher here": ("serviceaccounts/watcher", namespace),
        "another ServiceAccount here": ("serviceaccounts/default", namespace),
        "watcher in default": ("serviceaccounts/watcher", "default"),
        "in kube-system": ("serviceaccounts/anything", "kube-system"),
    }
    return {
        question: can_i(plane, "create", resource, namespace=ns, subresource="token")
        for question, (resource, ns) in questions.items()
    }


def test_a_tenant_grants_one_service_accounts_tokens_by_name(
    control_plane: ControlPlane, installed: Installed, namespace: str
) -> None:
    assert not any(token_access(control_plane, namespace).values())
    grant_secret_to_operator(control_plane, namespace, TENANT_TOKEN_GRANT)
    after = token_access(control_plane, namespace)
    print("measured: token access after the tenant's grant:", after)
    assert after == {
        "watcher here": True,
        "another ServiceAccount here": False,
        "watcher in default": False,
        "in kube-system": False,
    }


def test_the_cluster_wide_tokens_overlay_grants_token_create_and_nothing_more(
    control_plane: ControlPlane, installed: Installed, namespace: str
) -> None:
    overlay = render(control_plane, REPO_ROOT / "overlays" / "cluster-wide-tokens")
    extra = [obj for obj in overlay if obj not in installed.objects]
    assert [(obj["kind"], obj["metadata"]["name"]) for obj in extra] == [
        ("ClusterRoleBinding", "cce-upgrade-watch-token-creator")
    ]
    control_plane.kubectl("apply", "-f", "-", stdin=json.dumps(extra[0]))
    try:
        assert all(token_access(control_plane, namespace).values())
        for verb in ("get", "list", "create", "update", "delete"):
            assert not can_i(control_plane, verb, "serviceaccounts", namespace=ALL_NAMESPACES), verb
    finally:
        control_plane.kubectl(
            "delete", "clusterrolebinding", "cce-upgrade-watch-token-creator", "--ignore-not-found"
        )


# ---------------------------------------------------------------- a whole upgrade, as the account

STEP = 1000.0
TASKS = ("PreCheck", "Snapshot", "Cluster", "PostCheck")
#: Every write the operator makes: (verb, resource, subresource).
EXPECTED_WRITES = {
    ("patch", "cceupgradewatches", None),  # an older version's finalizer, removed once
    ("patch", "cceupgradewatches", "status"),  # the mirrored upgrade
    ("create", "events", None),  # WorkflowDiscovered, PhaseChanged, ...
}


def writes_by_account(plane: ControlPlane) -> list[dict[str, Any]]:
    return plane.audit_events(user=SERVICE_ACCOUNT_USER)


def write_kind(write: dict[str, Any]) -> tuple[str, str, str | None]:
    ref = write["objectRef"]
    return write["verb"], ref["resource"], ref.get("subresource")


@pytest.fixture
def operator_as_account(
    control_plane: ControlPlane,
    installed: Installed,
    operator: OperatorProcess,
    tmp_path: Path,
) -> Iterator[OperatorProcess]:
    """The operator under the ServiceAccount's token, with the Deployment's arguments.

    The session's operator (an admin-equivalent identity) is stopped meanwhile,
    so every write comes from this one, and started again afterwards.
    """
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "operator.kubeconfig")
    process = OperatorProcess(
        kubeconfig,
        tmp_path / "operator-as-account.log",
        args=("--all-namespaces", "--max-initial-delay=0s", "--log-format=json"),
        env={"POD_ID": "cce-upgrade-watch-test"},
    )
    operator.stop()
    try:
        process.start()
        try:
            yield process
        finally:
            process.stop()
    finally:
        operator.start()


def test_operator_runs_a_whole_upgrade_under_its_own_account(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    operator_as_account: OperatorProcess,
    namespace: str,
) -> None:
    world = World(control_plane, simulator, operator_as_account, namespace)
    grant_secret_to_operator(control_plane, namespace)  # as the tenant would
    writes_before = len(writes_by_account(control_plane))
    cluster = simulator.add_cluster(version="v1.28.3-r0")
    steps: list[dict[str, Any]] = [{"task": task, "queue": STEP, "run": STEP} for task in TASKS]
    steps[0]["wait"] = STEP
    simulator.start_workflow(cluster, {"steps": steps}, targetVersion="v1.29.1-r0")
    world.create_secret()
    # As an older version (a kopf daemon per object) left it: this one removes the
    # finalizer once, with the patch right the ClusterRole keeps for that.
    manifest = world.watch_manifest("prod", cluster)
    manifest["metadata"]["finalizers"] = ["cce.upgradewatch.io/finalizer"]
    control_plane.apply(json.dumps(manifest))

    world.wait_status("prod", phase="Init")
    world.wait_condition("prod", "Reconciling", "False", "UpgradeNotStarted")
    simulator.advance(3 * STEP)
    world.poll_now("prod")
    world.wait_status("prod", phase="Running")
    simulator.advance(len(TASKS) * 2 * STEP)
    world.poll_now("prod")
    world.wait_status("prod", phase="Success", progress="4/4")
    world.wait_condition("prod", "Ready", "True", "UpgradeSucceeded")
    events = world.wait_events("prod", 3)
    assert events[0][:2] == ("Normal", "WorkflowDiscovered")
    assert ("Normal", "PhaseChanged", "Running -> Success (v1.28.3-r0 -> v1.29.1-r0)") in events
    assert "finalizers" not in world.get("prod")["metadata"]

    world.kubectl("delete", "cuw", "prod", "--wait=false")
    wait_until(
        lambda: world.kubectl("get", "cuw", "prod", check=False).returncode != 0,
        timeout=60,
        message=lambda: f"the watch was never released:\n{operator_as_account.log()[-3000:]}",
    )

    # The audit log (written in batches) holds every write the account made.
    def account_writes() -> list[dict[str, Any]] | None:
        writes = writes_by_account(control_plane)[writes_before:]
        kinds = {write_kind(write) for write in writes}
        return writes if kinds >= EXPECTED_WRITES else None

    writes = wait_until(account_writes, timeout=30, message="the audit log lacks the writes")
    kinds = Counter(write_kind(write) for write in writes)
    assert set(kinds) == EXPECTED_WRITES, kinds
    # (A 404 can happen: a status write in flight may race the deletion.)
    denied = [w for w in writes if w["responseStatus"]["code"] in (401, 403)]
    assert not denied, json.dumps(denied, indent=1)[:3000]
    assert {w["objectRef"]["namespace"] for w in writes} == {namespace}

    # kopf found nothing it was not allowed to do (it logs and degrades otherwise).
    log = operator_as_account.log()
    for sign in ("Forbidden", "forbidden", "Not enough permissions", " 403"):
        assert sign not in log, f"{sign!r} in the operator's log:\n{log[-3000:]}"


def test_token_reads_a_secret_by_name_but_cannot_list_secrets(
    control_plane: ControlPlane, installed: Installed, namespace: str, tmp_path: Path
) -> None:
    control_plane.kubectl(
        "-n", namespace, "create", "secret", "generic", "cce-credentials",
        "--from-literal=accessKey=AK", "--from-literal=secretKey=SK",
    )  # fmt: skip
    grant_secret_to_operator(control_plane, namespace)
    kubeconfig = service_account_kubeconfig(control_plane, tmp_path / "sa.kubeconfig")

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [str(control_plane.bin_dir / "kubectl"), "--kubeconfig", str(kubeconfig), *args]
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)

    whoami = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert whoami.stdout == SERVICE_ACCOUNT_USER
    got = kubectl("-n", namespace, "get", "secret", "cce-credentials", "-o", "name")
    assert (got.returncode, got.stdout.strip()) == (0, "secret/cce-credentials"), got.stderr
    for args in (("-n", namespace, "get", "secrets"), ("get", "secrets", "-A")):
        listed = kubectl(*args)
        assert listed.returncode != 0
        assert 'cannot list resource "secrets"' in listed.stderr, listed.stderr
