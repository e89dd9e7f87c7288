"""The kustomize base renders with the real kubectl, and the real API server accepts it.

`kubectl apply --dry-run=server` runs every admission step (schema, defaulting,
CEL, Pod Security) without storing anything.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.support.controlplane import REPO_ROOT, ControlPlane
from tests.support.rbac import MANIFESTS, NAMESPACE, render, wait_for_namespace_gone

CRD_FILE = REPO_ROOT / "crds" / "cceupgradewatches.cce.upgradewatch.io.yaml"
EXAMPLES = MANIFESTS / "examples"
POD_SECURITY_WARNING = "would violate PodSecurity"


def version() -> str:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One object per kind; of the kinds the base holds twice, the main one (named
    like the operator) is taken."""
    kinds: dict[str, dict[str, Any]] = {}
    for obj in objects:
        if obj["kind"] in kinds and obj["metadata"]["name"] != "cce-upgrade-watch":
            continue
        kinds[obj["kind"]] = obj
    return kinds


@pytest.fixture
def operator_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """The base's namespace, real (a server-side dry run of a namespaced object needs
    its namespace to exist), removed again if this test created it."""
    existed = control_plane.kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0
    if not existed:
        control_plane.kubectl("apply", "-f", str(MANIFESTS / "namespace.yaml"))
    yield NAMESPACE
    if not existed:
        control_plane.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
        wait_for_namespace_gone(control_plane, NAMESPACE)


def test_kustomize_renders_the_base(control_plane: ControlPlane) -> None:
    objects = render(control_plane)
    kinds = by_kind(objects)
    assert sorted((obj["kind"], obj["metadata"]["name"]) for obj in objects) == sorted([
        ("Namespace", "cce-upgrade-watch"),
        ("CustomResourceDefinition", "cceupgradewatches.cce.upgradewatch.io"),
        ("ServiceAccount", "cce-upgrade-watch"),
        ("ClusterRole", "cce-upgrade-watch"),
        ("ClusterRole", "cce-upgrade-watch-secret-reader"),
        ("ClusterRole", "cce-upgrade-watch-token-creator"),
        ("ClusterRoleBinding", "cce-upgrade-watch"),
        ("ValidatingAdmissionPolicy", "cce-upgrade-watch-secret-access"),
        ("ValidatingAdmissionPolicyBinding", "cce-upgrade-watch-secret-access"),
        ("Deployment", "cce-upgrade-watch"),
        ("Service", "cce-upgrade-watch-metrics"),
        ("NetworkPolicy", "cce-upgrade-watch"),
        ("NetworkPolicy", "cce-upgrade-watch-egress"),
    ])  # fmt: skip
    # The CRD is crds/'s, not a copy: equal but for the label the base adds to all.
    crd = kinds["CustomResourceDefinition"]
    assert crd["metadata"]["labels"].pop("app.kubernetes.io/part-of") == "cce-upgrade-watch"
    assert crd == yaml.safe_load(CRD_FILE.read_text())
    for obj in objects:
        if obj["kind"] not in {"Namespace", "CustomResourceDefinition", "ClusterRole",
                               "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                               "ValidatingAdmissionPolicyBinding"}:  # fmt: skip
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]
    # The only binding is the main role's: no Secret is readable by default.
    assert kinds["ClusterRoleBinding"]["roleRef"]["name"] == "cce-upgrade-watch"
    (subject,) = kinds["ClusterRoleBinding"]["subjects"]
    assert (subject["kind"], subject["namespace"]) == ("ServiceAccount", NAMESPACE)
    assert subject["name"] == kinds["ServiceAccount"]["metadata"]["name"]
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == subject["name"]
    assert pod["containers"][0]["image"] == f"cce-upgrade-watch:{version()}"
    # Loopback endpoints (the simulator) are for tests and the demo only.
    assert not any("insecure" in arg for arg in pod["containers"][0]["args"])
    # The metrics Service reaches the Deployment's Pods on the metrics port.
    service = kinds["Service"]["spec"]
    labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    assert service["ports"] == [
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}
    ]


def test_server_side_dry_run_of_the_base_passes(
    control_plane: ControlPlane, operator_namespace: str
) -> None:
    result = control_plane.kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS))
    created = result.stdout.splitlines()
    assert len(created) == 13, result.stdout
    assert all(line.endswith("(server dry run)") for line in created), result.stdout
    # The namespace enforces the "restricted" Pod Security Standard and the
    # Deployment's Pod meets it: the API server warns about a Deployment whose Pods
    # it would refuse.
    labels = control_plane.kubectl_json("get", "namespace", operator_namespace)["metadata"]
    assert labels["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert POD_SECURITY_WARNING not in result.stderr, result.stderr


def test_pod_security_warning_is_live(control_plane: ControlPlane, operator_namespace: str) -> None:
    # The control for the test above: a weakened Deployment does draw the warning.
    deployment = by_kind(render(control_plane))["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["capabilities"] = {"add": ["NET_ADMIN"]}
    result = control_plane.kubectl(
        "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(deployment)
    )
    assert POD_SECURITY_WARNING in result.stderr


def test_examples_pass_a_server_side_dry_run(
    control_plane: ControlPlane, crd: str, namespace: str
) -> None:
    """The Secret templates and the sample watch are valid as shipped (the CRD's
    CEL rules included), in any namespace they are applied to."""
    applied = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            obj["metadata"]["namespace"] = namespace
            result = control_plane.kubectl(
                "apply", "--dry-run=server", "-f", "-", stdin=json.dumps(obj)
            )
            assert "(server dry run)" in result.stdout
            applied.append(obj["kind"])
    assert sorted(applied) == [
        "CceUpgradeWatch", "CceUpgradeWatch", "Role", "Role", "RoleBinding", "RoleBinding",
        "Secret", "Secret",
    ]  # fmt: skip


def test_overlays_render(control_plane: ControlPlane) -> None:
    wide = render(control_plane, REPO_ROOT / "overlays" / "cluster-wide-secrets")
    (binding,) = [o for o in wide if o["metadata"]["name"] == "cce-upgrade-watch-secret-reader"
                  and o["kind"] == "ClusterRoleBinding"]  # fmt: skip
    assert binding["roleRef"]["name"] == "cce-upgrade-watch-secret-reader"
    hosts = render(control_plane, REPO_ROOT / "overlays" / "allowed-endpoint-hosts")
    (deployment,) = [o for o in hosts if o["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--allowed-endpoint-hosts=")]


def test_sample_watch_names_the_sample_secret() -> None:
    watch = yaml.safe_load((EXAMPLES / "cceupgradewatch.yaml").read_text())
    secret = yaml.safe_load((EXAMPLES / "credentials-secret.yaml").read_text())
    assert watch["spec"]["credentialsSecretRef"]["name"] == secret["metadata"]["name"]
    assert watch["metadata"]["namespace"] == secret["metadata"]["namespace"]
    assert set(secret["stringData"]) == {"accessKey", "secretKey"}
    token = yaml.safe_load((EXAMPLES / "credentials-secret-token.yaml").read_text())
    assert set(token["stringData"]) == {"token"}
    # The tenant's grant names that Secret, in that namespace, for the operator.
    role, binding = yaml.safe_load_all((EXAMPLES / "tenant-secret-access.yaml").read_text())
    assert role["metadata"]["namespace"] == secret["metadata"]["namespace"]
    (rule,) = role["rules"]
    assert (rule["resources"], rule["verbs"]) == (["secrets"], ["get"])
    assert rule["resourceNames"] == [secret["metadata"]["name"]]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cce-upgrade-watch", "namespace": NAMESPACE}
    ]
