"""`Http11Sender`: keep-alive HTTP/1.1 straight on an asyncio protocol.

Why: a poll is one small GET and one small answer on a kept-alive connection,
and aiohttp's client spends most of a poll's CPU on what such a request never
needs (its session and request objects, multidict headers, yarl URLs, cookie
jar, tracing, redirects, timeout contexts). This sender writes the signed
`httpx.Request` (method, the exact path and query that were signed, its headers,
Host included, and its body) in one write, and parses the answer with
`httptools` (the C parser llhttp, as Node.js uses), so the CPU of a poll is the
signing, the parse and the kernel (docs/PERFORMANCE.md, change 18).

What it keeps from `AiohttpSender`, so that nothing a server does changes:
- the same trust (`senders.ssl_context`), TLS with the host's name checked;
- a connect timeout and a per-read timeout (`CceClient` adds the attempt's
  overall deadline around it);
- the body under the cap: an oversized Content-Length refused before the body
  is read, chunked and gzip/deflate bodies through `bodies.BoundedBody`; the
  status line and headers under `MAX_HEAD_BYTES`;
- the same exceptions (`NoAnswerInTime`, `ConnectionFailed` with its generic
  `kind`, `Undecodable`, `AnswerTooLarge`);
- no redirect followed, no retry on a dropped connection (`CceClient` retries).

Idle connections are kept per (scheme, host, port), newest first, at most
`max_connections` per host, each for at most `KEEPALIVE_SECONDS` idle (as
aiohttp's default), so an idle connection is never reused just as the server
gives up on it. A connection whose answer was not read to its end (a timeout,
a cancellation, an error) is closed, never reused.

A request the environment sends through a proxy (HTTPS_PROXY and the rest,
`senders.proxy_for`) goes through `AiohttpSender`, which speaks to proxies.
"""

from __future__ import annotations

import asyncio
import ssl
import time

import httptools
import httpx

from cce_upgrade_watch.cce.bodies import (
    DEFAULT_MAX_BODY_BYTES,
    AnswerTooLarge,
    BodyDecodeError,
    BoundedBody,
)
from cce_upgrade_watch.cce.senders import (
    ACCEPT_ENCODING,
    CONNECTION_DROPPED,
    COULD_NOT_CONNECT,
    TLS_FAILED,
    AiohttpSender,
    ConnectionFailed,
    NoAnswerInTime,
    Undecodable,
    decoded_response,
    proxy_for,
    ssl_context,
)

__all__ = ["KEEPALIVE_SECONDS", "MAX_HEAD_BYTES", "Http11Sender"]

#: The most bytes the status line and headers of one answer may take.
MAX_HEAD_BYTES = 64 * 1024
#: How long an idle connection is kept for reuse (aiohttp's default too).
KEEPALIVE_SECONDS = 15.0

_DEFAULT_PORTS = {"http": 80, "https": 443}
_NO_BODY_STATUSES = frozenset({204, 304})

_Key = tuple[str, str, int]
_Answer = tuple[int, list[tuple[bytes, bytes]], bytes, bool]


class _Failed(Exception):
    """Raised inside a parser callback to stop the parse; the reason is kept."""


