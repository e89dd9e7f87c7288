"""`cce-upgrade-watch simulate` as a subprocess, the way scripts and the demo run it."""

from __future__ import annotations

import os
import queue
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cce_upgrade_watch.simulator import DEMO_CLUSTER_ID, DEMO_PROJECT_ID
from tests.support.tls import self_signed

STARTUP_TIMEOUT = 60.0
PROJECT = "fedcba9876543210fedcba9876543210"


def simulate(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cce_upgrade_watch", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CLOUD_SDK_AK": "", "CLOUD_SDK_SK": ""},
    )


def first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, waiting at most `timeout` (readline alone could block)."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        process.kill()
        raise AssertionError(f"no output within {timeout}s") from None


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    port_file = tmp_path / "port"
    process = simulate(
        "--scenario",
        "precheck-fails",
        "--time-scale",
        "1000",
        "--port-file",
        str(port_file),
        "--project-id",
        PROJECT,
        "--token",
        "cli-token",
    )
    try:
        line = first_line(process, STARTUP_TIMEOUT)
        assert line.startswith("simulator listening on http://127.0.0.1:"), line
        yield process, line.split(" on ", 1)[1].strip(), port_file
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_prints_its_url_and_serves_until_terminated(
    running: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, url, port_file = running
    assert port_file.read_text().strip() == url.rsplit(":", 1)[1]
    # The flag credentials add a project: the scenario's cluster lands in it, being
    # the first project with credentials; the demo credentials are not used.
    path = f"/autopilot/v3/projects/{PROJECT}/clusters/{DEMO_CLUSTER_ID}/operation/upgradeworkflows"
    deadline = time.monotonic() + 10
    while True:  # 27 scenario seconds at x1000: Pending within a fraction of a second
        response = httpx.get(url + path, headers={"X-Auth-Token": "cli-token"})
        assert response.status_code == 200, response.text
        if response.json()["items"][0]["status"]["phase"] == "Pending":
            break
        assert time.monotonic() < deadline, response.text
    demo_path = path.replace(PROJECT, DEMO_PROJECT_ID)
    assert httpx.get(url + demo_path, headers={"X-Auth-Token": "cli-token"}).status_code == 403

    process.send_signal(signal.SIGTERM)
    assert process.wait(20) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", "no-such-scenario"], "built-in scenarios"),
        (["--time-scale", "0"], "--time-scale"),
        (["--project-id", "xyz", "--token", "t"], "32 lowercase hex"),
        (["--token", "t"], "need --project-id"),
        (["--tls-cert", "cert.pem"], "--tls-key"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], "cannot load"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    process = simulate(*args)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert message in stderr


def test_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    """--tls-cert/--tls-key: for an operator outside loopback (a Pod on the test node)."""
    key, cert = self_signed(tmp_path, "localhost")
    process = simulate("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        line = first_line(process, STARTUP_TIMEOUT)
        assert line.startswith("simulator listening on https://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip()
        trust = ssl.create_default_context(cafile=str(cert))
        assert httpx.get(url + "/_sim/health", verify=trust).json() == {"status": "ok"}
        with pytest.raises(httpx.ConnectError):  # not trusted by default: a real TLS server
            httpx.get(url + "/_sim/health")
    finally:
        process.terminate()
        process.wait(20)
