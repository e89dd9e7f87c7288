"""The few Kubernetes calls the operator makes beyond kopf: read a Secret, create an
Event, patch status.

The poll loops run outside kopf's handlers (`scheduler.py`), so they write
their status themselves. The official client is synchronous; its
calls run in a small thread pool of their own so a slow API server cannot
starve the event loop's default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import kubernetes

from cce_upgrade_watch.cce.identity import IdentityExchangeFailed
from cce_upgrade_watch.credentials import CredentialsNotFound, SecretUnreadable, check_secret_type
from cce_upgrade_watch.events import Event, event_name
from cce_upgrade_watch.pollloop import RESOURCE_VERSION_KEY, StatusRejected
from cce_upgrade_watch.resource import GROUP, KIND, PLURAL, VERSION

logger = logging.getLogger(__name__)

#: TEST ONLY. A whole number N: the operator SIGKILLs itself right after its N-th
#: Event create call (created or already there), before the status write that
#: follows. The exactly-once e2e test kills it at every point that way; never set
#: it anywhere else. Read once, at start-up (see `handlers.py`).
KILL_AFTER_EVENTS_ENV = "CCE_UPGRADE_WATCH_TEST_KILL_AFTER_EVENTS"

# 4xx answers to an Event create that no retry can fix (no permission, an Event
# the API server finds invalid): logged and skipped, so they never block the
# status. 409 AlreadyExists means delivered.
_EVENT_UNDELIVERABLE = frozenset({400, 403, 404, 422})


def load_client_config() -> kubernetes.client.Configuration:
    """In-cluster config inside a Pod, else the usual KUBECONFIG / ~/.kube/config."""
    configuration = kubernetes.client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


class KubeApi:
    def __init__(
        self,
        configuration: kubernetes.client.Configuration,
        workers: int = 8,
        *,
        reporting_component: str = "cce-upgrade-watch",
        reporting_instance: str = "",
        kill_after_events: int | None = None,
    ) -> None:
        configuration.connection_pool_maxsize = workers
        self._client = kubernetes.client.ApiClient(configuration)
        self._core = kubernetes.client.CoreV1Api(self._client)
        self._custom = kubernetes.client.CustomObjectsApi(self._client)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kubeapi")
        self.status_patches = 0  # writes made, for tests and benchmarks
        self._component = reporting_component
        self._instance = reporting_instance or os.environ.get("HOSTNAME", "") or "unknown"
        self._kill_after_events = kill_after_events
        self._event_calls = 0

    async def _run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))

    async def read_secret_data(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The Secret's base64 `data`, or None when it does not exist.

        Raises `CredentialsNotFound` when it may not be read or has a type that does
        not hold cloud credentials, `SecretUnreadable` when the API server could not
        answer (the poll loop retries soon; it must never end the loop).
        """
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
            raise SecretUnreadable(
                f"could not read Secret {name!r} in namespace {namespace!r}: the Kubernetes "
                f"API answered HTTP {exc.status} {exc.reason or ''}".rstrip()
            ) from None
        except Exception as exc:  # urllib3: refused, reset, timed out, TLS...
            raise SecretUnreadable(
                f"could not read Secret {name!r} in namespace {namespace!r}: the Kubernetes "
                f"API did not answer ({type(exc).__name__})"
            ) from None
        check_secret_type(namespace, name, secret.type)
        return dict(secret.data or {})

    async def create_service_account_token(
        self, namespace: str, name: str, audience: str, seconds: int
    ) -> str:
        """A token for ServiceAccount `name` of `namespace` (TokenRequest API), for
        `audience`, valid `seconds`. Only ever in the watch's own namespace (the
        caller passes the watch's). Raises `IdentityExchangeFailed` naming the
        ServiceAccount and why, never the token."""
        request = kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(
                audiences=[audience], expiration_seconds=seconds
            )
        )
        where = f"ServiceAccount {name!r} in namespace {namespace!r}"
        try:
            answer = await self._run(
                self._core.create_namespaced_service_account_token, name, namespace, request
            )
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                why = f"{where} does not exist"
            elif exc.status == 403:
                why = (
                    f"the operator may not create tokens for {where} (RBAC: it needs "
                    "'create' on serviceaccounts/token there)"
                )
            else:
                why = f"the Kubernetes API refused a token for {where}: HTTP {exc.status}"
            raise IdentityExchangeFailed(why, operation="request ServiceAccount token") from None
        except Exception as exc:  # urllib3: refused, reset, timed out, TLS...
            raise IdentityExchangeFailed(
                f"the Kubernetes API did not answer a token request for {where} "
                f"({type(exc).__name__})",
                operation="request ServiceAccount token",
            ) from None
        token = getattr(getattr(answer, "status", None), "token", None)
        if not isinstance(token, str) or not token.strip():
            raise IdentityExchangeFailed(
                f"the Kubernetes API answered a token request for {where} without a token",
                operation="request ServiceAccount token",
            )
        return token.strip()

    async def create_event(self, involved: Mapping[str, Any], event: Event) -> None:
        """Create one core/v1 Event about `involved` (a CceUpgradeWatch body), named
        after its uid and the Event's key, with the fields kopf's own Events carry
        (so `kubectl describe` and `kubectl events --for` show it the same way).

        409 AlreadyExists: delivered before (by us before a crash). Raises the
        ApiException when a retry may help (5xx, 429), or the connection error.
        """
        meta = involved.get("metadata") or {}
        namespace, uid = str(meta.get("namespace") or "default"), str(meta.get("uid") or "")
        now = datetime.now(UTC).isoformat()
        body = {
            "metadata": {
                "name": event_name(str(meta.get("name") or ""), uid, event.key),
                "namespace": namespace,
            },
            "action": "Poll",
            "type": str(event.type),
            "reason": str(event.reason),
            "message": event.message,
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
            "source": {"component": self._component},  # the "From" of `kubectl describe`
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": KIND,
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": uid,
            },
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": now,
            "count": 1,
        }
        try:
            await self._run(self._core.create_namespaced_event, namespace, body)
        except kubernetes.client.ApiException as exc:
            if exc.status in _EVENT_UNDELIVERABLE:
                logger.warning(
                    "dropped the %s Event of %s/%s: the API server answered %s %s",
                    event.reason,
                    namespace,
                    meta.get("name"),
                    exc.status,
                    exc.reason,
                )
            elif exc.status != 409:
                raise
        self._event_calls += 1
        if self._kill_after_events is not None and self._event_calls >= self._kill_after_events:
            logger.warning("%s reached: killing the operator (test only)", KILL_AFTER_EVENTS_ENV)
            os.kill(os.getpid(), signal.SIGKILL)

    async def list_watch_uids(self, namespace: str, page_size: int = 100) -> set[str]:
        """The uids of the CceUpgradeWatches in `namespace`, listed in pages (one
        page of bodies in memory at a time) from one consistent snapshot."""
        uids: set[str] = set()
        token: str | None = None
        while True:
            page = await self._run(
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                limit=page_size,
                **({"_continue": token} if token else {}),
            )
            for item in page.get("items") or ():
                uid = (item.get("metadata") or {}).get("uid")
                if uid:
                    uids.add(str(uid))
            token = (page.get("metadata") or {}).get("continue") or None
            del page
            if token is None:
                return uids

    async def patch_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """Merge-patch `.status`; returns the stored status (with the object's
        resourceVersion under `RESOURCE_VERSION_KEY`), or None if the object is
        gone. Raises `StatusRejected` when the API server refuses the content."""
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
            if exc.status in (413, 422):
                raise StatusRejected(_rejection(exc)) from None
            raise
        status: dict[str, Any] = dict(result.get("status") or {})
        version = (result.get("metadata") or {}).get("resourceVersion")
        if version is not None:
            status[RESOURCE_VERSION_KEY] = version
        return status

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()  # type: ignore[no-untyped-call]


def _rejection(exc: kubernetes.client.ApiException) -> str:
    """`HTTP 422: <the Status message>`, short: the message may quote the status."""
    message = str(exc.reason or "")
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(exc.body or "{}").get("message") or message
    message = " ".join(message.split())
    if len(message) > 300:
        message = message[:297] + "..."
    return f"HTTP {exc.status}: {message}"
