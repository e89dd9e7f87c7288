"""The operator's two frequent writes to the Kubernetes API, a status patch and an
Event create, sent over aiohttp on the event loop.

When many watches start at once (10,000 new objects, or a restart), each one
costs a status patch, and one mid-upgrade an Event too. Through the official
client, in a thread pool, each write took ~1.7 ms of the operator's CPU
(arguments checked by pydantic, urllib3, the hop to a thread and back) and at
most 8 were in flight; sent here, ~0.75 ms, on the loop (docs/PERFORMANCE.md,
change 23). The official client still loads the configuration (kubeconfig or
in-cluster, with its token refresh) and makes every other call; this module
takes from that same `Configuration` the host, CA, client certificate, bearer
token and proxy, and never reads the environment for more.

What an answer means is `kubeapi.py`'s business: this module hands back the
status code and body, and raises `KubeWriteError` only when no answer came.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import kubernetes

from cce_upgrade_watch import __version__

#: Longest a write may take, connection included. The official client set none:
#: a write that hangs would hold its poll for good.
WRITE_TIMEOUT_SECONDS = 30.0
#: How long a bearer token read through the configuration is reused. Reading it
#: runs the configuration's refresh hook (in a Pod: the projected token file,
#: re-read once it is a minute old), which may block: it runs in a thread.
AUTH_REUSE_SECONDS = 10.0
#: Bodies larger than this are not read (a status answer is a few KB).
MAX_ANSWER_BYTES = 4 * 1024 * 1024
USER_AGENT = f"cce-upgrade-watch/{__version__}"


class KubeWriteError(Exception):
    """No answer came: the connection failed, timed out, or the answer was too large.

    The message names the operation and the kind of failure, never a header."""


@dataclass(frozen=True)
class WriteAnswer:
    status: int
    reason: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class KubeWriter:
    """Status patches and Event creates for the API server `configuration` names."""

    def __init__(
        self,
        configuration: kubernetes.client.Configuration,
        run_blocking: Callable[[Callable[[], dict[str, str]]], Any],
        *,
        max_connections: int = 16,
        timeout: float = WRITE_TIMEOUT_SECONDS,
    ) -> None:
        self._configuration = configuration
        self._run_blocking = run_blocking  # awaitable: runs a call in a thread
        self._host = str(configuration.host).rstrip("/")
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._auth: dict[str, str] = {}
        self._auth_read_at = -AUTH_REUSE_SECONDS
        self._auth_lock: asyncio.Lock | None = None
        self._proxy = _proxy_for(configuration, self._host)

    async def patch_merge(self, path: str, body: Mapping[str, Any]) -> WriteAnswer:
        return await self._send("PATCH", path, body, "application/merge-patch+json")

    async def post(self, path: str, body: Mapping[str, Any]) -> WriteAnswer:
        return await self._send("POST", path, body, "application/json")

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send(
        self, method: str, path: str, body: Mapping[str, Any], content_type: str
    ) -> WriteAnswer:
        data = json.dumps(body, separators=(",", ":")).encode()
        answer = await self._once(method, path, data, content_type, await self._auth_headers())
        if answer.status == 401:
            # The token may have been rotated since it was read: read it again, once.
            answer = await self._once(
                method, path, data, content_type, await self._auth_headers(fresh=True)
            )
        return answer

    async def _once(
        self, method: str, path: str, data: bytes, content_type: str, auth: Mapping[str, str]
    ) -> WriteAnswer:
        headers = {
            "Content-Type": content_type,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **auth,
        }
        extra: dict[str, Any] = {}
        if self._proxy is not None:
            extra["proxy"] = self._proxy
            if self._configuration.proxy_headers:
                extra["proxy_headers"] = dict(self._configuration.proxy_headers)
        if self._configuration.tls_server_name:
            extra["server_hostname"] = self._configuration.tls_server_name
        try:
            async with self._http().request(
                method, self._host + path, data=data, headers=headers, **extra
            ) as response:
                if (response.content_length or 0) > MAX_ANSWER_BYTES:
                    raise KubeWriteError(f"{method} answer of {response.content_length} bytes")
                raw = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    raw += chunk
                    if len(raw) > MAX_ANSWER_BYTES:
                        raise KubeWriteError(f"{method} answer over {MAX_ANSWER_BYTES} bytes")
                return WriteAnswer(response.status, response.reason or "", bytes(raw))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # The exception's text may quote the URL; the type says enough.
            raise KubeWriteError(
                f"the Kubernetes API did not answer a {method} ({type(exc).__name__})"
            ) from None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    ssl=_ssl_context(self._configuration, self._host),
                    limit=self._max_connections,
                ),
                timeout=self._timeout,
                # The environment's proxies and .netrc are the client's
                # configuration's business (it has none of them): not read again
                # here, which also spares two thread hops per request.
                trust_env=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def _auth_headers(self, *, fresh: bool = False) -> dict[str, str]:
        if self._auth_lock is None:
            self._auth_lock = asyncio.Lock()
        async with self._auth_lock:
            now = time.monotonic()
            if fresh or now - self._auth_read_at >= AUTH_REUSE_SECONDS:
                self._auth = await self._run_blocking(self._read_auth_headers)
                self._auth_read_at = now
            return self._auth

    def _read_auth_headers(self) -> dict[str, str]:
        """The headers the official client would send (its `auth_settings`)."""
        headers: dict[str, str] = {}
        settings: Mapping[str, Any] = self._configuration.auth_settings()
        for setting in settings.values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[str(setting["key"])] = str(setting["value"])
        return headers


def _ssl_context(
    configuration: kubernetes.client.Configuration, host: str
) -> ssl.SSLContext | bool:
    """The TLS the official client would use: its CA (or the system's), its client
    certificate, its `verify_ssl` and `assert_hostname`. True (aiohttp's default,
    unused) for plain HTTP."""
    if not host.startswith("https:"):
        return True
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    return context


def _proxy_for(configuration: kubernetes.client.Configuration, host: str) -> str | None:
    proxy = configuration.proxy
    if not proxy:
        return None
    if configuration.no_proxy and kubernetes.client.rest.should_bypass_proxies(
        host, configuration.no_proxy
    ):
        return None
    return str(proxy)
