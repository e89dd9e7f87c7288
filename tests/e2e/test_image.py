"""The operator image, built from the real Dockerfile and run as the Deployment runs it.

`hack/image build` builds the Dockerfile with podman on a Debian bookworm base made
here by mmdebstrap (no registry is reachable); the container then runs with the
Deployment's security context (numeric non-root user, read-only root filesystem,
all capabilities dropped, no privilege escalation, /tmp the only writable path,
its memory limit) on the host network, against the real control plane and the
simulator. Issue 14, step 1.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from cce_upgrade_watch.simulator import DEMO_PROJECT_ID
from tests.support.container import (
    OperatorContainer,
    build_image,
    deployment_security_flags,
    podman,
)
from tests.support.controlplane import ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.simulator import SimulatorControl
from tests.support.world import World

pytestmark = [pytest.mark.image, pytest.mark.timeout(2400)]

REPO_ROOT = Path(__file__).resolve().parents[2]


def deployment() -> dict[str, Any]:
    with (REPO_ROOT / "manifests" / "deployment.yaml").open() as file:
        document: dict[str, Any] = yaml.safe_load(file)
    return document


def pod_spec() -> dict[str, Any]:
    spec: dict[str, Any] = deployment()["spec"]["template"]["spec"]
    return spec


def locked_versions(lock: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\;]+)", lock.read_text(), flags=re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


@pytest.fixture(scope="module")
def image() -> str:
    return build_image()


def run_inside(image: str, *argv: str) -> str:
    """A one-off command in the image, under the Deployment's security flags."""
    result = podman(
        "run", "--rm", "--network=none", *deployment_security_flags(pod_spec()),
        "--entrypoint", argv[0], image, *argv[1:],
    )  # fmt: skip
    return result.stdout


def test_cli_works_inside_the_image(image: str) -> None:
    version = run_inside(image, "cce-upgrade-watch", "--version")
    assert version.split() == ["cce-upgrade-watch", "0.1.0"]
    help_text = run_inside(image, "cce-upgrade-watch", "check", "--help")
    assert "--endpoint" in help_text
    assert "--project-id" in help_text
    # The entrypoint's environment: non-root, nothing writable but /tmp.
    probe = run_inside(
        image, "python3", "-c",
        "import os, pathlib\n"
        "print(os.getuid(), os.getgid())\n"
        "for path in ('/', '/opt/cce-upgrade-watch', '/tmp'):\n"
        "    print(path, os.access(path, os.W_OK))\n"
        "import shutil; print(shutil.which('pip'), shutil.which('apt-get') is not None)\n",
    ).splitlines()  # fmt: skip
    assert probe[0] == "65532 65532"
    assert probe[1:4] == ["/ False", "/opt/cce-upgrade-watch False", "/tmp True"]
    assert probe[4].startswith("None"), "pip must not be in the image"


def test_image_packages_are_exactly_the_lock(image: str) -> None:
    """The SBOM (made from the image's own package metadata) against requirements/image.txt."""
    result = subprocess.run(
        [str(REPO_ROOT / "hack" / "image"), "sbom"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    sbom = json.loads(result.stdout)
    assert sbom["bomFormat"] == "CycloneDX"
    python = {
        c["name"].lower().replace("_", "-"): c["version"]
        for c in sbom["components"]
        if c["purl"].startswith("pkg:pypi/")
    }
    debian = {
        c["name"]: c["version"] for c in sbom["components"] if c["purl"].startswith("pkg:deb/")
    }
    expected = locked_versions(REPO_ROOT / "requirements" / "image.txt")
    expected["cce-upgrade-watch"] = "0.1.0"
    assert python == expected
    assert "python3" in debian
    assert not {"python3-pip", "gcc", "python3-venv"} & debian.keys()
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    print(
        f"\nimage {image}: {size / 1e6:.0f} MB; {len(python)} Python packages, {len(debian)} Debian"
    )
    for name, version in sorted(python.items()):
        print(f"  {name}=={version}")


@pytest.fixture
def kubeconfig_for_container(control_plane: ControlPlane, tmp_path: Path) -> Path:
    """The operator's kubeconfig, readable by the image's user (the original is 0600 root)."""
    copy = tmp_path / "operator.kubeconfig"
    shutil.copy(control_plane.operator_kubeconfig, copy)
    copy.chmod(0o644)
    return copy


@pytest.fixture
def container(image: str, crd: str, kubeconfig_for_container: Path) -> Iterator[OperatorContainer]:
    (operator,) = pod_spec()["containers"]
    # The Deployment's arguments, plus what a simulator on loopback needs (plain http).
    args = [*operator["args"], "--allow-insecure-loopback"]
    running = OperatorContainer(
        image, kubeconfig_for_container, deployment_security_flags(pod_spec()), args
    )
    try:
        yield running
    finally:
        running.remove()


def test_image_runs_the_operator_as_the_deployment_does(
    container: OperatorContainer,
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    namespace: str,
) -> None:
    container.start()
    info = container.inspect()
    assert info["Config"]["User"] == "65532:65532"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    # World reads only .log() of its operator, which the container has too.
    world = World(control_plane, simulator, cast(OperatorProcess, container), namespace)

    cluster_id = simulator.add_cluster(version="v1.28.3-r0")
    simulator.start_workflow(
        cluster_id, {"steps": [{"task": "PreCheck", "wait": 3600}]}, targetVersion="v1.29.1-r0"
    )
    world.create_secret()
    world.create_watch("prod", cluster_id)
    world.wait_condition("prod", "Synced", "True", "PollSucceeded", timeout=60)
    world.wait_status("prod", phase="Init")
    events = world.wait_events("prod", 1, timeout=60)
    assert ("Normal", "WorkflowDiscovered") in [(kind, reason) for kind, reason, _ in events]
    metrics = container.scrape_metrics()
    assert re.search(r"^cceupgradewatch_watches(\{\})? 1\.0$", metrics, flags=re.M), metrics[:2000]
    assert 'cceupgradewatch_polls_total{result="success"}' in metrics
    assert DEMO_PROJECT_ID not in container.log(), "nothing from the spec is logged verbatim"

    # The watch is deleted while the operator runs (no finalizer holds it).
    world.kubectl("delete", "cuw", "prod", "--timeout=60s")

    grace = float(pod_spec()["terminationGracePeriodSeconds"])
    code, seconds = container.terminate(grace)
    log = container.log()
    print(f"\nSIGTERM to exit: {seconds:.1f}s (grace period {grace:.0f}s), exit code {code}")
    assert code == 0, log[-3000:]
    assert seconds < grace
    for problem in ("Traceback", "Read-only file system", "Permission denied"):
        assert problem not in log, log[-3000:]
    # The kubelet probes /healthz every 10 to 20 s: no log line per probe (found on
    # the real node, where the Pod's log was mostly probe lines).
    assert "/healthz" not in log, log[-3000:]
