"""The install on a real node, as a user does it (issue 14, step 2).

`hack/localcluster start DIR --with-node` runs a control plane and a node
(containerd, kubelet, kube-scheduler, kube-proxy, a CNI bridge). The image built
from the Dockerfile (tests/e2e/test_image.py) is loaded into containerd, then only
what README and docs/INSTALL.md say is done: `kubectl apply -k`, a namespace, a
Secret and a watch; the Pod must become Ready under Pod Security `restricted`, the
watch reconcile against the simulator (HTTPS on the node's address, by a name the
node's DNS serves, signed by a private CA the operator is told to trust), Events
appear, the metrics Service answers through kube-proxy, and the uninstall leaves
nothing behind. Then the Helm chart. Marked `node`; needs root.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cce_upgrade_watch.simulator import DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY
from tests.support.container import HACK_IMAGE, build_image
from tests.support.controlplane import build_binaries
from tests.support.node import NODE_IP, NodeCluster, build_node_binaries, machine_state
from tests.support.simulator import SimulatorControl, SimulatorProcess
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.node, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
SIM_NAME = "cce-sim.cuw.test"
OPERATOR_NS = "cce-upgrade-watch"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    if os.geteuid() != 0:
        pytest.skip("a real node needs root (containerd, CNI, iptables)")
    bin_dir = build_binaries()
    build_node_binaries()
    before = machine_state()
    directory = tmp_path_factory.mktemp("node")
    cluster = NodeCluster(directory, bin_dir)
    try:
        started = time.monotonic()
        cluster.launch()
        print(f"\ncontrol plane and node Ready in {time.monotonic() - started:.0f}s")
        yield cluster
    finally:
        cluster.stop()
        after = machine_state()
        left = {key: sorted(set(after[key]) - set(before[key])) for key in before}
        left["mounts"] = [m for m in left["mounts"] if str(directory) in m]
        assert not any(left.values()), f"the node left behind: {left}"


@pytest.fixture(scope="module")
def loaded_image(node: NodeCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image from the Dockerfile, loaded into the node's containerd (no registry)."""
    image = build_image()
    archive = tmp_path_factory.mktemp("image") / "operator.oci.tar"
    subprocess.run([str(HACK_IMAGE), "save", str(archive)], check=True, timeout=600)
    repository = image.rsplit(":", 1)[0]
    node.ctr("images", "import", "--base-name", repository, str(archive))
    assert image in node.ctr("images", "ls", "-q").stdout.split()
    return image


