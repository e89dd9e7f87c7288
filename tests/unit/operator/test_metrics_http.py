"""The /metrics endpoint on aiohttp (`metrics_http`): what prometheus-client's
own server answered, without its thread that wakes twice a second."""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from cce_upgrade_watch import metrics_http


@pytest.fixture
async def served() -> AsyncIterator[str]:
    registry = CollectorRegistry()
    Counter("demo_polls", "Polls.", registry=registry).inc(3)
    Gauge("demo_watches", "Watches.", registry=registry).set(7)
    sock = metrics_http.bind(0, "127.0.0.1")
    port = sock.getsockname()[1]
    runner = await metrics_http.serve(registry, sock)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    headers.setdefault("Accept-Encoding", "identity")
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers=headers) as answer,
    ):
        return answer.status, dict(answer.headers), await answer.read()


async def test_the_text_format_on_any_path(served: str) -> None:
    for path in ("/metrics", "/"):
        status, headers, body = await get(served + path)
        assert status == 200
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"demo_polls_total 3.0" in body
        assert b"demo_watches 7.0" in body


async def test_openmetrics_when_the_scraper_asks_for_it(served: str) -> None:
    status, headers, body = await get(
        served + "/metrics", Accept="application/openmetrics-text; version=1.0.0"
    )
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


async def test_gzip_when_accepted(served: str) -> None:
    status, headers, body = await get(served + "/metrics", **{"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert b"demo_polls_total 3.0" in gzip.decompress(body)


async def test_name_restricts_the_output(served: str) -> None:
    _, _, body = await get(served + "/metrics?name[]=demo_watches")
    assert b"demo_watches 7.0" in body
    assert b"demo_polls" not in body


async def test_only_get_is_served(served: str) -> None:
    async with aiohttp.ClientSession() as session, session.post(served + "/metrics") as answer:
        assert answer.status == 405
        assert answer.headers["Allow"] == "OPTIONS,GET"


async def test_no_thread_serves_it_between_scrapes(served: str) -> None:
    await get(served + "/metrics")
    # prometheus-client's server is a thread running `serve_forever`, which wakes
    # twice a second to look for a shutdown request.
    assert not any("serve_forever" in thread.name for thread in threading.enumerate())


def test_a_port_in_use_fails_at_bind() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as taken,
        pytest.raises(OSError, match="in use"),
    ):
        metrics_http.bind(taken.getsockname()[1], "127.0.0.1")
