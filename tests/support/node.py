"""A control plane with a real node (`hack/localcluster start DIR --with-node`), for tests.

The node is containerd + kubelet + kube-scheduler + kube-proxy on a bridge of its
own (hack/node/node.sh); Pods get addresses on it and reach the node's address.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.controlplane import LOCALCLUSTER, ControlPlane

#: hack/node/node.sh's constants: the node's bridge and its address on it.
NODE_BRIDGE = "cuwbr0"
NODE_IP = "10.217.0.1"


def _node_constant(name: str) -> str:
    text = (LOCALCLUSTER.parent / "node" / "node.sh").read_text()
    match = re.search(rf"^{name}=(\S+)$", text, flags=re.M)
    assert match, f"{name} is not set in hack/node/node.sh"
    return match.group(1)


assert _node_constant("NODE_BRIDGE") == NODE_BRIDGE
assert _node_constant("NODE_IP") == NODE_IP


def build_node_binaries() -> Path:
    result = subprocess.run(
        [str(LOCALCLUSTER), "build-node"], check=True, text=True, stdout=subprocess.PIPE
    )
    return Path(result.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class NodeCluster(ControlPlane):
    def launch(self) -> None:
        """Start it; `stop` cleans up after a start that failed half-way too."""
        subprocess.run(
            [str(LOCALCLUSTER), "start", str(self.directory), "--with-node"],
            check=True,
            timeout=600,
        )

    @property
    def containerd_socket(self) -> Path:
        return self.directory / "node" / "containerd.sock"

    def ctr(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args],
            capture_output=True, text=True, check=True, timeout=timeout,
        )  # fmt: skip

    def add_dns_name(self, name: str, address: str) -> None:
        """Serve `name` from the node's DNS (what Pods with dnsPolicy ClusterFirst ask)."""
        hosts = self.directory / "node" / "hosts"
        with hosts.open("a") as file:
            file.write(f"{address} {name}\n")
        pid = int((self.directory / "node" / "dnsmasq.pid").read_text())
        os.kill(pid, signal.SIGHUP)  # dnsmasq re-reads its hosts files


def machine_state() -> dict[str, list[str]]:
    """What a node may leave behind on the machine: to compare before and after."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True)
    netns = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    chains = []
    for table in ("nat", "filter", "mangle"):
        rules = subprocess.run(
            ["iptables", "-t", table, "-S"], capture_output=True, text=True, check=False
        ).stdout
        chains += [f"{table}:{line}" for line in rules.splitlines() if line.startswith("-N")]
    with open("/proc/self/mounts") as mounts:
        mount_points = sorted(line.split()[1] for line in mounts)
    paths = ["/var/lib/kubelet", "/var/lib/cni", "/var/log/pods", "/var/log/containers",
             "/run/containerd"]  # fmt: skip
    found = [path for path in paths if os.path.exists(path)]
    if os.path.isdir("/var/lib/cni/results"):
        found += [f"/var/lib/cni/results/{name}" for name in os.listdir("/var/lib/cni/results")]
    return {
        "paths": sorted(found),
        "links": sorted(
            line.split(":")[1].strip().split("@")[0] for line in links.stdout.splitlines()
        ),
        "netns": netns,
        "chains": sorted(chains),
        "mounts": mount_points,
    }
