"""The Helm chart against the real API server: `helm template | kubectl apply --dry-run=server`.

helm itself is built from the Go module proxy by `hack/helm build` (cached like
the control plane's binaries); the tests skip, saying so, where Go is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.controlplane import REPO_ROOT, ControlPlane

CHART = REPO_ROOT / "charts" / "cce-upgrade-watch"
POD_SECURITY_WARNING = "would violate PodSecurity"


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    script = REPO_ROOT / "hack" / "helm"
    path = subprocess.run([str(script), "path"], capture_output=True, text=True, check=True)
    built = Path(path.stdout.strip())
    if not built.is_file() and shutil.which("go") is None:
        pytest.skip("helm is not built and Go is not installed to build it (hack/helm build)")
    result = subprocess.run(
        [str(script), "build"], capture_output=True, text=True, check=False, timeout=900
    )
    assert result.returncode == 0, f"hack/helm build failed:\n{result.stderr[-3000:]}"
    return Path(result.stdout.strip().splitlines()[-1])


def template(helm: Path, namespace: str, *values: str) -> str:
    result = subprocess.run(
        [str(helm), "template", "cuw", str(CHART), "--namespace", namespace, *values],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def restricted(plane: ControlPlane, namespace: str) -> None:
    """Make the namespace enforce the "restricted" Pod Security Standard."""
    plane.kubectl(
        "label", "namespace", namespace, "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted",
    )  # fmt: skip


def dry_run(plane: ControlPlane, manifests: str) -> list[str]:
    result = plane.kubectl("apply", "--dry-run=server", "-f", "-", stdin=manifests)
    assert POD_SECURITY_WARNING not in result.stderr, result.stderr
    lines = result.stdout.splitlines()
    assert lines
    assert all(line.endswith("(server dry run)") for line in lines), result.stdout
    return lines


def test_helm_version_is_the_pinned_one(helm_binary: Path) -> None:
    result = subprocess.run(
        [str(helm_binary), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("v3.")


def test_chart_defaults_pass_a_server_side_dry_run(
    control_plane: ControlPlane, helm_binary: Path, namespace: str
) -> None:
    restricted(control_plane, namespace)
    lines = dry_run(control_plane, template(helm_binary, namespace, "--include-crds"))
    kinds = sorted(line.split("/")[0].split(".")[0] for line in lines)
    # The chart's crds/ holds kopf's two peering CRDs beside ours (for highAvailability).
    assert kinds == sorted([
        "customresourcedefinition", "customresourcedefinition", "customresourcedefinition",
        "networkpolicy", "networkpolicy", "serviceaccount",
        "clusterrole", "clusterrole", "clusterrole", "clusterrolebinding", "service",
        "deployment",
        "validatingadmissionpolicy", "validatingadmissionpolicybinding",
    ])  # fmt: skip


def test_chart_in_namespaced_mode_passes_a_server_side_dry_run(
    control_plane: ControlPlane, helm_binary: Path, namespace: str
) -> None:
    restricted(control_plane, namespace)
    manifests = template(
        helm_binary, namespace, "--set", f"namespaces={{{namespace}}}",
        "--set", "image.digest=sha256:" + "0" * 64,
    )  # fmt: skip
    lines = dry_run(control_plane, manifests)
    for kind in ("role", "rolebinding"):
        created = f"{kind}.rbac.authorization.k8s.io/cuw-cce-upgrade-watch created (server dry run)"
        assert created in lines


def test_chart_secret_grants_and_cluster_wide_pass_a_server_side_dry_run(
    control_plane: ControlPlane, helm_binary: Path, namespace: str
) -> None:
    restricted(control_plane, namespace)
    manifests = template(
        helm_binary, namespace,
        "--set", f"rbac.secretGrants[0].namespace={namespace}",
        "--set", "rbac.secretGrants[0].names={cce-credentials}",
        "--set", "rbac.secretAccess=clusterWide",
        "--set", f"rbac.tokenGrants[0].namespace={namespace}",
        "--set", "rbac.tokenGrants[0].names={watcher}",
        "--set", "rbac.tokenAccess=clusterWide",
        "--set", "allowedEndpointHosts={*.gw.example.com}",
    )  # fmt: skip
    lines = dry_run(control_plane, manifests)
    for name in ("credentials", "identity"):
        for kind in ("role", "rolebinding"):
            created = f"{kind}.rbac.authorization.k8s.io/cuw-cce-upgrade-watch-{name} created"
            assert f"{created} (server dry run)" in lines
    for name in ("secret-reader", "token-creator"):
        wide = f"clusterrolebinding.rbac.authorization.k8s.io/cuw-cce-upgrade-watch-{name}"
        assert f"{wide} created (server dry run)" in lines
