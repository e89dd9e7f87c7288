"""The operator under test, as a real process (`python -m cce_upgrade_watch run`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.support.waiting import wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """Start, stop, kill and restart the operator; its output goes to `log_path`."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        args: tuple[str, ...] = ("-A",),
        env: dict[str, str] | None = None,
        insecure_loopback: bool = True,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = args
        self.extra_env = env or {}
        # The simulator listens on loopback over plain HTTP: the operator calls it
        # only with this flag (the Deployment never passes it).
        self.insecure_loopback = insecure_loopback
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 60) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.extra_env}
        argv = [
            sys.executable,
            "-m",
            "cce_upgrade_watch",
            "run",
            *self.args,
            *(["--allow-insecure-loopback"] if self.insecure_loopback else []),
            "--metrics-port",
            str(self.metrics_port),
            "--metrics-address",
            "127.0.0.1",
            "--liveness",
            f"http://127.0.0.1:{self.liveness_port}/healthz",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._live, timeout=timeout, message=self._not_live)

    def _live(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            raise AssertionError(f"the operator exited with {code}:\n{self.log()}")
        try:
            url = f"http://127.0.0.1:{self.liveness_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def _not_live(self) -> str:
        return f"the operator's liveness endpoint never answered; log:\n{self.log()[-3000:]}"

    def scrape_metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:  # noqa: S310
            return str(response.read().decode())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no clean-up, no finalizers removed, no last writes."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
