"""A real local control plane (etcd, kube-apiserver, kube-controller-manager), for tests.

Built and started by `hack/localcluster`; this module only drives that script and
the built `kubectl`.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCALCLUSTER = REPO_ROOT / "hack" / "localcluster"
#: The user name of `operator.kubeconfig` (see hack/localcluster).
OPERATOR_USER = "cce-upgrade-watch-operator"


class KubectlError(AssertionError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"kubectl {' '.join(args)} exited {result.returncode}:\n{result.stderr.strip()}"
        )
        self.result = result


def build_binaries() -> Path:
    """Build (or reuse from the cache) the control-plane binaries; returns the bin dir."""
    result = subprocess.run(
        [str(LOCALCLUSTER), "build"], check=True, text=True, stdout=subprocess.PIPE
    )
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class ControlPlane:
    directory: Path
    bin_dir: Path

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        """An admin-equivalent identity of its own, so the audit log tells the
        operator's requests apart from the test's."""
        return self.directory / "operator.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.directory / "logs" / "audit.log"

    def audit_events(self, user: str = OPERATOR_USER) -> list[dict[str, Any]]:
        """Write requests (anything but get/list/watch) made by `user`, oldest first."""
        if not self.audit_log.exists():
            return []
        events = []
        with self.audit_log.open() as log:
            for line in log:
                event = json.loads(line)
                if event.get("user", {}).get("username") == user:
                    events.append(event)
        return events

    @classmethod
    def start(cls, directory: Path, bin_dir: Path) -> ControlPlane:
        subprocess.run([str(LOCALCLUSTER), "start", str(directory)], check=True)
        return cls(directory, bin_dir)

    def stop(self) -> None:
        subprocess.run([str(LOCALCLUSTER), "stop", str(self.directory)], check=True)

    def env(self) -> dict[str, str]:
        """The environment a child process needs to reach this control plane."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]
        result = subprocess.run(
            argv, input=stdin, text=True, capture_output=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def apply(self, manifest: str, *args: str) -> None:
        self.kubectl("apply", "-f", "-", *args, stdin=manifest)
