"""One e2e test's world: control plane, simulator, operator and the test's namespace."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from cce_upgrade_watch.simulator import DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY
from tests.support.controlplane import ControlPlane
from tests.support.operatorprocess import OperatorProcess
from tests.support.simulator import SimulatorControl
from tests.support.waiting import wait_until

SECRET_NAME = "cce-credentials"
#: `spec.lifecycle` of a watch unless the test gives its own: the workflow mirror
#: alone. The tests written before issue 12 count the workflow's Events and calls
#: (a pre-check that ends would add its `PreCheckPassed`/`PreCheckFailed` Event, and
#: its calls); a test of the lifecycle parts passes `lifecycle=...` (`{}`: the
#: defaults, every part on).
WORKFLOW_ONLY = {"preCheck": False, "plans": False, "versions": False, "backups": False}


@dataclass
class World:
    plane: ControlPlane
    sim: SimulatorControl
    operator: OperatorProcess
    namespace: str

    # ------------------------------------------------------------ set-up

    def create_secret(
        self,
        name: str = SECRET_NAME,
        *,
        access_key: str = DEMO_ACCESS_KEY,
        secret_key: str = DEMO_SECRET_KEY,
        **extra: str,
    ) -> None:
        data = {"accessKey": access_key, "secretKey": secret_key, **extra}
        manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": self.namespace},
            "stringData": data,
        }
        self.plane.apply(json.dumps(manifest))

    def watch_manifest(self, name: str, cluster_id: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "cce.upgradewatch.io/v1alpha1",
            "kind": "CceUpgradeWatch",
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {
                "endpoint": self.sim.url,
                "projectId": DEMO_PROJECT_ID,
                "clusterId": cluster_id,
                "credentialsSecretRef": {"name": SECRET_NAME},
                "activePollInterval": "5s",
                "pollInterval": "10s",
                "lifecycle": WORKFLOW_ONLY,
                **spec,
            },
        }

    def create_watch(self, name: str, cluster_id: str, **spec: Any) -> None:
        self.plane.apply(json.dumps(self.watch_manifest(name, cluster_id, **spec)))

    def patch_spec(self, name: str, **spec: Any) -> None:
        self.kubectl("patch", "cuw", name, "--type=merge", "-p", json.dumps({"spec": spec}))

    def poll_now(self, name: str) -> None:
        self.kubectl(
            "annotate", "--overwrite", "cuw", name,
            f"cce.upgradewatch.io/poll-now={time.monotonic_ns()}",
        )  # fmt: skip

    # ------------------------------------------------------------ reading

    def kubectl(self, *args: str, check: bool = True) -> Any:
        return self.plane.kubectl("-n", self.namespace, *args, check=check)

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.plane.kubectl_json("-n", self.namespace, "get", "cuw", name)
        return result

    def kubectl_json_get(self, kind: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.plane.kubectl_json("-n", self.namespace, "get", kind, name)
        return result

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def condition(self, name: str, condition_type: str) -> dict[str, Any] | None:
        for condition in self.status(name).get("conditions") or []:
            if condition.get("type") == condition_type:
                return dict(condition)
        return None

    def events(self, name: str) -> list[dict[str, Any]]:
        """The object's Events, oldest first (by creation, then name for ties)."""
        items = self.plane.kubectl_json(
            "-n", self.namespace, "get", "events",
            "--field-selector", f"involvedObject.name={name},involvedObject.kind=CceUpgradeWatch",
        )["items"]  # fmt: skip
        return sorted(items, key=lambda e: (e.get("eventTime") or "", e["metadata"]["name"]))

    def event_summaries(self, name: str) -> list[tuple[str, str, str]]:
        return [(e["type"], e["reason"], e["message"]) for e in self.events(name)]

    # ------------------------------------------------------------ waiting

    def wait_status(self, name: str, timeout: float = 30, **expected: Any) -> dict[str, Any]:
        """Wait until every `expected` key of `.status` has the given value."""
        last: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            nonlocal last
            last = self.status(name)
            return last if all(last.get(k) == v for k, v in expected.items()) else None

        return wait_until(
            probe,
            timeout=timeout,
            message=lambda: (
                f"status of {name} never had {expected}; last: {json.dumps(last)}"
                f"\noperator log tail:\n{self.operator.log()[-2000:]}"
            ),
        )

    def wait_condition(
        self, name: str, condition_type: str, status: str, reason: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:  # fmt: skip
        def probe() -> dict[str, Any] | None:
            condition = self.condition(name, condition_type)
            matches = condition is not None and condition["status"] == status
            if matches and (reason is None or condition["reason"] == reason):  # type: ignore[index]
                return condition
            return None

        return wait_until(
            probe,
            timeout=timeout,
            message=lambda: (
                f"{condition_type} of {name} never became {status}/{reason}; "
                f"conditions: {json.dumps(self.status(name).get('conditions'))}"
            ),
        )

    def wait_events(self, name: str, count: int, timeout: float = 30) -> list[tuple[str, str, str]]:
        return wait_until(
            lambda: events if len(events := self.event_summaries(name)) >= count else None,
            timeout=timeout,
            message=lambda: f"fewer than {count} events: {self.event_summaries(name)}",
        )
