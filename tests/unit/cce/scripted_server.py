"""A real HTTP server on 127.0.0.1 that answers from a script, for client tests.

Each request takes the next `Reply` from the script (the last one repeats), and
is recorded as a `Seen`. A reply can drop the connection instead of answering,
or hold until the test releases it, which is how concurrency is observed
without sleeping. Runs in threads, so async tests (the client) and sync tests
(`check`, which runs its own event loop) can both use it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: bytes | str | Mapping[str, Any] | list[Any] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Close the connection without answering (a dropped connection).
    drop: bool = False
    #: Wait in the handler until the test calls `ScriptedServer.release_one()`.
    hold: bool = False

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    method: str
    raw_path: str  # path and query exactly as they came on the wire
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival
    client_port: int  # one port per connection: tells keep-alive from new connections

    @property
    def path(self) -> str:
        return self.raw_path.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.raw_path.split("?", 1)[1] if "?" in self.raw_path else ""


class ScriptedServer:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._script: list[Reply] = [Reply(200, {"kind": "List", "apiVersion": "v3", "items": []})]
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._held: list[threading.Event] = []
        self._closing = False
        #: Called on each request before answering; may return a Reply that overrides the script.
        self.inspect: Callable[[Seen], Reply | None] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real API gateway

            def do_GET(self) -> None:
                server._handle(self)

            do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._closing = True
            for event in self._held:
                event.set()
            self._lock.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with `replies`, in order; the last one repeats."""
        with self._lock:
            self._script = list(replies)

    def wait_for(self, predicate: Callable[[ScriptedServer], bool], timeout: float = 10.0) -> None:
        """Block until `predicate(self)` holds (checked on every state change)."""
        with self._lock:
            if not self._lock.wait_for(lambda: predicate(self), timeout):
                raise TimeoutError("the server never reached the expected state")

    def release_one(self) -> None:
        """Let the oldest held request answer."""
        with self._lock:
            self._held.pop(0).set()

    @property
    def held(self) -> int:
        return len(self._held)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        seen = Seen(
            method=handler.command,
            raw_path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(length) if length else b"",
            at=time.monotonic(),
            client_port=handler.client_address[1],
        )
        with self._lock:
            self.seen.append(seen)
            reply = self._script.pop(0) if len(self._script) > 1 else self._script[0]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            release = threading.Event()
            if reply.hold and not self._closing:
                self._held.append(release)
            self._lock.notify_all()
        answered = False
        try:
            if reply.hold:
                release.wait(timeout=30)
            override = self.inspect(seen) if self.inspect else None
            # Out of flight before the answer leaves: once the client has it, it may
            # send its next request, which must not be counted alongside this one.
            self._leave_flight()
            answered = True
            self._answer(handler, override or reply)
        finally:
            if not answered:
                self._leave_flight()

    def _leave_flight(self) -> None:
        with self._lock:
            self.in_flight -= 1
            self._lock.notify_all()

    @staticmethod
    def _answer(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        if reply.drop:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        body = reply.encoded()
        handler.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or drop connections on purpose make writes fail
        # here; that is the test working, not a failure to print.
        pass


def running_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()
