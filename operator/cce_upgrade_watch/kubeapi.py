"""The few Kubernetes calls the operator makes beyond kopf: read a Secret, patch status.

kopf applies a daemon's `patch` only when the daemon exits, so a long-running
poll loop writes its status itself. The official client is synchronous; its
calls run in a small thread pool of their own so a slow API server cannot
starve the event loop's default executor.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes

from cce_upgrade_watch.credentials import CredentialsNotFound
from cce_upgrade_watch.resource import GROUP, PLURAL, VERSION


def load_client_config() -> kubernetes.client.Configuration:
    """In-cluster config inside a Pod, else the usual KUBECONFIG / ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


class KubeApi:
    def __init__(self, configuration: kubernetes.client.Configuration, workers: int = 8) -> None:
        configuration.connection_pool_maxsize = workers
        self._client = kubernetes.client.ApiClient(configuration)
        self._core = kubernetes.client.CoreV1Api(self._client)
        self._custom = kubernetes.client.CustomObjectsApi(self._client)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubeapi")
        self.status_patches = 0  # writes made, for tests and benchmarks

    async def _run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))

    async def read_secret_data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The Secret's base64 `data`, or None when it does not exist."""
        try:
            secret = await self._run(self._core.read_namespaced_secret, name, namespace)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 403:
                raise CredentialsNotFound(
                    f"the operator may not read Secret {name!r} in namespace {namespace!r} "
                    "(RBAC: it needs 'get' on secrets there)"
                ) from None
            raise
        return dict(secret.data or {})

    async def patch_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """Merge-patch `.status`; returns the stored status, or None if the object is gone."""
        self.status_patches += 1
        try:
            result = await self._run(
                self._custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": dict(status_patch)},
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        status: Mapping[str, Any] = result.get("status") or {}
        return status

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()  # type: ignore[no-untyped-call]
