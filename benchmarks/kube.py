"""A small async client of the local control plane's API, as the admin user.

The benchmark needs only a few calls: create objects, stream watch events and read
kube-apiserver's `/metrics`. Its CPU shares the machine with the operator under
test, inside the convergence window too, so it uses aiohttp: at N=10,000 httpx
(httpcore's connection pool and anyio stream checks on every request) cost the
benchmark ~3.4 ms of CPU per create, 38-43 CPU s of a 140-170 s window
(docs/PERFORMANCE.md, "Where the two cores go while 10,000 watches converge").
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

RETRIES = 30
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})
TIMEOUT = aiohttp.ClientTimeout(total=30.0)


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None  # the header, read case-insensitively from the answer
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def raise_for_status(self, what: str) -> None:
        if self.status >= 400:
            raise RuntimeError(f"{what}: {self.status} {self.text[:300]}")


class KubeHttp:
    """The API server of a `hack/localcluster` directory, as its admin.

    Created inside the running event loop (aiohttp's session belongs to it).
    """

    def __init__(self, cluster_dir: Path, *, max_connections: int = 32) -> None:
        port = (cluster_dir / "apiserver.port").read_text().strip()
        token = (cluster_dir / "admin-token").read_text().strip()
        self._base = f"https://127.0.0.1:{port}"
        context = ssl.create_default_context(cafile=str(cluster_dir / "certs" / "ca.crt"))
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=max_connections),
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )

    async def aclose(self) -> None:
        await self._http.close()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """One request, sent again while the API server answers 429 (its priority
        and fairness limits, busy just after start) or 503, as its Retry-After says."""
        answer = Answer(0, None, b"")
        for _ in range(RETRIES):
            async with self._http.request(method, self._base + path, **kwargs) as response:
                retry_after = response.headers.get("Retry-After")
                answer = Answer(response.status, retry_after, await response.read())
            if answer.status not in (429, 503):
                return answer
            delay = float(answer.retry_after or 1)
            await asyncio.sleep(min(delay, 10.0))
        return answer

    async def create(self, path: str, body: Mapping[str, Any]) -> None:
        """POST an object; an existing one (409) is an error, anything else too."""
        answer = await self._request("POST", path, json=body)
        answer.raise_for_status(f"POST {path}")

    async def list_items(self, path: str) -> tuple[list[dict[str, Any]], str]:
        answer = await self._request("GET", path)
        answer.raise_for_status(f"GET {path}")
        body = answer.json()
        return body.get("items") or [], str(body["metadata"]["resourceVersion"])

    async def watch(
        self, path: str, resource_version: str
    ) -> AsyncIterator[tuple[float, str, dict[str, Any]]]:
        """(receive time, event type, object) for every change after `resource_version`.

        Reconnects from the last version seen when the server ends the stream.
        The receive time is `time.time()` as the bytes holding the line arrived.
        """
        while True:
            params = {
                "watch": "1",
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "3600",
            }
            async with self._http.get(
                self._base + path, params=params, timeout=aiohttp.ClientTimeout(total=None)
            ) as response:
                if response.status in (429, 503):
                    await asyncio.sleep(1.0)  # throttled: ask again, from the same version
                    continue
                if response.status >= 400:
                    raise RuntimeError(f"watch {path}: {response.status}")
                pending = b""
                async for chunk in response.content.iter_any():
                    received = time.time()
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        kind = event.get("type", "")
                        obj = event.get("object") or {}
                        if kind == "ERROR":
                            raise RuntimeError(f"watch {path} failed: {obj}")
                        resource_version = obj.get("metadata", {}).get("resourceVersion", "")
                        if kind != "BOOKMARK":
                            yield received, kind, obj

    async def apiserver_writes(self, resources: frozenset[str]) -> int:
        """Write requests to `resources` so far, by kube-apiserver's own counter
        (`apiserver_request_total`, every user together)."""
        answer = await self._request("GET", "/metrics")
        answer.raise_for_status("GET /metrics")
        return count_writes(answer.text, resources)


def count_writes(metrics_text: str, resources: frozenset[str]) -> int:
    """Sum of `apiserver_request_total` over write verbs for the given resources."""
    total = 0.0
    for line in metrics_text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, _, value = line.rpartition("} ")
        labels = _labels(labels_text[len("apiserver_request_total{") :])
        if labels.get("verb") in WRITE_VERBS and labels.get("resource") in resources:
            total += float(value)
    return int(total)


def _labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in text.split('",'):
        key, _, value = part.partition('="')
        labels[key.strip()] = value.rstrip('"')
    return labels


def audit_writes(audit_log: Path, user: str, *, since: float, until: float) -> list[dict[str, Any]]:
    """The write requests `user` made in [since, until] (epoch seconds), from the
    audit log (which records only writes: see hack/localcluster)."""
    writes: list[dict[str, Any]] = []
    if not audit_log.exists():
        return writes
    with audit_log.open() as lines:
        for line in lines:
            if user not in line:
                continue
            event = json.loads(line)
            if event.get("user", {}).get("username") != user:
                continue
            if event.get("stage") != "ResponseComplete":
                continue
            received = _epoch(event.get("requestReceivedTimestamp", ""))
            if since <= received <= until:
                writes.append(event)
    return writes


def _epoch(rfc3339: str) -> float:
    try:
        return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
