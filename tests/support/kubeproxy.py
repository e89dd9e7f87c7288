"""A fault-injecting proxy in front of the real kube-apiserver, for e2e tests.

The operator under test gets a kubeconfig that points at this proxy (plain HTTP
on loopback); every request is forwarded to the real API server as it came,
answers are streamed back (watches included), except the Secret reads a test
chose to fail: those get the status code it chose and a Kubernetes `Status`
body, as an API server in trouble (or a failing KMS plugin) answers. So a test
can break exactly one kind of request while the rest of the API keeps working.
It can also leave the DELETED events of one namespace out of every watch stream,
as a client that had to list again after "410 Gone" never learns of a deletion.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

#: Hop-by-hop headers (and what aiohttp sets itself), never forwarded.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
)


class FaultyKubeProxy:
    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        (cluster,) = config["clusters"]
        self._upstream = cluster["cluster"]["server"].rstrip("/")
        ca_data = cluster["cluster"].get("certificate-authority-data")
        ca_file = cluster["cluster"].get("certificate-authority")
        self._ssl = ssl.create_default_context(
            cafile=ca_file, cadata=base64.b64decode(ca_data).decode() if ca_data else None
        )
        self._source = config
        #: URL path of a Secret -> the status code its GETs answer with.
        self.failing: dict[str, int] = {}
        self.failed_at: list[float] = []  # time.monotonic() of each injected failure
        #: Namespaces whose DELETED watch events are left out of watch streams.
        self.hidden_deletions: set[str] = set()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------ control

    def fail_secret_reads(self, namespace: str, name: str, status: int = 503) -> None:
        self.failing[f"/api/v1/namespaces/{namespace}/secrets/{name}"] = status

    def hide_deletions(self, namespace: str) -> None:
        self.hidden_deletions.add(namespace)

    def heal(self) -> None:
        self.failing.clear()
        self.hidden_deletions.clear()

    def write_kubeconfig(self, path: Path) -> Path:
        """The source kubeconfig, pointed at this proxy."""
        config: dict[str, Any] = yaml.safe_load(yaml.safe_dump(self._source))
        (cluster,) = config["clusters"]
        cluster["cluster"] = {"server": f"http://127.0.0.1:{self.port}"}
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    # ------------------------------------------------------------ serving

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        status = self.failing.get(request.path)
        if status is not None and request.method == "GET":
            self.failed_at.append(time.monotonic())
            return web.json_response(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": "injected by the test's proxy",
                    "reason": "ServiceUnavailable" if status == 503 else "InternalError",
                    "code": status,
                },
                status=status,
            )
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method,
            self._upstream + request.path_qs,
            headers=headers,
            data=await request.read() if request.can_read_body else None,
            ssl=self._ssl,
            # Forward the request as it came: aiohttp would add a Content-Type of
            # its own to a body without one (the kubernetes client sends none on a
            # POST), which the API server refuses with 415.
            skip_auto_headers=() if "Content-Type" in request.headers else ("Content-Type",),
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS
                },
            )
            await response.prepare(request)
            if request.query.get("watch") in ("true", "1"):
                # A watch stream is one JSON event per line.
                async for line in upstream.content:
                    if not self._hidden(line):
                        await response.write(line)
            else:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            await response.write_eof()
            return response

    def _hidden(self, line: bytes) -> bool:
        if not self.hidden_deletions or b'"DELETED"' not in line:
            return False
        try:
            event = json.loads(line)
        except ValueError:
            return False
        namespace = (event.get("object", {}).get("metadata") or {}).get("namespace")
        return bool(event.get("type") == "DELETED" and namespace in self.hidden_deletions)
