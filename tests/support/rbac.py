"""The operator's own identity on a test control plane.

`install_manifests` applies the kustomize base in manifests/ for real (server-side
apply), so its ServiceAccount and ClusterRole exist; `can_i` asks the API server
what that account may do; `service_account_kubeconfig` mints a token for it
with the TokenRequest API (`kubectl create token`) and writes a kubeconfig, so
the operator can run under exactly the permissions it ships with.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.controlplane import REPO_ROOT, ControlPlane
from tests.support.waiting import wait_until

MANIFESTS = REPO_ROOT / "manifests"
NAMESPACE = "cce-upgrade-watch"
SERVICE_ACCOUNT = "cce-upgrade-watch"
SERVICE_ACCOUNT_USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
#: `can_i(..., namespace=ALL_NAMESPACES)`: asked across every namespace (-A).
ALL_NAMESPACES = "*"
FIELD_MANAGER = "cce-upgrade-watch-tests"
#: What the base installs outside its namespace (the CRD aside), removed again.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
#: The tenant's grant of its credentials Secret to the operator (by name).
TENANT_GRANT = MANIFESTS / "examples" / "tenant-secret-access.yaml"
#: The tenant's grant of one ServiceAccount's tokens to the operator (by name).
TENANT_TOKEN_GRANT = MANIFESTS / "examples" / "tenant-token-access.yaml"


def grant_secret_to_operator(
    plane: ControlPlane, namespace: str, example: Path = TENANT_GRANT
) -> None:
    """Apply a shipped tenant example (a Role naming one object + its RoleBinding)
    into `namespace`, as a tenant would."""
    for obj in yaml.safe_load_all(example.read_text()):
        obj["metadata"]["namespace"] = namespace
        plane.kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def render(plane: ControlPlane, directory: Path = MANIFESTS) -> list[dict[str, Any]]:
    """`kubectl kustomize DIR`, parsed."""
    output = plane.kubectl("kustomize", str(directory)).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]


@dataclass(frozen=True)
class Installed:
    """What `install_manifests` created, to remove it again (the CRD stays: the
    session's other tests share it, and deleting it would delete their objects)."""

    plane: ControlPlane
    objects: Sequence[dict[str, Any]]

    def uninstall(self) -> None:
        for obj in self.objects:
            kind, name = obj["kind"], obj["metadata"]["name"]
            if kind in CLUSTER_SCOPED_KINDS:
                self.plane.kubectl("delete", kind.lower(), name, "--ignore-not-found")
        self.plane.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
        wait_for_namespace_gone(self.plane, NAMESPACE)


def wait_for_namespace_gone(plane: ControlPlane, name: str) -> None:
    wait_until(
        lambda: plane.kubectl("get", "namespace", name, check=False).returncode != 0,
        timeout=120,
        message=f"namespace {name} is still there",
    )


def install_manifests(plane: ControlPlane, directory: Path = MANIFESTS) -> Installed:
    """Apply the base for real; waits for a leftover namespace of an earlier run to go."""
    wait_for_namespace_gone_if_terminating(plane, NAMESPACE)
    objects = render(plane, directory)
    plane.kubectl(
        "apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts",
        "-f", "-",
        stdin="\n---\n".join(json.dumps(obj) for obj in objects),
    )  # fmt: skip
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/cceupgradewatches.cce.upgradewatch.io",
    )  # fmt: skip
    return Installed(plane, objects)


def wait_for_namespace_gone_if_terminating(plane: ControlPlane, name: str) -> None:
    result = plane.kubectl("get", "namespace", name, "-o", "json", check=False)
    if result.returncode == 0 and json.loads(result.stdout)["status"].get("phase") == "Terminating":
        wait_for_namespace_gone(plane, name)


def can_i(
    plane: ControlPlane,
    verb: str,
    resource: str,
    *,
    namespace: str | None = None,
    subresource: str | None = None,
    user: str = SERVICE_ACCOUNT_USER,
    groups: Sequence[str] = (),
) -> bool:
    """`kubectl auth can-i VERB RESOURCE --as=USER`: the API server's own answer.

    `namespace`: one namespace, `ALL_NAMESPACES` (-A), or None for a
    cluster-scoped resource.
    """
    args = ["auth", "can-i", verb, resource, f"--as={user}"]
    args += [f"--as-group={group}" for group in groups]
    if namespace == ALL_NAMESPACES:
        args.append("--all-namespaces")
    elif namespace is not None:
        args += ["-n", namespace]
    if subresource:
        args.append(f"--subresource={subresource}")
    result = plane.kubectl(*args, check=False)
    answer = result.stdout.strip()
    if answer not in {"yes", "no"}:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}")
    return answer == "yes"


def service_account_kubeconfig(
    plane: ControlPlane,
    path: Path,
    *,
    namespace: str = NAMESPACE,
    name: str = SERVICE_ACCOUNT,
    duration: str = "1h",
) -> Path:
    """A kubeconfig whose only credential is a TokenRequest token of the account."""
    token = plane.kubectl(
        "-n", namespace, "create", "token", name, f"--duration={duration}"
    ).stdout.strip()  # fmt: skip
    assert token.count(".") == 2, "expected a JWT from the TokenRequest API"
    admin = yaml.safe_load(plane.kubeconfig.read_text())
    (cluster,) = admin["clusters"]
    user = f"{namespace}:{name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": user,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
