"""Reading an answer's body with a hard cap, on the wire and after decompression.

A server (or anything between it and us) decides how much it sends and how far
its gzip inflates: 300 KiB on the wire can inflate to 600 MiB. So a body is
read chunk by chunk, the wire bytes are counted as they come, and each chunk is
inflated incrementally (`zlib.decompressobj`, never more than the bytes still
allowed at a time), so neither side can make the operator hold more than the
cap. A `Content-Length` above the cap is refused before reading anything.

Only the codings the client asks for (`gzip`, `deflate`) are decoded; an answer
in another coding is `Undecodable`, as the client could not read it anyway.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

#: The default cap: a workflow list is a few KiB; 1 MiB is far above any real one.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class AnswerTooLarge(Exception):
    """The body (as sent, or as decompressed) is larger than the cap."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


class BodyDecodeError(Exception):
    """The body is not valid in its Content-Encoding, or the coding is unknown."""


def check_content_length(value: str | None, limit: int) -> None:
    """Refuse at once an answer that announces more than `limit` bytes."""
    if value is None:
        return
    try:
        length = int(value.strip())
    except ValueError:
        return  # a malformed header is the HTTP library's business
    if length > limit:
        raise AnswerTooLarge(limit)


def _codings(content_encoding: str | None) -> list[str]:
    if not content_encoding:
        return []
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    return [c for c in codings if c != "identity"]


class _Inflater:
    """One coding's incremental decoder (gzip or deflate, zlib- or raw-wrapped)."""

    def __init__(self, coding: str) -> None:
        if coding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
            self._deflate = False
        elif coding == "deflate":
            self._decoder = zlib.decompressobj()
            self._deflate = True  # "deflate" is zlib-wrapped by the RFC, raw in practice too
        else:
            raise BodyDecodeError(f"unsupported Content-Encoding {coding[:40]!r}")
        self._started = False

    def inflate(self, data: bytes, limit: int) -> Iterable[bytes]:
        """The decompressed bytes of `data`, in pieces of at most `limit + 1` bytes."""
        try:
            if self._deflate and not self._started and data:
                self._started = True
                try:
                    probe = zlib.decompressobj()
                    first = probe.decompress(data, limit + 1)
                    self._decoder = probe
                    yield first
                    data = probe.unconsumed_tail
                except zlib.error:
                    self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            while data:
                piece = self._decoder.decompress(data, limit + 1)
                data = self._decoder.unconsumed_tail
                yield piece
        except zlib.error as exc:
            raise BodyDecodeError(
                f"the body is not valid in its Content-Encoding ({exc})"
            ) from None

    def flush(self) -> bytes:
        try:
            return self._decoder.flush()
        except zlib.error as exc:
            raise BodyDecodeError(
                f"the body is not valid in its Content-Encoding ({exc})"
            ) from None


class BoundedBody:
    """Collects one body chunk by chunk; raises `AnswerTooLarge` past `limit`
    wire bytes or `limit` decoded bytes, whichever comes first."""

    def __init__(self, limit: int, content_encoding: str | None) -> None:
        if limit < 1:
            raise ValueError("the body limit must be at least 1 byte")
        self._limit = limit
        codings = _codings(content_encoding)
        if len(codings) > 1:
            raise BodyDecodeError("more than one Content-Encoding is not supported")
        self._inflater = _Inflater(codings[0]) if codings else None
        self._wire = 0
        self._decoded = 0
        self._parts: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        self._wire += len(chunk)
        if self._wire > self._limit:
            raise AnswerTooLarge(self._limit)
        if self._inflater is None:
            self._keep(chunk)
            return
        for piece in self._inflater.inflate(chunk, self._limit - self._decoded):
            self._keep(piece)

    def finish(self) -> bytes:
        """The whole decoded body."""
        if self._inflater is not None:
            self._keep(self._inflater.flush())
        return b"".join(self._parts)

    def _keep(self, piece: bytes) -> None:
        self._decoded += len(piece)
        if self._decoded > self._limit:
            raise AnswerTooLarge(self._limit)
        if piece:
            self._parts.append(piece)
