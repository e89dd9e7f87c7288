"""`cce-upgrade-watch demo`: everything local, one command.

Starts a real control plane (hack/localcluster), the CCE simulator and the
operator; applies the demo Secret and CceUpgradeWatch from
`manifests/examples/demo/`; starts an upgrade on the simulated cluster and shows
`kubectl get cuw -w` until it succeeds, then the object's Events. Everything it
started keeps running for you to explore until Ctrl-C, which stops it all.
Needs a source checkout (for hack/localcluster and the manifests).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
LOCALCLUSTER = REPO_ROOT / "hack" / "localcluster"
DEMO_MANIFESTS = REPO_ROOT / "manifests" / "examples" / "demo"
NAMESPACE = "demo"
WATCH = "demo"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        type=Path,
        default=REPO_ROOT / ".demo",
        help="where the control plane keeps its state and every log (default: .demo/)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=2.0,
        help="simulator speed-up: the 206 s scripted upgrade takes about 103 s at 2 (default)",
    )
    parser.add_argument("--simulator-port", type=int, default=18787)
    parser.add_argument(
        "--exit-when-done",
        action="store_true",
        help="stop everything once the upgrade succeeded instead of waiting for Ctrl-C",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="give up if the upgrade is not done by then"
    )


def _say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.directory: Path = args.dir.resolve()
        self.logs = self.directory / "logs"
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.bin_dir = Path()
        self.cluster_started = False

    # ------------------------------------------------------------ helpers

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            text=True,
            capture_output=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        self.processes.append((name, process))

    def wait_for(self, what: str, probe: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode}; see {self.logs / name}.log"
                    )
            with contextlib.suppress(Exception):
                result = probe()
                if result:
                    return result
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}")

    # ------------------------------------------------------------ steps

    def start_control_plane(self) -> None:
        _say("Building (first time only, ~8 minutes) and starting a local control plane")
        built = subprocess.run(
            [str(LOCALCLUSTER), "build"], check=True, text=True, stdout=subprocess.PIPE
        )
        self.bin_dir = Path(built.stdout.strip().splitlines()[-1])
        subprocess.run([str(LOCALCLUSTER), "start", str(self.directory)], check=True)
        self.cluster_started = True
        self.kubectl("apply", "-k", str(REPO_ROOT / "crds"))
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s",
            "crd/cceupgradewatches.cce.upgradewatch.io",
        )  # fmt: skip

    def start_simulator(self) -> str:
        _say(f"Starting the CCE Autopilot simulator (time x{self.args.time_scale:g})")
        port = self.args.simulator_port
        self.spawn(
            "simulator",
            [
                sys.executable, "-m", "cce_upgrade_watch", "simulate",
                "--port", str(port), "--scenario", "idle",
                "--time-scale", str(self.args.time_scale),
            ],
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        self.wait_for("the simulator", lambda: httpx.get(url + "/_sim/health").is_success)
        return url

    def start_operator(self) -> None:
        _say("Starting the operator (log: .demo/logs/operator.log)")
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        argv = [sys.executable, "-m", "cce_upgrade_watch", "run", "-n", NAMESPACE]
        # The simulator is a plain-HTTP loopback endpoint: called only with this flag.
        argv.append("--allow-insecure-loopback")
        self.spawn("operator", argv, env=env)

    def apply_examples(self, simulator_url: str) -> None:
        _say(f"Applying {DEMO_MANIFESTS.relative_to(REPO_ROOT)}/: a Secret and a CceUpgradeWatch")
        with contextlib.suppress(RuntimeError):
            self.kubectl("create", "namespace", NAMESPACE)
        self.kubectl("apply", "-f", str(DEMO_MANIFESTS / "secret.yaml"))
        watch = yaml.safe_load((DEMO_MANIFESTS / "watch.yaml").read_text())
        watch["spec"]["endpoint"] = simulator_url
        print(yaml.safe_dump(watch, sort_keys=False).rstrip())
        self.kubectl("apply", "-f", "-", stdin=json.dumps(watch))

    def status(self) -> dict[str, Any]:
        body = json.loads(self.kubectl("-n", NAMESPACE, "get", "cuw", WATCH, "-o", "json"))
        status: dict[str, Any] = body.get("status") or {}
        return status

    def show_upgrade(self, simulator_url: str) -> None:
        def ready() -> bool:
            return any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in self.status().get("conditions", [])
            )

        self.wait_for("the first poll", ready)
        _say("No upgrade yet. Starting one on the simulated cluster; watching:")
        print(f"    kubectl get cuw -n {NAMESPACE} -w\n", flush=True)
        watcher = subprocess.Popen(
            [str(self.bin_dir / "kubectl"), "--kubeconfig", str(self.kubeconfig),
             "-n", NAMESPACE, "get", "cuw", "-w"],
        )  # fmt: skip
        try:
            httpx.post(
                f"{simulator_url}/_sim/clusters/b4b9e60f-8aa2-11ee-af09-0255ac10004f/workflows",
                json={"timeline": "success", "targetVersion": "v1.29.1-r0"},
            ).raise_for_status()
            started = time.monotonic()
            # Ask for a poll now rather than at the next idle interval, so the
            # short Init phase shows up too.
            self.kubectl(
                "-n", NAMESPACE, "annotate", "--overwrite", "cuw", WATCH,
                f"cce.upgradewatch.io/poll-now={time.time_ns()}",
            )  # fmt: skip
            self.wait_for(
                "the upgrade to succeed",
                lambda: self.status().get("phase") == "Success",
                timeout=self.args.timeout,
            )
            time.sleep(1)  # let the watch print its last line before we talk over it
        finally:
            watcher.terminate()
            watcher.wait()
        _say(
            f"Upgrade succeeded after {time.monotonic() - started:.0f} s. kubectl get cuw -o wide:"
        )
        print(self.kubectl("-n", NAMESPACE, "get", "cuw", WATCH, "-o", "wide"))
        _say("The object's Events (kubectl get events):")
        print(
            self.kubectl(
                "-n", NAMESPACE, "get", "events", "--sort-by=.eventTime",
                "--field-selector", f"involvedObject.name={WATCH}",
                "-o", "custom-columns=TYPE:.type,REASON:.reason,MESSAGE:.message",
            )
        )  # fmt: skip

    def stop(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
            print(f"stopped {name}")
        if self.cluster_started:
            subprocess.run([str(LOCALCLUSTER), "stop", str(self.directory)], check=False)


@contextlib.contextmanager
def _running(demo: Demo) -> Iterator[Demo]:
    try:
        yield demo
    finally:
        _say("Stopping everything the demo started")
        demo.stop()


def execute(args: argparse.Namespace) -> int:
    if not LOCALCLUSTER.exists():
        print("cce-upgrade-watch demo needs a source checkout (hack/localcluster)", file=sys.stderr)
        return 2
    demo = Demo(args)
    demo.logs.mkdir(parents=True, exist_ok=True)
    try:
        with _running(demo):
            demo.start_control_plane()
            url = demo.start_simulator()
            demo.start_operator()
            demo.apply_examples(url)
            demo.show_upgrade(url)
            if not args.exit_when_done:
                _say("Everything is still running. In another shell:")
                print(f'    eval "$({LOCALCLUSTER} env {demo.directory})"')
                print(f"    kubectl get cuw -A; kubectl describe cuw -n {NAMESPACE} {WATCH}")
                print("Press Ctrl-C to stop.", flush=True)
                while True:
                    time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"cce-upgrade-watch demo: {exc}", file=sys.stderr)
        return 1
    return 0