@dataclass(frozen=True)
class TlsSimulator:
    control: SimulatorControl
    endpoint: str  # by name, as a watch names it
    ca: Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def simulator(
    node: NodeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsSimulator]:
    """The simulator on the node's address, HTTPS with a private CA, named by the node's DNS."""
    work = tmp_path_factory.mktemp("tls-simulator")
    ca_key, ca, key, csr, cert, ext = (
        work / name for name in ("ca.key", "ca.crt", "tls.key", "tls.csr", "tls.crt", "san.ext")
    )
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=cuw-test-ca", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={SIM_NAME}",
            "-keyout", str(key), "-out", str(csr))  # fmt: skip
    ext.write_text(f"subjectAltName=DNS:{SIM_NAME},IP:{NODE_IP}\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    process = SimulatorProcess(work, host=NODE_IP, tls=(cert, key))
    process.start()
    node.add_dns_name(SIM_NAME, NODE_IP)
    port = process.url.rsplit(":", 1)[1]
    control = SimulatorControl(process.url, ca_file=ca)
    try:
        yield TlsSimulator(control, f"https://{SIM_NAME}:{port}", ca)
    finally:
        control.close()
        process.stop()


# ---------------------------------------------------------------- helpers


def kubectl_json(node: NodeCluster, *args: str) -> Any:
    return node.kubectl_json(*args)


def wait_rollout(node: NodeCluster, name: str, timeout: int = 180) -> None:
    result = node.kubectl(
        "-n", OPERATOR_NS, "rollout", "status", f"deploy/{name}", f"--timeout={timeout}s",
        check=False, timeout=timeout + 30,
    )  # fmt: skip
    if result.returncode != 0:
        pods = node.kubectl("-n", OPERATOR_NS, "describe", "pods", check=False).stdout
        raise AssertionError(f"rollout of {name} failed: {result.stderr}\n{pods[-4000:]}")


def operator_pods(node: NodeCluster) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl_json(
        node, "-n", OPERATOR_NS, "get", "pods", "-l", "app.kubernetes.io/name=cce-upgrade-watch"
    )["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def create_tenant(
    node: NodeCluster, namespace: str, endpoint: str, cluster_id: str, *, release: str = ""
) -> None:
    """What docs/INSTALL.md says a tenant does: a namespace, the operator allowed to
    `get` Secrets there (a RoleBinding to the shipped secret-reader ClusterRole, to the
    ServiceAccount of the kustomize install or of the Helm release), a Secret, a watch."""
    node.kubectl("create", "namespace", namespace)
    prefix = f"{release}-cce-upgrade-watch" if release else "cce-upgrade-watch"
    node.kubectl(
        "-n", namespace, "create", "rolebinding", "cce-upgrade-watch-secret-reader",
        f"--clusterrole={prefix}-secret-reader",
        f"--serviceaccount={OPERATOR_NS}:{prefix}",
    )  # fmt: skip
    node.kubectl(
        "-n", namespace, "create", "secret", "generic", "cce-credentials",
        f"--from-literal=accessKey={DEMO_ACCESS_KEY}",
        f"--from-literal=secretKey={DEMO_SECRET_KEY}",
    )  # fmt: skip
    watch = {
        "apiVersion": "cce.upgradewatch.io/v1alpha1",
        "kind": "CceUpgradeWatch",
        "metadata": {"name": "prod", "namespace": namespace},
        "spec": {
            "endpoint": endpoint,
            "projectId": DEMO_PROJECT_ID,
            "clusterId": cluster_id,
            "credentialsSecretRef": {"name": "cce-credentials"},
            "activePollInterval": "5s",
        },
    }
    node.apply(json.dumps(watch))


def wait_watch_synced(node: NodeCluster, namespace: str, timeout: float = 120) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def synced() -> dict[str, Any] | None:
        nonlocal last
        last = kubectl_json(node, "-n", namespace, "get", "cuw", "prod").get("status") or {}
        for condition in last.get("conditions") or []:
            if condition["type"] == "Synced" and condition["status"] == "True":
                return last
        return None

    def why() -> str:
        logs = node.kubectl(
            "-n", OPERATOR_NS, "logs", "-l", "app.kubernetes.io/name=cce-upgrade-watch",
            "--tail=40", check=False,
        ).stdout  # fmt: skip
        return f"status: {json.dumps(last)}\noperator log:\n{logs[-4000:]}"

    return wait_until(synced, timeout=timeout, message=why)


def events(node: NodeCluster, namespace: str) -> list[tuple[str, str]]:
    items = kubectl_json(node, "-n", namespace, "get", "events")["items"]
    return [
        (e["type"], e["reason"]) for e in items if e["involvedObject"]["kind"] == "CceUpgradeWatch"
    ]


def scrape_service(node: NodeCluster, service: str) -> str:
    """GET /metrics through the Service's ClusterIP: kube-proxy's rules, from the node."""
    spec = kubectl_json(node, "-n", OPERATOR_NS, "get", "service", service)["spec"]
    url = f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def user_overlay(directory: Path, image: str) -> Path:
    """The user's own kustomization, as docs/INSTALL.md describes it: the install (with
    the private-CA overlay, since the simulator's CA is private), the image name of
    the user's registry, IfNotPresent for an image loaded onto the node, and the
    simulator's host name allowed as an endpoint (as overlays/allowed-endpoint-hosts)."""
    directory.mkdir(parents=True, exist_ok=True)
    repository, tag = image.rsplit(":", 1)
    base = os.path.relpath(REPO_ROOT / "overlays" / "private-ca", directory)
    (directory / "kustomization.yaml").write_text(
        f"""apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {base}
images:
  - name: cce-upgrade-watch
    newName: {repository}
    newTag: "{tag}"
patches:
  - target: {{kind: Deployment, name: cce-upgrade-watch}}
    patch: |-
      - op: replace
        path: /spec/template/spec/containers/0/imagePullPolicy
        value: IfNotPresent
      - op: add
        path: /spec/template/spec/containers/0/args/-
        value: --allowed-endpoint-hosts={SIM_NAME}
"""
    )
    return directory


# ---------------------------------------------------------------- kustomize


def test_nothing_a_pod_sends_leaves_the_machine(node: NodeCluster) -> None:
    """While the node runs, what its Pods send out of the bridge to any other
    interface is dropped (hack/node/node.sh), so no test traffic leaves this host."""
    rule = "FORWARD -i cuwbr0 ! -o cuwbr0 -m comment --comment cuw-node-no-egress -j DROP"
    checked = subprocess.run(["iptables", "-C", *rule.split()], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    # Service IPs the node itself sends to stay on the bridge until kube-proxy rewrites them.
    route = subprocess.run(
        ["ip", "route", "get", "10.0.0.77"], capture_output=True, text=True, check=True
    )
    assert " dev cuwbr0 " in route.stdout, route.stdout


def test_kustomize_install_runs_on_a_real_node(
    node: NodeCluster, loaded_image: str, simulator: TlsSimulator, tmp_path: Path
) -> None:
    overlay = user_overlay(tmp_path / "overlay", loaded_image)
    started = time.monotonic()
    applied = node.kubectl("apply", "-k", str(overlay))
    assert "Warning" not in applied.stderr, applied.stderr  # no Pod Security warning
    node.kubectl(
        "-n", OPERATOR_NS, "create", "configmap", "cce-endpoint-ca",
        f"--from-file=ca.crt={simulator.ca}",
    )  # fmt: skip
    wait_rollout(node, "cce-upgrade-watch")
    print(f"\nkustomize install: Pod Ready {time.monotonic() - started:.0f}s after apply")

    namespace = kubectl_json(node, "get", "namespace", OPERATOR_NS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # The level is enforced there (a Pod that breaks it is refused), so the operator's
    # Pod running there meets it.
    refused = node.kubectl(
        "-n", OPERATOR_NS, "run", "probe", "--image=localhost/cce-upgrade-watch/pause:1",
        "--dry-run=server", "--privileged", check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted' in refused.stderr, refused.stderr
    (pod,) = operator_pods(node)
    assert pod_ready(pod)
    assert pod["spec"]["nodeName"] == "cuw-node"

    cluster_id = simulator.control.add_cluster(version="v1.28.3-r0")
    simulator.control.start_workflow(
        cluster_id, {"steps": [{"task": "PreCheck", "wait": 3600}]}, targetVersion="v1.29.1-r0"
    )
    create_tenant(node, "team-a", simulator.endpoint, cluster_id)
    status = wait_watch_synced(node, "team-a")
    assert status["phase"] == "Init", status
    wait_until(
        lambda: ("Normal", "WorkflowDiscovered") in events(node, "team-a"),
        timeout=60,
        message=lambda: f"no WorkflowDiscovered Event: {events(node, 'team-a')}",
    )
    metrics = wait_until(
        lambda: text if re.search(r"^cceupgradewatch_watches 1\.0$", text := scrape_service(
            node, "cce-upgrade-watch-metrics"), flags=re.M) else None,
        timeout=30,
        message="the metrics Service never reported one watch",
    )  # fmt: skip
    assert 'cceupgradewatch_polls_total{result="success"}' in metrics
    log = node.kubectl("-n", OPERATOR_NS, "logs", "deploy/cce-upgrade-watch").stdout
    assert "Traceback" not in log, log[-3000:]
    # The kubelet has probed /healthz by now; no line per probe (found here first).
    assert "/healthz" not in log, log[-3000:]

    # Uninstall as documented: the watches first, then the install.
    node.kubectl("delete", "cuw", "--all", "--all-namespaces", "--wait", "--timeout=60s")
    node.kubectl("delete", "-k", str(overlay), "--wait", "--timeout=120s", timeout=180)
    node.kubectl("delete", "namespace", "team-a", "--wait", "--timeout=120s", timeout=180)
    assert node.kubectl("get", "namespace", OPERATOR_NS, check=False).returncode != 0
    assert (
        node.kubectl("get", "crd", "cceupgradewatches.cce.upgradewatch.io", check=False).returncode
        != 0
    )
    wait_until(
        lambda: node.ctr("containers", "ls", "-q").stdout.strip() == "",
        timeout=60,
        message=lambda: f"containers left: {node.ctr('containers', 'ls').stdout}",
    )


# ---------------------------------------------------------------- helm


@pytest.fixture(scope="module")
def helm() -> Path:
    result = subprocess.run(
        [str(REPO_ROOT / "hack" / "helm"), "build"],
        check=True, text=True, stdout=subprocess.PIPE, timeout=1800,
    )  # fmt: skip
    return Path(result.stdout.strip().splitlines()[-1])


def run_helm(node: NodeCluster, helm: Path, *args: str) -> None:
    result = subprocess.run(
        [str(helm), "--kubeconfig", str(node.kubeconfig), *args],
        capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        pods = node.kubectl("-n", OPERATOR_NS, "describe", "pods", check=False).stdout
        raise AssertionError(f"helm {' '.join(args)}: {result.stderr}\n{pods[-4000:]}")


def helm_install(
    node: NodeCluster, helm: Path, image: str, simulator: TlsSimulator, *values: str
) -> None:
    """docs/INSTALL.md's Helm install: the restricted namespace, the CA, the chart."""
    node.kubectl("create", "namespace", OPERATOR_NS)
    node.kubectl("label", "namespace", OPERATOR_NS, "pod-security.kubernetes.io/enforce=restricted")
    node.kubectl(
        "-n", OPERATOR_NS, "create", "configmap", "cce-endpoint-ca",
        f"--from-file=ca.crt={simulator.ca}",
    )  # fmt: skip
    repository, tag = image.rsplit(":", 1)
    run_helm(
        node, helm, "install", "cuw", str(REPO_ROOT / "charts" / "cce-upgrade-watch"),
        "-n", OPERATOR_NS, "--wait", "--timeout", "3m",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=IfNotPresent",
        "--set", "endpointCA.configMap=cce-endpoint-ca",
        "--set", f"allowedEndpointHosts={{{SIM_NAME}}}",
        *values,
    )  # fmt: skip


def helm_uninstall(node: NodeCluster, helm: Path, *tenants: str) -> None:
    """docs/INSTALL.md's uninstall: watches first, the release, then the CRDs."""
    node.kubectl("delete", "cuw", "--all", "--all-namespaces", "--wait", "--timeout=60s")
    run_helm(node, helm, "uninstall", "cuw", "-n", OPERATOR_NS, "--wait")
    node.kubectl("delete", "-k", str(REPO_ROOT / "crds"), "--wait", "--timeout=60s")
    node.kubectl(
        "delete", "-k", str(REPO_ROOT / "crds" / "peering"), "--ignore-not-found", "--wait=false"
    )
    node.kubectl("delete", "namespace", OPERATOR_NS, *tenants, "--wait", "--timeout=120s",
                 timeout=180)  # fmt: skip


def pod_metrics(pod: dict[str, Any]) -> str:
    url = f"http://{pod['status']['podIP']}:9090/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def watches_gauge(pod: dict[str, Any]) -> float | None:
    try:
        text = pod_metrics(pod)
    except OSError:
        return None
    match = re.search(r"^cceupgradewatch_watches ([0-9.]+)$", text, flags=re.M)
    return float(match.group(1)) if match else None


def test_helm_install_with_defaults_runs_on_a_real_node(
    node: NodeCluster, loaded_image: str, simulator: TlsSimulator, helm: Path
) -> None:
    started = time.monotonic()
    helm_install(node, helm, loaded_image, simulator)
    print(f"\nhelm install --wait: {time.monotonic() - started:.0f}s")
    (pod,) = operator_pods(node)
    assert pod_ready(pod)
    assert "--peering" not in " ".join(pod["spec"]["containers"][0]["args"])

    cluster_id = simulator.control.add_cluster(version="v1.28.3-r0")
    simulator.control.start_workflow(
        cluster_id, {"steps": [{"task": "PreCheck", "wait": 3600}]}, targetVersion="v1.29.1-r0"
    )
    create_tenant(node, "team-b", simulator.endpoint, cluster_id, release="cuw")
    assert wait_watch_synced(node, "team-b")["phase"] == "Init"
    wait_until(
        lambda: re.search(
            r"^cceupgradewatch_watches 1\.0$",
            scrape_service(node, "cuw-cce-upgrade-watch-metrics"),
            flags=re.M,
        ),
        timeout=30,
        message="the chart's metrics Service never reported one watch",
    )
    helm_uninstall(node, helm, "team-b")
    assert node.kubectl(
        "get", "crd", "cceupgradewatches.cce.upgradewatch.io", check=False
    ).returncode


def test_helm_two_replicas_with_peering_fail_over(
    node: NodeCluster, loaded_image: str, simulator: TlsSimulator, helm: Path
) -> None:
    helm_install(node, helm, loaded_image, simulator, "--set", "highAvailability.enabled=true")
    pods = operator_pods(node)
    roles = {pod["metadata"]["labels"]["cce.upgradewatch.io/peering-role"]: pod for pod in pods}
    assert sorted(roles) == ["active", "standby"]
    assert all(pod_ready(pod) for pod in pods)

    cluster_id = simulator.control.add_cluster(version="v1.28.3-r0")
    simulator.control.start_workflow(
        cluster_id, {"steps": [{"task": "PreCheck", "wait": 3600}]}, targetVersion="v1.29.1-r0"
    )
    create_tenant(node, "team-c", simulator.endpoint, cluster_id, release="cuw")
    wait_watch_synced(node, "team-c")
    # Only the active replica works.
    wait_until(lambda: watches_gauge(roles["active"]) == 1.0, timeout=30, message="active idle")
    assert watches_gauge(roles["standby"]) == 0.0

    # The active Pod is killed and cannot come back at once (its node is cordoned,
    # as when the node it ran on is lost): the standby takes over.
    node.kubectl("cordon", "cuw-node")
    try:
        killed_at = time.monotonic()
        node.kubectl("-n", OPERATOR_NS, "delete", "pod", roles["active"]["metadata"]["name"])
        wait_until(
            lambda: watches_gauge(roles["standby"]) == 1.0,
            timeout=60,
            message="the standby never took over",
        )
        print(f"\nstandby took over {time.monotonic() - killed_at:.1f}s after the kill")
        # It polls and reports: the upgrade moves on while only the standby runs.
        simulator.control.advance(3600)
        wait_until(
            lambda: (
                (kubectl_json(node, "-n", "team-c", "get", "cuw", "prod").get("status") or {}).get(
                    "phase"
                )
                not in (None, "Init")
            ),
            timeout=60,
            message="the standby did not record the upgrade's progress",
        )
    finally:
        node.kubectl("uncordon", "cuw-node")
    # The replacement active Pod starts; the standby pauses again.
    wait_rollout(node, "cuw-cce-upgrade-watch")
    wait_until(lambda: watches_gauge(roles["standby"]) == 0.0, timeout=90, message="no pause")
    reasons = [reason for _, reason in events(node, "team-c")]
    assert reasons.count("WorkflowDiscovered") == 1, reasons
    helm_uninstall(node, helm, "team-c")
