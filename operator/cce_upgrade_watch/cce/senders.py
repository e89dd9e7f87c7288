"""How `CceClient` puts a signed request on the wire and reads the answer.

httpx stays the request model: `httpx.Request`, `httpx.Response` and `httpx.Auth`
(the signer works on an `httpx.Request`), so signing, parsing and errors do not
depend on what sends. `CceClient` sends with `http11.Http11Sender` (HTTP/1.1
straight on asyncio, about half the CPU of aiohttp per poll), which hands a
request for a proxied host to `AiohttpSender` here. aiohttp (which kopf brings
anyway) also sends the keyless-credential calls and `check`'s: a small GET and
its answer cost about 0.35 ms of CPU with it against 1.7 ms with httpx's own
transport at one request in flight, and 4 ms at 32 in flight (httpcore's pool
scans every connection, with a `select` call each, on every request). For an
operator polling thousands of clusters that is most of its CPU (see
docs/PERFORMANCE.md).

`HttpxSender` keeps httpx's transport for a caller that passes its own
(`CceClient(transport=...)`: tests, special networking).

Proxies come from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY, read
when a host is first called (as httpx's `trust_env`; no .netrc).

Both read the body as a stream through `bodies.BoundedBody`: at most
`max_body_bytes` on the wire and after decompression, an oversized
`Content-Length` refused before a byte of the body is read (`AnswerTooLarge`).
The `httpx.Response` they return holds the decoded body (its Content-Encoding
header removed, so nothing decodes it twice).

Both raise only the exceptions below for what happens on the wire; an HTTP
error status is an answer, not an exception.
"""

from __future__ import annotations

import functools
import os
import ssl
import urllib.request
from collections.abc import Sequence
from typing import Protocol

import aiohttp
import certifi
import httpx
from yarl import URL

from cce_upgrade_watch.cce.bodies import (
    DEFAULT_MAX_BODY_BYTES,
    AnswerTooLarge,
    BodyDecodeError,
    BoundedBody,
    check_content_length,
)

__all__ = [
    "ACCEPT_ENCODING",
    "AiohttpSender",
    "AnswerTooLarge",
    "ConnectionFailed",
    "HttpxSender",
    "NoAnswerInTime",
    "Sender",
    "Undecodable",
    "decoded_response",
    "proxy_for",
    "ssl_context",
]

#: Content codings both ends understand (decoded by `bodies.BoundedBody`).
ACCEPT_ENCODING = "gzip, deflate"

#: What a tenant may be told about a failed connection (`ConnectionFailed.kind`).
COULD_NOT_CONNECT = "could not connect to the endpoint"
TLS_FAILED = "TLS handshake failed"
CONNECTION_DROPPED = "the connection was dropped before a complete answer"


class NoAnswerInTime(Exception):
    """Connecting or reading took longer than the timeout allows."""


class ConnectionFailed(Exception):
    """No answer: refused, reset, dropped or unreachable. The message may hold
    the server's address and is for the operator's log only; `kind` is the
    generic description a tenant may see."""

    def __init__(self, detail: str, kind: str = COULD_NOT_CONNECT) -> None:
        super().__init__(detail)
        self.kind = kind


class Undecodable(Exception):
    """The answer came but its body could not be decoded (Content-Encoding)."""


class Sender(Protocol):
    async def send(self, request: httpx.Request) -> httpx.Response: ...

    async def aclose(self) -> None: ...


def ssl_context() -> ssl.SSLContext:
    """The trust httpx would use: $SSL_CERT_FILE / $SSL_CERT_DIR, else certifi's CAs."""
    cafile = os.environ.get("SSL_CERT_FILE")
    capath = os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


