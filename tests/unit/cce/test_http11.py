"""`Http11Sender` against a real socket server on 127.0.0.1 that writes raw bytes.

The client tests (`test_client.py`, `tests/integration/simulator/test_client_hostile.py`)
run through this sender too; these are the wire cases only a raw server can
produce: answers in pieces, bodies that end with the connection, oversized or
endless headers, answers nobody asked for, connections closed while idle.
"""

from __future__ import annotations

import asyncio
import gzip
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from cce_upgrade_watch.cce import senders
from cce_upgrade_watch.cce.bodies import AnswerTooLarge
from cce_upgrade_watch.cce.http11 import MAX_HEAD_BYTES, Http11Sender, request_head
from cce_upgrade_watch.cce.senders import (
    CONNECTION_DROPPED,
    COULD_NOT_CONNECT,
    TLS_FAILED,
    ConnectionFailed,
    NoAnswerInTime,
)
from tests.support.tls import self_signed
from tests.support.waiting import async_wait_until

TIMEOUT = httpx.Timeout(5.0)
JSON = b'{"items": []}'

# What the server does with one request on one connection: write to it, and say
# whether the connection stays open for the next request.
Answer = Callable[[asyncio.StreamWriter], Awaitable[bool]]


def plain(body: bytes = JSON, extra: bytes = b"") -> Answer:
    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + extra
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )
        await writer.drain()
        return True

    return answer


class RawServer:
    """Answers each request with the next `Answer` (the last one repeats)."""

    def __init__(self, *answers: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answers = list(answers) or [plain()]
        self.tls = tls
        self.requests: list[bytes] = []  # the request heads, as they came
        self.connections = 0
        self.closed_connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}/autopilot/v3/x?a=b"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.requests.append(head)
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
                if not await answer(writer):
                    return
        except asyncio.CancelledError:
            return  # the test is over (a cancelled handler is logged as an error on 3.11)
        finally:
            writer.close()
            self.closed_connections += 1

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
async def sender() -> AsyncIterator[Http11Sender]:
    sender = Http11Sender(TIMEOUT, max_connections=4)
    yield sender
    await sender.aclose()


async def serve(*answers: Answer) -> RawServer:
    return await RawServer(*answers).start()


async def get(sender: Http11Sender, url: str) -> httpx.Response:
    return await sender.send(httpx.Request("GET", url, headers={"Accept": "application/json"}))


async def test_sends_the_signed_request_line_and_headers_and_keeps_the_connection(
    sender: Http11Sender,
) -> None:
    server = await serve()
    for _ in range(3):
        answer = await get(sender, server.url())
        assert answer.status_code == 200
        assert answer.content == JSON
    assert server.connections == 1
    head = server.requests[0].decode()
    assert head.startswith("GET /autopilot/v3/x?a=b HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head
    assert "accept-encoding: gzip, deflate\r\n" in head.lower()
    await server.stop()


async def test_a_chunked_gzip_answer_in_pieces_is_decoded(sender: Http11Sender) -> None:
    body = gzip.compress(JSON * 100)

    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n")
        await writer.drain()
        writer.write(b"Transfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 7):
            piece = body[start : start + 7]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    server = await serve(answer)
    response = await get(sender, server.url())
    assert response.content == JSON * 100
    assert "content-encoding" not in response.headers  # decoded once, here
    await get(sender, server.url())
    assert server.connections == 1  # a chunked answer read to its end keeps the connection
    await server.stop()


async def test_an_answer_that_ends_with_the_connection_is_read_to_its_end(
    sender: Http11Sender,
) -> None:
    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + JSON)
        await writer.drain()
        return False  # the body ends where the connection does

    server = await serve(answer)
    assert (await get(sender, server.url())).content == JSON
    assert (await get(sender, server.url())).content == JSON
    assert server.connections == 2
    await server.stop()


async def test_headers_beyond_the_cap_are_refused(sender: Http11Sender) -> None:
    many = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"x" * 1000) for n in range(70))
    server = await serve(plain(extra=many))
    with pytest.raises(ConnectionFailed, match="headers are larger") as caught:
        await get(sender, server.url())
    assert caught.value.kind == CONNECTION_DROPPED
    await server.stop()


async def test_an_endless_header_is_refused_before_it_ends(sender: Http11Sender) -> None:
    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nX-Endless: ")
        for _ in range(MAX_HEAD_BYTES // 4096 + 2):
            writer.write(b"y" * 4096)
            await writer.drain()
        await asyncio.Event().wait()  # never ends the line
        return False

    server = await serve(answer)
    with pytest.raises(ConnectionFailed, match="headers are larger"):
        async with asyncio.timeout(4):  # well before the 5 s read timeout
            await get(sender, server.url())
    await server.stop()


async def test_an_oversized_content_length_is_refused_before_the_body(
    sender: Http11Sender,
) -> None:
    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (50 * 1024 * 1024))
        await writer.drain()
        await asyncio.Event().wait()  # the body never comes: it is not waited for
        return False

    server = await serve(answer)
    with pytest.raises(AnswerTooLarge):
        async with asyncio.timeout(4):
            await get(sender, server.url())
    await server.stop()


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n")  # then nothing
        await writer.drain()
        await asyncio.Event().wait()
        return False

    server = await serve(answer)
    sender = Http11Sender(httpx.Timeout(5.0, read=0.3), max_connections=1)
    with pytest.raises(NoAnswerInTime):
        await get(sender, server.url())
    await sender.aclose()
    await server.stop()