class _Connection(asyncio.Protocol):
    """One connection: one request at a time, its answer parsed as it arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float | None, cap: int):
        self._loop = loop
        self._read_timeout = read_timeout
        self._cap = cap
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[_Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0  # bytes fed before the head was complete
        self._header_bytes = 0  # the headers' own bytes
        self._head_done = False
        self._body: BoundedBody | None = None
        self._until_eof = False
        self._error: BaseException | None = None

    # -- the exchange ----------------------------------------------------------

    async def exchange(self, head: bytes, content: bytes) -> _Answer:
        """Send one request and wait for its whole answer."""
        if self.closed or self.transport is None or self.transport.is_closing():
            raise ConnectionFailed("the connection was closed", CONNECTION_DROPPED)
        self._reset()
        waiter: asyncio.Future[_Answer] = self._loop.create_future()
        self._waiter = waiter
        self.transport.write(head + content if content else head)
        if self._read_timeout is not None:
            self._last_read = self._loop.time()
            self._timer = self._loop.call_at(
                self._last_read + self._read_timeout, self._check_read_timeout
            )
        try:
            return await waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _check_read_timeout(self) -> None:
        assert self._read_timeout is not None
        due = self._last_read + self._read_timeout
        if self._loop.time() < due:  # something was read since: wait from then
            self._timer = self._loop.call_at(due, self._check_read_timeout)
            return
        self._timer = None
        self._fail(NoAnswerInTime("ReadTimeout"))

    def _fail(self, error: BaseException) -> None:
        self.abort()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for: the connection's state is unknown.
            self.abort()
            return
        if self._read_timeout is not None:
            self._last_read = self._loop.time()
        if not self._head_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ConnectionFailed("the server switched protocols", CONNECTION_DROPPED))
        except httptools.HttpParserError as exc:
            error = self._error or ConnectionFailed(
                f"malformed HTTP answer: {exc}", CONNECTION_DROPPED
            )
            self._fail(error)
        else:
            if not self._head_done and self._head_bytes > MAX_HEAD_BYTES:
                self._fail(_too_large_head())

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if exc is None and self._head_done and self._until_eof:
            self._complete(keep_alive=False)  # the body ends where the connection does
            return
        reason = f"{type(exc).__name__}: {exc}" if exc else "closed by the server"
        waiter.set_exception(
            ConnectionFailed(f"connection lost before a complete answer ({reason})", _kind(exc))
        )

    # -- httptools callbacks -------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._waiter is None or self._waiter.done():
            # A second answer to one request: the connection's state is unknown.
            self._stop(ConnectionFailed("an answer nobody asked for", CONNECTION_DROPPED))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEAD_BYTES:
            self._stop(_too_large_head())
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._head_done = True
        self._status = self._parser.get_status_code()
        length: int | None = None
        coding: str | None = None
        chunked = False
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None  # llhttp refuses a malformed one itself
            elif lowered == b"content-encoding":
                coding = value.decode("latin-1")
            elif lowered == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if length is not None and length > self._cap:
            self._stop(AnswerTooLarge(self._cap))
        try:
            self._body = BoundedBody(self._cap, coding)
        except BodyDecodeError as exc:
            self._stop(Undecodable(str(exc)))
        self._until_eof = (
            length is None
            and not chunked
            and self._status >= 200
            and self._status not in _NO_BODY_STATUSES
        )

    def on_body(self, body: bytes) -> None:
        assert self._body is not None
        try:
            self._body.feed(body)
        except AnswerTooLarge as exc:
            self._stop(exc)
        except BodyDecodeError as exc:
            self._stop(Undecodable(str(exc)))

    def on_message_complete(self) -> None:
        if self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._reset()
            return
        self._complete(keep_alive=self._parser.should_keep_alive())

    def _complete(self, keep_alive: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            content = self._body.finish() if self._body is not None else b""
        except AnswerTooLarge as exc:
            self._fail(exc)
            return
        except BodyDecodeError as exc:
            self._fail(Undecodable(str(exc)))
            return
        waiter.set_result((self._status, self._headers, content, keep_alive))

    def _stop(self, error: BaseException) -> None:
        self._error = error
        raise _Failed  # httptools turns it into HttpParserCallbackError


def _too_large_head() -> ConnectionFailed:
    return ConnectionFailed(
        f"the answer's headers are larger than {MAX_HEAD_BYTES} bytes", CONNECTION_DROPPED
    )


def _kind(exc: BaseException | None) -> str:
    if isinstance(exc, ssl.SSLError):
        return TLS_FAILED
    return CONNECTION_DROPPED


def request_head(request: httpx.Request) -> bytes:
    """The request line and headers of `request`, as signed (Host included)."""
    parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
    accept_encoding = False
    for name, value in request.headers.raw:
        if b"\r" in value or b"\n" in value or b"\r" in name or b"\n" in name:
            raise ValueError("a header must not contain a line break")
        if not accept_encoding and name.lower() == b"accept-encoding":
            accept_encoding = True
        parts += (name, b": ", value, b"\r\n")
    if not accept_encoding:
        parts.append(b"Accept-Encoding: " + ACCEPT_ENCODING.encode("ascii") + b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class Http11Sender:
    """Keep-alive HTTP/1.1 for every request the environment does not proxy."""

    def __init__(
        self,
        timeout: httpx.Timeout,
        max_connections: int,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._connect_timeout = timeout.connect
        self._read_timeout = timeout.read
        self._max_connections = max_connections
        self._cap = max_body_bytes
        self._idle: dict[_Key, list[_Connection]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._via_proxy = AiohttpSender(timeout, max_connections, max_body_bytes)

    async def send(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS or proxy_for(scheme, url.host) is not None:
            return await self._via_proxy.send(request)
        key = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        head = request_head(request)
        connection = self._idle_connection(key) or await self._connect(key)
        try:
            status, headers, content, keep_alive = await connection.exchange(head, request.content)
        except BaseException:
            connection.abort()  # its answer was not read to the end
            raise
        if keep_alive and not connection.closed:
            self._park(key, connection)
        else:
            connection.abort()
        return decoded_response(status, headers, content, request)

    def _idle_connection(self, key: _Key) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_allowed = time.monotonic() - KEEPALIVE_SECONDS
        while idle:
            connection = idle.pop()
            if connection.closed or connection.idle_since < oldest_allowed:
                connection.abort()
                continue
            assert connection.transport is not None
            if connection.transport.is_closing():
                connection.closed = True
                continue
            return connection
        return None

    def _park(self, key: _Key, connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        now = time.monotonic()
        connection.idle_since = now
        # The oldest are first: let the expired ones go (their sockets too).
        expired = 0
        while expired < len(idle) and (
            idle[expired].closed or idle[expired].idle_since < now - KEEPALIVE_SECONDS
        ):
            idle[expired].abort()
            expired += 1
        if expired:
            del idle[:expired]
        if len(idle) >= self._max_connections:
            connection.abort()
            return
        idle.append(connection)

    async def _connect(self, key: _Key) -> _Connection:
        scheme, host, port = key
        where = f"{scheme}://{host}:{port}"  # for the operator's log only
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            tls = self._ssl = self._ssl or ssl_context()
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self._read_timeout, self._cap),
                    host,
                    port,
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                    happy_eyeballs_delay=0.25,
                )
        except TimeoutError:
            raise NoAnswerInTime("ConnectTimeout") from None
        except ssl.SSLError as exc:  # certificate verification failures included
            raise ConnectionFailed(f"{where}: {type(exc).__name__}: {exc}", TLS_FAILED) from None
        except OSError as exc:
            raise ConnectionFailed(
                f"{where}: {type(exc).__name__}: {exc}", COULD_NOT_CONNECT
            ) from None
        return connection

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.abort()
        self._idle.clear()
        await self._via_proxy.aclose()