@functools.lru_cache(maxsize=256)
def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy the environment names for this scheme and host (HTTPS_PROXY,
    HTTP_PROXY, ALL_PROXY, NO_PROXY, as httpx honours them), or None."""
    proxies = urllib.request.getproxies_environment()
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if proxies.get("no") and bypass(host, proxies):
        return None
    return proxies.get(scheme) or proxies.get("all")


class AiohttpSender:
    """One aiohttp session (one keep-alive connection pool) for every request.

    The session is opened on first use, inside the running event loop (aiohttp
    wants one), so the client can be created outside of it. Redirects are never
    followed.
    """

    def __init__(
        self,
        timeout: httpx.Timeout,
        max_connections: int,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._max_body_bytes = max_body_bytes
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=timeout.connect,
            # A read timeout per socket read, as httpx's.
            sock_read=timeout.read,
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=ssl_context())
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            # The body is decoded by `BoundedBody`, under the cap.
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
            # aiohttp's own `trust_env` looks up .netrc and the proxy variables in a
            # thread on every request; `proxy_for` reads the variables once per host.
            trust_env=False,
        )
        # aiohttp resends an idempotent request once, at once, when the connection
        # drops; retries belong to CceClient's RetryPolicy alone (counted, with
        # backoff, observed in metrics). No public switch: its own test utilities
        # set this attribute the same way.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self._session

    async def send(self, request: httpx.Request) -> httpx.Response:
        session = self._session or self._open()
        headers = request.headers.multi_items()
        if "accept-encoding" not in request.headers:
            headers.append(("Accept-Encoding", ACCEPT_ENCODING))
        try:
            async with session.request(
                request.method,
                # Exactly the path and query that were signed: no requoting.
                URL(str(request.url), encoded=True),
                headers=headers,
                data=request.content or None,
                allow_redirects=False,
                proxy=proxy_for(request.url.scheme, request.url.host),
            ) as answer:
                try:
                    length = answer.content_length
                    if length is not None and length > self._max_body_bytes:
                        raise AnswerTooLarge(self._max_body_bytes)
                    coding = answer.headers.get("Content-Encoding")
                    if length is not None and not coding:
                        # The usual answer: aiohttp's parser reads exactly Content-Length
                        # bytes, already checked against the cap.
                        content = await answer.read()
                    else:
                        body = BoundedBody(self._max_body_bytes, coding)
                        async for chunk in answer.content.iter_any():
                            body.feed(chunk)
                        content = body.finish()
                except (AnswerTooLarge, BodyDecodeError):
                    answer.close()  # never hand a half-read connection back to the pool
                    raise
                status, raw_headers = answer.status, answer.raw_headers
        except BodyDecodeError as exc:
            raise Undecodable(str(exc)) from None
        except TimeoutError as exc:  # aiohttp's timeouts are TimeoutErrors too
            raise NoAnswerInTime(type(exc).__name__) from None
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}", _kind_of(exc)) from None
        return decoded_response(status, raw_headers, content, request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxSender:
    """httpx's client over a transport the caller chose."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        timeout: httpx.Timeout,
        max_connections: int,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._max_body_bytes = max_body_bytes
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        try:
            answer = await self._http.send(request, stream=True)
            try:
                check_content_length(answer.headers.get("Content-Length"), self._max_body_bytes)
                if answer.is_stream_consumed:
                    # A transport that built its answer from bytes (httpx.MockTransport)
                    # has read and decoded it already: only the cap is left to check.
                    content = answer.content
                    if len(content) > self._max_body_bytes:
                        raise AnswerTooLarge(self._max_body_bytes)
                else:
                    body = BoundedBody(self._max_body_bytes, answer.headers.get("Content-Encoding"))
                    async for chunk in answer.aiter_raw():
                        body.feed(chunk)
                    content = body.finish()
            finally:
                await answer.aclose()
        except BodyDecodeError as exc:
            raise Undecodable(str(exc)) from None
        except httpx.TimeoutException as exc:
            raise NoAnswerInTime(type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{type(exc).__name__}: {exc}", _kind_of(exc)) from None
        return decoded_response(answer.status_code, answer.headers.raw, content, request)

    async def aclose(self) -> None:
        await self._http.aclose()


def decoded_response(
    status: int,
    headers: Sequence[tuple[bytes, bytes]],
    content: bytes,
    request: httpx.Request,
) -> httpx.Response:
    """An `httpx.Response` holding the already decoded body. When the body was
    encoded, the headers that describe its wire form (coding, length, chunking) are
    left out, so nothing decodes it twice; raw bytes headers, as httpx reads them
    cheapest (the usual, unencoded answer is passed through untouched)."""
    if any(name.lower() == b"content-encoding" for name, _ in headers):
        headers = [(name, value) for name, value in headers if name.lower() not in _WIRE_HEADERS]
    return httpx.Response(status, headers=headers, content=content, request=request)


_WIRE_HEADERS = frozenset({b"content-encoding", b"content-length", b"transfer-encoding"})


def _kind_of(exc: BaseException) -> str:
    """What a tenant may be told about a failed connection: that the TLS handshake
    failed, that no connection could be made (refused, unreachable, DNS), or that
    it dropped before a complete answer. Nothing about the address, the port or the
    certificate: that goes to the operator's log only."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | aiohttp.ClientSSLError):
            return TLS_FAILED
        current = current.__cause__ or current.__context__
    if "certificate verify failed" in str(exc).lower() or "ssl" in type(exc).__name__.lower():
        return TLS_FAILED
    if isinstance(exc, aiohttp.ClientConnectorError | httpx.ConnectError | httpx.ProxyError):
        return COULD_NOT_CONNECT
    return CONNECTION_DROPPED