async def test_a_second_answer_nobody_asked_for_closes_the_connection(
    sender: Http11Sender,
) -> None:
    double = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(JSON), JSON)

    async def answer(writer: asyncio.StreamWriter) -> bool:
        writer.write(double + double)
        await writer.drain()
        return True

    server = await serve(answer, plain())
    assert (await get(sender, server.url())).content == JSON
    assert (await get(sender, server.url())).content == JSON
    assert server.connections == 2  # the first was not reused
    await server.stop()


async def test_a_connection_the_server_closed_while_idle_is_not_reused(
    sender: Http11Sender,
) -> None:
    async def answer_then_close(writer: asyncio.StreamWriter) -> bool:
        await plain()(writer)
        return False  # closes the connection, with no word in the headers

    server = await serve(answer_then_close, plain())
    await get(sender, server.url())

    async def both_sides_closed() -> bool:
        idle = [c for connections in sender._idle.values() for c in connections]
        return server.closed_connections == 1 and all(c.closed for c in idle)

    await async_wait_until(
        both_sides_closed,
        timeout=5,
        message="the client never saw the server close the connection",
    )
    assert (await get(sender, server.url())).content == JSON
    assert server.connections == 2
    await server.stop()


async def test_an_idle_connection_is_kept_no_longer_than_the_keepalive(
    monkeypatch: pytest.MonkeyPatch, sender: Http11Sender
) -> None:
    server = await serve()
    await get(sender, server.url())
    monkeypatch.setattr("cce_upgrade_watch.cce.http11.KEEPALIVE_SECONDS", 0.0)
    await get(sender, server.url())
    assert server.connections == 2
    await server.stop()


async def test_a_cancelled_request_closes_its_connection(sender: Http11Sender) -> None:
    async def never(writer: asyncio.StreamWriter) -> bool:
        await asyncio.Event().wait()
        return False

    server = await serve(never, plain())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await get(sender, server.url())
    assert (await get(sender, server.url())).content == JSON
    assert server.connections == 2  # the half-answered connection was not reused
    await server.stop()


async def test_a_refused_connection_could_not_connect(sender: Http11Sender) -> None:
    server = await serve()
    url = server.url()
    await server.stop()
    if server._server is not None:
        await server._server.wait_closed()
    with pytest.raises(ConnectionFailed) as caught:
        await get(sender, url)
    assert caught.value.kind == COULD_NOT_CONNECT
    assert "127.0.0.1" in str(caught.value)  # for the operator's log, not the tenant


def test_a_line_break_in_a_header_is_refused() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/x", headers={"X-A": "1"})
    request.headers["X-B"] = "a\r\nInjected: yes"
    with pytest.raises(ValueError, match="line break"):
        request_head(request)


async def test_a_proxied_host_goes_through_aiohttp(
    monkeypatch: pytest.MonkeyPatch, sender: Http11Sender
) -> None:
    proxy = await serve()  # answers like a forward proxy would
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    senders.proxy_for.cache_clear()
    try:
        answer = await get(sender, "http://upstream.invalid:8080/autopilot/v3/x")
    finally:
        senders.proxy_for.cache_clear()
    assert answer.content == JSON
    # The absolute form: the request went to the proxy, for the proxy to forward.
    assert proxy.requests[0].startswith(b"GET http://upstream.invalid:8080/autopilot/v3/x ")
    await proxy.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    key, cert = self_signed(directory, "cce-upgrade-watch-test")
    return key, cert


def _server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certificate[1]), str(certificate[0]))
    return context


async def test_tls_with_the_trusted_certificate_keeps_the_connection(
    monkeypatch: pytest.MonkeyPatch, certificate: tuple[Path, Path]
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[1]))
    server = await RawServer(tls=_server_tls(certificate)).start()
    sender = Http11Sender(TIMEOUT, max_connections=2)
    for _ in range(3):
        assert (await get(sender, server.url())).content == JSON
    assert server.connections == 1
    await sender.aclose()
    await server.stop()


@pytest.mark.parametrize("trusted", [False, True], ids=["untrusted", "wrong-name"])
async def test_tls_fails_for_an_untrusted_or_misnamed_certificate(
    monkeypatch: pytest.MonkeyPatch, certificate: tuple[Path, Path], trusted: bool
) -> None:
    if trusted:
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[1]))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    server = await RawServer(tls=_server_tls(certificate)).start()
    sender = Http11Sender(TIMEOUT, max_connections=2)
    # The certificate names 127.0.0.1 only: "localhost" is the wrong name for it.
    host = "localhost" if trusted else "127.0.0.1"
    with pytest.raises(ConnectionFailed) as caught:
        await get(sender, server.url(host))
    assert caught.value.kind == TLS_FAILED
    assert server.requests == []
    await sender.aclose()
    await server.stop()
