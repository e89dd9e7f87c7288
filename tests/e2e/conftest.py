"""Fixtures for end-to-end tests: one real control plane per session, one namespace per test."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controlplane import ControlPlane, build_binaries
from tests.support.operatorprocess import OperatorProcess
from tests.support.simulator import SimulatorControl, SimulatorProcess
from tests.support.world import World

E2E_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Everything under tests/e2e needs the cluster: mark it so `-m "not e2e"` skips it.
    for item in items:
        if E2E_DIR in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    bin_dir = build_binaries()
    plane = ControlPlane.start(tmp_path_factory.mktemp("controlplane"), bin_dir)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


# ---------------------------------------------------------------- the operator's world

REPO_ROOT = E2E_DIR.parents[1]


@pytest.fixture(scope="session")
def crd(control_plane: ControlPlane) -> str:
    control_plane.kubectl("apply", "-k", str(REPO_ROOT / "crds"))
    name = "cceupgradewatches.cce.upgradewatch.io"
    control_plane.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    return name


@pytest.fixture(scope="session")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorControl]:
    process = SimulatorProcess(tmp_path_factory.mktemp("simulator"))
    process.start()
    control = SimulatorControl(process.url)
    try:
        yield control
    finally:
        control.close()
        process.stop()


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, crd: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """One operator for the session, all namespaces, under its own identity.

    Tests that stop or kill it start it again before they end.
    """
    process = OperatorProcess(
        control_plane.operator_kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        args=("-A", "--max-initial-delay", "0s", "--secret-cache-ttl", "1h"),
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def world(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    operator: OperatorProcess,
    namespace: str,
) -> World:
    return World(control_plane, simulator, operator, namespace)


@pytest.fixture(scope="module")
def discovery_open_to_anonymous(control_plane: ControlPlane) -> Iterator[None]:
    """Lets the simulator's STS read the apiserver's OIDC discovery and JWKS.

    Anonymous clients may read them only through the
    `system:service-account-issuer-discovery` ClusterRole, which Kubernetes binds
    to ServiceAccounts alone by default; a cloud's STS holds no cluster credentials.
    """
    name = f"oidc-discovery-anonymous-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl(
        "create",
        "clusterrolebinding",
        name,
        "--clusterrole=system:service-account-issuer-discovery",
        "--group=system:unauthenticated",
    )
    yield
    control_plane.kubectl("delete", "clusterrolebinding", name, check=False)
