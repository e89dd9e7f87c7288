"""Trust boundaries on the real control plane: where credentials may go, which
Secrets may hold them, who may name a Secret, and what a failing Secret read does.

- A watch naming a host outside the allow-list is `Synced=False EndpointNotAllowed`
  (and Stalled): nothing is sent. `--allowed-endpoint-hosts` widens the list; a
  loopback endpoint needs `--allow-insecure-loopback`.
- Typed Secrets (service-account tokens, TLS keys) are never used as credentials.
- The shipped ValidatingAdmissionPolicy refuses a watch whose author may not read
  the Secret it names, and admits one whose author may.
- A Secret read the API server answers with a 5xx is `Synced=False ApiUnavailable`
  naming the Secret, retried at the active interval; the loop keeps running.
- The CRD refuses a region the operator would refuse (`cn-north`).
Reproduce the figures: `.venv/bin/pytest tests/e2e/test_tenancy.py -rP | grep measured`.
"""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.support.controlplane import REPO_ROOT, ControlPlane, KubectlError
from tests.support.operatorprocess import OperatorProcess
from tests.support.reliability import measured, request_count, swapped_operator, world_through_proxy
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until
from tests.support.world import SECRET_NAME, World

ADMISSION_POLICY = REPO_ROOT / "manifests" / "admissionpolicy.yaml"


def conditions(world: World, name: str) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"])
        for c in world.status(name).get("conditions") or []
    }


# ---------------------------------------------------------------- endpoints


def test_a_host_outside_the_allow_list_is_refused_and_stalls(world: World) -> None:
    cluster = world.sim.add_cluster()
    world.create_secret()
    # .invalid never resolves: had the operator tried, it would fail otherwise.
    world.create_watch("elsewhere", cluster, endpoint="https://cce-gateway.invalid")
    synced = world.wait_condition("elsewhere", "Synced", "False", "EndpointNotAllowed")
    assert "'cce-gateway.invalid' is not allowed" in synced["message"]
    assert "--allowed-endpoint-hosts" in synced["message"]
    assert "*.myhuaweicloud.com" in synced["message"]
    stalled = world.wait_condition("elsewhere", "Stalled", "True", "EndpointNotAllowed")
    assert stalled["message"] == synced["message"]
    world.wait_condition("elsewhere", "Ready", "False", "EndpointNotAllowed")


