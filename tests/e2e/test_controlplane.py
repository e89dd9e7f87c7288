"""The local control plane is a real Kubernetes API server with controllers behind it."""

from __future__ import annotations

import json
import uuid

from tests.support.controlplane import ControlPlane
from tests.support.waiting import wait_until

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.probe.example.com
spec:
  group: probe.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
          status: {type: object, properties: {state: {type: string}}}
"""


def test_server_reports_its_real_version(control_plane: ControlPlane) -> None:
    version = json.loads(control_plane.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"].startswith("v1.")
    assert version["serverVersion"]["gitVersion"] != "v0.0.0"
    assert version["clientVersion"]["gitVersion"] == version["serverVersion"]["gitVersion"]


def test_readyz_is_ok(control_plane: ControlPlane) -> None:
    assert control_plane.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"


def test_configmap_round_trip(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.kubectl("-n", namespace, "create", "configmap", "probe", "--from-literal=k=v")
    configmap = control_plane.kubectl_json("-n", namespace, "get", "configmap", "probe")
    assert configmap["data"] == {"k": "v"}


def test_status_subresource_is_enforced(control_plane: ControlPlane, namespace: str) -> None:
    control_plane.apply(WIDGET_CRD)
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.probe.example.com", "--timeout=60s"
    )
    control_plane.apply(
        "apiVersion: probe.example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 1}\n",
        "-n",
        namespace,
    )
    control_plane.kubectl(
        "-n", namespace, "patch", "widget", "w", "--subresource=status", "--type=merge",
        "-p", '{"status": {"state": "patched-via-status"}}',
    )  # fmt: skip
    # A patch of the main resource must not touch status when the subresource is on.
    control_plane.kubectl(
        "-n", namespace, "patch", "widget", "w", "--type=merge",
        "-p", '{"spec": {"size": 2}, "status": {"state": "patched-via-main"}}',
    )  # fmt: skip
    widget = control_plane.kubectl_json("-n", namespace, "get", "widget", "w")
    assert widget["spec"]["size"] == 2
    assert widget["status"]["state"] == "patched-via-status"


def test_rbac_is_enforced(control_plane: ControlPlane) -> None:
    as_admin = control_plane.kubectl("auth", "can-i", "list", "secrets", "-A", check=False)
    assert as_admin.stdout.strip() == "yes"
    as_nobody = control_plane.kubectl(
        "auth", "can-i", "list", "secrets", "-A", "--as=someone", check=False
    )
    assert as_nobody.stdout.strip() == "no"
    assert as_nobody.returncode == 1


def test_namespace_deletion_completes(control_plane: ControlPlane) -> None:
    # Only the namespace controller in kube-controller-manager can finish this.
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    control_plane.kubectl("-n", name, "create", "configmap", "content", "--from-literal=a=b")
    control_plane.kubectl("delete", "namespace", name, "--wait=false")
    wait_until(
        lambda: control_plane.kubectl("get", "namespace", name, check=False).returncode != 0,
        timeout=90,
        message=f"namespace {name} still exists",
    )
