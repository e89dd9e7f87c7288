"""The /metrics endpoint, served by aiohttp inside the operator's event loop.

prometheus-client's own `start_http_server` runs `socketserver.serve_forever` in
a thread that wakes twice a second to check for shutdown, whether or not anyone
scrapes: at N=1000 that thread was an eighth of the idle operator's CPU
(docs/PERFORMANCE.md). aiohttp (already the operator's HTTP stack: kopf's
liveness endpoint and the CCE client) costs nothing between requests. A scrape
renders the registry in a worker thread, so a large exposition does not hold up
the polls.

The answer is what prometheus-client's WSGI app gives: the Prometheus text
format, or OpenMetrics when the scraper asks for it (`Accept`), gzip when
accepted, `name[]` to restrict the output, on any path.

The socket is bound before the event loop starts (`bind`), so a port in use
fails the start at once, as before.
"""

from __future__ import annotations

import asyncio
import gzip
import socket

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, gzip_accepted

__all__ = ["bind", "serve"]


def bind(port: int, address: str) -> socket.socket:
    """A listening socket on `address`:`port` (IPv6 when `address` is one)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family, backlog=128)


def _app(registry: CollectorRegistry) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        if request.method == "OPTIONS":
            return web.Response(headers={"Allow": "OPTIONS,GET"})
        if request.method not in ("GET", "HEAD"):
            return web.Response(
                status=405,
                headers={"Allow": "OPTIONS,GET"},
                text=f"# HTTP 405 Method Not Allowed: {request.method}; use OPTIONS or GET\n",
            )
        if request.path == "/favicon.ico":
            return web.Response(body=b"")
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        names = request.query.getall("name[]", [])
        source = registry.restricted_registry(names) if names else registry
        output = await asyncio.to_thread(encoder, source)
        headers = {"Content-Type": content_type}
        if gzip_accepted(request.headers.get("Accept-Encoding", "")):
            output = gzip.compress(output)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=output, headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", metrics)
    return app


async def serve(registry: CollectorRegistry, sock: socket.socket) -> web.AppRunner:
    """Serve `registry` on `sock` until the returned runner is cleaned up."""
    runner = web.AppRunner(_app(registry), access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner
