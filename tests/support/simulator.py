"""The CCE simulator as a real process (`cce-upgrade-watch simulate`), and its control API."""

from __future__ import annotations

import ssl
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.waiting import wait_until


class SimulatorProcess:
    def __init__(
        self,
        workdir: Path,
        *,
        scenario: str = "idle",
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.port_file = workdir / "simulator.port"
        self.log_path = workdir / "simulator.log"
        self.scenario = scenario
        self.time_scale = time_scale
        self.host = host
        self.tls = tls  # (certificate, key): serve HTTPS
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        self.port_file.unlink(missing_ok=True)
        argv = [
            sys.executable, "-m", "cce_upgrade_watch", "simulate",
            "--port", "0", "--port-file", str(self.port_file),
            "--scenario", self.scenario, "--time-scale", str(self.time_scale),
            "--host", self.host,
        ]  # fmt: skip
        if self.tls is not None:
            argv += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._started, timeout=30, message=lambda: self.log_path.read_text())
        scheme = "https" if self.tls is not None else "http"
        self.url = f"{scheme}://{self.host}:{self.port_file.read_text().strip()}"

    def _started(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the simulator exited:\n{self.log_path.read_text()}")
        return self.port_file.exists()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


class SimulatorControl:
    """A thin client of the simulator's `/_sim/` control API."""

    def __init__(self, url: str, *, ca_file: Path | None = None) -> None:
        self.url = url
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:  # a simulator serving HTTPS with a test CA
            verify = ssl.create_default_context(cafile=str(ca_file))
        self._http = httpx.Client(base_url=url + "/_sim", timeout=10, verify=verify)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} /_sim{path}: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def add_cluster(self, **spec: Any) -> str:
        cluster_id = spec.pop("clusterId", None) or str(uuid.uuid4())
        self._call("POST", "/clusters", json={"clusters": [{"clusterId": cluster_id, **spec}]})
        return cluster_id

    def start_workflow(self, cluster_id: str, timeline: Any, **fields: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", f"/clusters/{cluster_id}/workflows", json={"timeline": timeline, **fields}
        )
        return result

    def force(self, cluster_id: str, workflow: str = "latest", **body: Any) -> Any:
        return self._call("POST", f"/clusters/{cluster_id}/workflows/{workflow}/force", json=body)

    def advance(self, seconds: float) -> None:
        self._call("POST", "/time/advance", json={"seconds": seconds})

    def add_fault(self, kind: str, **options: Any) -> Any:
        return self._call("POST", "/faults", json={"kind": kind, **options})

    def clear_faults(self, cluster_id: str | None = None) -> None:
        params = {"clusterId": cluster_id} if cluster_id else None
        self._call("DELETE", "/faults", params=params)

    def requests(self, cluster_id: str) -> Any:
        return self._call("GET", f"/clusters/{cluster_id}/requests")

    def state(self) -> dict[str, Any]:
        """`GET /_sim/state`: now, startedAt, timeScale, counts, faults, stats."""
        described: dict[str, Any] = self._call("GET", "/state")
        return described

    def show(self, cluster_id: str) -> Any:
        return self._call("GET", f"/clusters/{cluster_id}")

    def configure_identity(self, config: dict[str, Any]) -> Any:
        """`PUT /_sim/identity`: STS, IAM, metadata and pod identity (simulator/identity.py)."""
        return self._call("PUT", "/identity", json=config)

    def identity(self) -> dict[str, Any]:
        """The identity configuration and counters: exchanges, refusals, sessions."""
        described: dict[str, Any] = self._call("GET", "/identity")
        return described

    def identity_issued(self) -> dict[str, Any]:
        """Every temporary key, security token and session token issued so far."""
        issued: dict[str, Any] = self._call("GET", "/identity/issued")
        return issued

    def close(self) -> None:
        self._http.close()