class ConnectRecorder(socketserver.ThreadingTCPServer):
    """A stand-in HTTPS proxy on loopback: records each request line, refuses it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.lines: list[str] = []
        super().__init__(("127.0.0.1", 0), _RecordLine)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _RecordLine(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        line = self.rfile.readline(1024).decode("latin-1").strip()
        self.server.lines.append(line)  # type: ignore[attr-defined]
        self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")


@pytest.fixture
def connect_recorder() -> Iterator[ConnectRecorder]:
    server = ConnectRecorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_the_admin_allows_more_hosts_and_loopback_needs_its_flag(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    operator: OperatorProcess,
    namespace: str,
    connect_recorder: ConnectRecorder,
    tmp_path: Path,
) -> None:
    """An operator as the Deployment runs it (no --allow-insecure-loopback), with one
    extra allowed host. Outbound HTTPS goes through a recording proxy on loopback,
    so the test sees every connection the operator tries, and nothing leaves."""
    args = ("-A", "--max-initial-delay=0s", "--allowed-endpoint-hosts=cce-gw.example.test")
    env = {"HTTPS_PROXY": connect_recorder.url, "NO_PROXY": "127.0.0.1,localhost"}
    with swapped_operator(
        operator, control_plane.operator_kubeconfig, tmp_path / "operator.log", args,
        insecure_loopback=False, env=env,
    ) as strict:  # fmt: skip
        world = World(control_plane, simulator, strict, namespace)
        world.create_secret()
        local = simulator.add_cluster()
        world.create_watch("local", local)  # the simulator: http://127.0.0.1
        world.create_watch("allowed", local, endpoint="https://cce-gw.example.test")
        world.create_watch("other", local, endpoint="https://cce-gw.example.test.attacker.test")

        loopback = world.wait_condition("local", "Synced", "False", "EndpointNotAllowed")
        assert "--allow-insecure-loopback" in loopback["message"]
        other = world.wait_condition("other", "Synced", "False", "EndpointNotAllowed")
        assert "--allowed-endpoint-hosts" in other["message"]
        # The allowed host is called (through the proxy, which refuses it).
        wait_until(
            lambda: any("cce-gw.example.test:443" in line for line in connect_recorder.lines),
            timeout=30,
            message=lambda: f"no CONNECT for the allowed host: {connect_recorder.lines}",
        )
        allowed = world.wait_condition("allowed", "Synced", "False")
        assert allowed["reason"] != "EndpointNotAllowed", allowed
        measured("connections tried", sorted(set(connect_recorder.lines)))
        assert {line.split()[1] for line in connect_recorder.lines} == {"cce-gw.example.test:443"}
        assert request_count(simulator, local) == 0  # nothing reached the simulator


# ---------------------------------------------------------------- Secret types


@pytest.mark.parametrize("secret_type", ["service-account-token", "tls"])
def test_typed_secrets_are_not_credentials(world: World, secret_type: str) -> None:
    name = f"typed-{secret_type}"
    if secret_type == "service-account-token":
        world.kubectl("create", "serviceaccount", "victim")
        manifest: dict[str, Any] = {
            "type": "kubernetes.io/service-account-token",
            "metadata": {"annotations": {"kubernetes.io/service-account.name": "victim"}},
        }
    else:
        manifest = {
            "type": "kubernetes.io/tls",
            "metadata": {},
            "stringData": {"tls.crt": "x", "tls.key": "y", "token": "TLS-SECRET-TOKEN"},
        }
    manifest |= {"apiVersion": "v1", "kind": "Secret"}
    manifest["metadata"] |= {"name": name, "namespace": world.namespace}
    world.plane.apply(json.dumps(manifest))
    # The controller fills a service-account token in: a real token is at stake.
    wait_until(
        lambda: world.kubectl_json_get("secret", name).get("data", {}).get("token"),
        timeout=30,
        message=f"Secret {name} never got a token",
    )
    cluster = world.sim.add_cluster()
    world.create_watch("typed", cluster, credentialsSecretRef={"name": name})
    synced = world.wait_condition("typed", "Synced", "False", "CredentialsNotFound")
    assert f"type 'kubernetes.io/{secret_type}'" in synced["message"]
    assert "TLS-SECRET-TOKEN" not in json.dumps(world.status("typed"))
    assert request_count(world.sim, cluster) == 0


# ---------------------------------------------------------------- the CRD's region rule


def test_the_crd_refuses_a_region_the_operator_would_refuse(world: World) -> None:
    cluster = world.sim.add_cluster()
    manifest = world.watch_manifest("vague", cluster, region="cn-north")
    del manifest["spec"]["endpoint"]
    with pytest.raises(KubectlError) as refused:
        world.plane.apply(json.dumps(manifest), "--dry-run=server")
    assert "region must be a Huawei Cloud region id" in str(refused.value)
    manifest["spec"]["region"] = "cn-north-4"
    world.plane.apply(json.dumps(manifest), "--dry-run=server")


# ---------------------------------------------------------------- the admission policy


@pytest.fixture(scope="module")
def admission_policy(control_plane: ControlPlane) -> Iterator[None]:
    control_plane.kubectl("apply", "-f", str(ADMISSION_POLICY))
    try:
        yield
    finally:
        control_plane.kubectl("delete", "-f", str(ADMISSION_POLICY), "--ignore-not-found")


def grant(plane: ControlPlane, namespace: str, user: str, rules: list[dict[str, Any]]) -> None:
    name = f"{user}-rights-{len(rules)}"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": namespace},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    plane.apply(json.dumps(role))
    plane.apply(json.dumps(binding))


def wait_until_enforced(plane: ControlPlane, user: str, manifest: dict[str, Any]) -> None:
    """Wait until the API server has loaded the admission policy: it refuses `user`'s
    `manifest`. Probed with server-side dry runs, which pass admission but store
    nothing: a real apply admitted before the policy was loaded would create the
    object, and every later apply of the same manifest would change nothing and
    never reach admission again."""

    def refused_dry_run() -> bool:
        result = plane.kubectl(
            "apply",
            f"--as={user}",
            "--dry-run=server",
            "-f",
            "-",
            stdin=json.dumps(manifest),
            check=False,
        )
        return result.returncode != 0 and "ValidatingAdmissionPolicy" in result.stderr

    wait_until(
        refused_dry_run,
        timeout=60,
        message=f"the admission policy never refused {user}'s watch",
    )


WATCH_RIGHTS = {
    "apiGroups": ["cce.upgradewatch.io"],
    "resources": ["cceupgradewatches"],
    "verbs": ["get", "list", "create", "update", "patch"],
}
SECRET_RIGHTS = {
    "apiGroups": [""],
    "resources": ["secrets"],
    "resourceNames": [SECRET_NAME],
    "verbs": ["get"],
}


def test_a_watch_may_name_only_a_secret_its_author_may_read(
    world: World, admission_policy: None
) -> None:
    plane, ns = world.plane, world.namespace
    world.create_secret()
    world.create_secret("someone-elses")
    grant(plane, ns, "mallory", [WATCH_RIGHTS])
    grant(plane, ns, "alice", [WATCH_RIGHTS, SECRET_RIGHTS])
    cluster = world.sim.add_cluster()

    def apply_as(user: str, manifest: dict[str, Any]) -> Any:
        return plane.kubectl(
            "apply", f"--as={user}", "-f", "-", stdin=json.dumps(manifest), check=False
        )

    def refused(user: str, manifest: dict[str, Any]) -> str | None:
        result = apply_as(user, manifest)
        return result.stderr if result.returncode != 0 else None

    watch = world.watch_manifest("stolen", cluster)
    wait_until_enforced(plane, "mallory", watch)
    message = refused("mallory", watch)
    assert message is not None
    measured("refusal", message.strip())
    assert "ValidatingAdmissionPolicy 'cce-upgrade-watch-secret-access'" in message
    assert f'you may not get Secret "{SECRET_NAME}" in namespace "{ns}"' in message
    assert world.kubectl("get", "cuw", "stolen", check=False).returncode != 0

    # Alice may read the Secret: her watch is admitted, and works.
    ok = apply_as("alice", world.watch_manifest("mine", cluster))
    assert ok.returncode == 0, ok.stderr
    world.wait_condition("mine", "Synced", "True")

    # Mallory may not repoint Alice's watch, not even to change its interval ...
    repointed = world.watch_manifest("mine", cluster, pollInterval="11s")
    assert refused("mallory", repointed)
    # ... and Alice may not name a Secret she cannot read.
    other = world.watch_manifest("mine", cluster, credentialsSecretRef={"name": "someone-elses"})
    assert 'you may not get Secret "someone-elses"' in (refused("alice", other) or "")
    # Metadata-only changes pass: annotations, a poll-now (and an older version's
    # finalizer, which this one removes).
    annotate = plane.kubectl(
        "-n", ns, "annotate", "cuw", "mine", "--as=mallory", "example.com/note=1", check=False
    )
    assert annotate.returncode == 0, annotate.stderr
    assert world.get("mine")["metadata"]["annotations"]["example.com/note"] == "1"
    assert "finalizers" not in world.get("mine")["metadata"]  # no daemon: kopf adds none


TOKEN_RIGHTS = {
    "apiGroups": [""],
    "resources": ["serviceaccounts/token"],
    "resourceNames": ["watcher"],
    "verbs": ["create"],
}


def test_a_watch_may_use_only_a_service_account_its_author_may_mint_tokens_for(
    world: World, admission_policy: None
) -> None:
    plane, ns = world.plane, world.namespace
    plane.kubectl("-n", ns, "create", "serviceaccount", "watcher")
    grant(plane, ns, "mallory", [WATCH_RIGHTS])
    grant(plane, ns, "alice", [WATCH_RIGHTS, TOKEN_RIGHTS])
    cluster = world.sim.add_cluster()
    account = "0123456789abcdef0123456789abcdef"
    watch = world.watch_manifest(
        "keyless",
        cluster,
        identity={
            "oidc": {
                "serviceAccountName": "watcher",
                "identityProviderUrn": f"iam::{account}:identity-provider:kube",
                "agencyUrn": f"iam::{account}:agency:reader",
            }
        },
    )
    del watch["spec"]["credentialsSecretRef"]

    def refused(user: str, manifest: dict[str, Any]) -> str | None:
        result = plane.kubectl(
            "apply", f"--as={user}", "-f", "-", stdin=json.dumps(manifest), check=False
        )
        return result.stderr if result.returncode != 0 else None

    wait_until_enforced(plane, "mallory", watch)
    message = refused("mallory", watch)
    assert message is not None
    measured("refusal", message.strip())
    assert f'you may not create tokens for ServiceAccount "watcher" in namespace "{ns}"' in (
        message
    )
    # Alice may mint tokens for that ServiceAccount herself: admitted, no Secret needed.
    assert refused("alice", watch) is None
    # ... but not for another one.
    other = json.loads(json.dumps(watch))
    other["spec"]["identity"]["oidc"]["serviceAccountName"] = "default"
    assert 'ServiceAccount "default"' in (refused("alice", other) or "")
    # A watch with neither a Secret nor an identity is refused by the CRD.
    bare = json.loads(json.dumps(watch))
    del bare["spec"]["identity"]
    assert "exactly one credentials source" in (refused("alice", bare) or "")


# ---------------------------------------------------------------- a failing Secret read


def test_a_secret_read_the_api_server_fails_is_api_unavailable(
    control_plane: ControlPlane,
    simulator: SimulatorControl,
    operator: OperatorProcess,
    namespace: str,
    tmp_path: Path,
) -> None:
    # A Secret cache of 0 s: every poll reads the Secret, as after a TTL expiry.
    args = ("-A", "--max-initial-delay=0s", "--secret-cache-ttl=0s")
    with world_through_proxy(control_plane, simulator, operator, namespace, tmp_path, args) as (
        world,
        proxy,
    ):
        world.create_secret()
        cluster = simulator.add_cluster()
        world.create_watch("flaky", cluster, pollInterval="1h", activePollInterval="5s")
        world.wait_condition("flaky", "Synced", "True")
        polls_before = request_count(simulator, cluster)

        proxy.fail_secret_reads(namespace, SECRET_NAME, 503)
        world.poll_now("flaky")
        synced = world.wait_condition("flaky", "Synced", "False", "ApiUnavailable")
        measured("condition", synced["message"])
        assert f"Secret '{SECRET_NAME}' in namespace '{namespace}'" in synced["message"]
        assert "HTTP 503" in synced["message"]
        assert world.condition("flaky", "Stalled")["status"] == "False"  # type: ignore[index]
        # Retried at the active interval (5 s), not the idle one (1 h).
        wait_until(
            lambda: len(proxy.failed_at) >= 3,
            timeout=30,
            message=lambda: f"no retry: {len(proxy.failed_at)} failed reads",
        )
        gaps = [round(b - a, 1) for a, b in pairwise(proxy.failed_at)]
        measured("seconds between failed Secret reads (activePollInterval 5s)", gaps)
        assert all(gap < 10 for gap in gaps), gaps
        proxy.heal()
        world.wait_condition("flaky", "Synced", "True", timeout=30)
        assert request_count(simulator, cluster) > polls_before
        assert "Traceback" not in world.operator.log(), world.operator.log()[-3000:]
