"""The operator image, built by `hack/image` and run with podman as the Deployment runs it."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.support.operatorprocess import free_port
from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
HACK_IMAGE = REPO_ROOT / "hack" / "image"


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """podman with the project's configuration (storage in the cache, runc, ulimits)."""
    result = subprocess.run(
        [str(HACK_IMAGE), "podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
        )
    return result


def build_image(timeout: float = 1800) -> str:
    """Build (layers cached) the real Dockerfile; returns the image reference."""
    result = subprocess.run(
        [str(HACK_IMAGE), "build"], stdout=subprocess.PIPE, text=True, timeout=timeout, check=True
    )
    return result.stdout.strip().splitlines()[-1]


def deployment_security_flags(pod_spec: dict[str, Any]) -> list[str]:
    """podman flags for what the Deployment's Pod and container security contexts say."""
    (container,) = pod_spec["containers"]
    context = {**pod_spec.get("securityContext", {}), **container["securityContext"]}
    flags = [f"--user={context['runAsUser']}:{context['runAsGroup']}"]
    if context.get("readOnlyRootFilesystem"):
        # Only the Deployment's emptyDir mounts are writable: no tmpfs of podman's own.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    flags += [f"--cap-drop={cap}" for cap in context["capabilities"]["drop"]]
    if context.get("allowPrivilegeEscalation") is False:
        flags.append("--security-opt=no-new-privileges")
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        empty_dir = volumes[mount["name"]]["emptyDir"]
        size = str(empty_dir.get("sizeLimit", "64Mi")).removesuffix("i").lower()
        flags.append(f"--tmpfs={mount['mountPath']}:rw,nosuid,nodev,size={size}")
    limits = container.get("resources", {}).get("limits", {})
    if "memory" in limits:
        flags.append(f"--memory={str(limits['memory']).removesuffix('i').lower()}")
    return flags


class OperatorContainer:
    """The image's entrypoint (`cce-upgrade-watch run`) in a container on the host network."""

    def __init__(
        self, image: str, kubeconfig: Path, security_flags: list[str], args: list[str]
    ) -> None:
        self.image = image
        self.kubeconfig = kubeconfig
        self.security_flags = security_flags
        self.args = args
        self.name = f"cce-upgrade-watch-test-{uuid.uuid4().hex[:8]}"
        self.liveness_port = free_port()
        self.metrics_port = free_port()

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.liveness_port}/healthz"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 60) -> None:
        # The Deployment's own ports would collide with whatever else uses the host
        # network; everything else is its argument list as written.
        args = [
            arg.replace(":8080/", f":{self.liveness_port}/").replace(
                "--metrics-port=9090", f"--metrics-port={self.metrics_port}"
            )
            for arg in self.args
        ]
        podman(
            "run", "--detach", "--name", self.name, "--network=host",
            *self.security_flags,
            "--volume", f"{self.kubeconfig}:/etc/cce-upgrade-watch/kubeconfig:ro",
            "--env", "KUBECONFIG=/etc/cce-upgrade-watch/kubeconfig",
            "--env", f"POD_ID={self.name}",
            self.image, *args,
        )  # fmt: skip
        wait_until(self._live, timeout=timeout, message=self._not_live)

    def inspect(self) -> dict[str, Any]:
        (info,) = json.loads(podman("container", "inspect", self.name).stdout)
        return dict(info)

    def running(self) -> bool:
        return bool(self.inspect()["State"]["Running"])

    def _live(self) -> bool:
        if not self.running():
            raise AssertionError(f"the operator's container exited:\n{self.log()}")
        try:
            with urllib.request.urlopen(self.liveness_url, timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except OSError:
            return False

    def _not_live(self) -> str:
        return f"the liveness endpoint never answered; log:\n{self.log()[-3000:]}"

    def scrape_metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:  # noqa: S310
            return str(response.read().decode())

    def log(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def terminate(self, grace: float) -> tuple[int, float]:
        """SIGTERM, as the kubelet sends it; (exit code, seconds until it exited)."""
        started = time.monotonic()
        podman("kill", "--signal", "TERM", self.name)
        wait_until(
            lambda: not self.running(),
            timeout=grace + 10,
            message=lambda: f"still running {grace + 10:.0f}s after SIGTERM:\n{self.log()[-3000:]}",
        )
        elapsed = time.monotonic() - started
        return int(self.inspect()["State"]["ExitCode"]), elapsed

    def remove(self) -> None:
        podman("rm", "--force", "--time", "0", self.name, check=False)
