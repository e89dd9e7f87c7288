"""SDK-HMAC-SHA256, the AK/SK request signature of Huawei Cloud APIs.

Pure functions, shared by the client's `httpx.Auth` (which signs) and the
simulator (which recomputes the signature to check it). The steps follow
`huaweicloudsdkcore.signer.signer.Signer` byte for byte; the numbered comments
refer to the steps in the project's API notes. Two SDK details the notes leave
out are reproduced: the whole path is URL-decoded before it is split (so `%2F`
separates segments), and an empty body is hashed as such even when
`X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` is sent. `tests/unit/cce/
test_signing_vs_sdk.py` compares the result with the SDK on hundreds of requests.

To verify a request server-side, pass the raw path, the decoded query pairs
(`parse_qsl(raw_query, keep_blank_values=True)`), the headers named in the
`SignedHeaders` of the `Authorization` header (`parse_authorization`) and the
raw body, then compare `signature` with `hmac.compare_digest`.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
CONTENT_SHA256_HEADER = "X-Sdk-Content-Sha256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def format_sdk_date(moment: datetime | None = None) -> str:
    """The `X-Sdk-Date` value for `moment` (default: now), always in UTC."""
    moment = moment or datetime.now(UTC)
    # Formatted once per second: the polls of one tick of the poll grid share it.
    return _sdk_date_of(math.floor(moment.timestamp()))


@functools.lru_cache(maxsize=4)
def _sdk_date_of(epoch_second: int) -> str:
    return time.strftime(DATE_FORMAT, time.gmtime(epoch_second))


def _encode(text: str) -> str:
    # Only RFC 3986 unreserved characters stay bare ("~" included), as the SDK does.
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Step 4: decode, re-encode each segment, and end with a slash.

    The whole path is decoded before it is split, as the SDK does, so an
    encoded slash (`%2F`) becomes a separator rather than part of a segment.
    """
    segments = [_encode(segment) for segment in unquote(path).split("/")]
    uri = "/".join(segments)
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Step 5: pairs sorted by key then value, each side percent-encoded."""
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        grouped.setdefault(key, []).append(value)
    parts: list[str] = []
    for key in sorted(grouped):
        for value in sorted(grouped[key]):
            parts.append(f"{_encode(key)}={_encode(value)}")
    return "&".join(parts)


def signed_header_names(headers: Mapping[str, str]) -> list[str]:
    """Step 3: every header without an underscore, lowercased and sorted."""
    return sorted(name.lower() for name in headers if "_" not in name)


def needs_unsigned_payload(content_type: str | None) -> bool:
    """Step 2: bodies that are neither JSON nor BSON are not hashed.

    Like the SDK, the test is case-sensitive and a missing Content-Type needs nothing.
    """
    if not content_type:
        return False
    return not (
        content_type.startswith("application/json") or content_type.startswith("application/bson")
    )


@dataclass(frozen=True)
class Signature:
    signed_headers: str
    signature: str
    canonical_request: str

    def authorization(self, access_key: str) -> str:
        """Step 11: the `Authorization` header value."""
        return (
            f"{ALGORITHM} Access={access_key}, SignedHeaders={self.signed_headers}, "
            f"Signature={self.signature}"
        )


def sign(
    *,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    body: bytes,
    secret_key: str,
) -> Signature:
    """Steps 3-10 over a request whose headers already include `X-Sdk-Date`.

    `headers` must hold every header that is sent and signed (Host, X-Sdk-Date,
    X-Project-Id, Content-Type, ...); names are matched case-insensitively.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    names = signed_header_names(headers)
    canonical_headers = "".join(f"{name}:{lowered[name].strip()}\n" for name in names)
    signed_headers = ";".join(names)
    # Step 7. The SDK hashes an empty body even when UNSIGNED-PAYLOAD is declared.
    if not body:
        payload_hash = EMPTY_BODY_SHA256
    else:
        payload_hash = (
            lowered.get(CONTENT_SHA256_HEADER.lower()) or hashlib.sha256(body).hexdigest()
        )
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query(query),
            canonical_headers,
            signed_headers,
            payload_hash,
        ]
    )
    sdk_date = lowered.get(DATE_HEADER.lower(), "")
    string_to_sign = "\n".join(
        [ALGORITHM, sdk_date, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    signature = hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return Signature(signed_headers, signature, canonical_request)


def parse_authorization(value: str) -> tuple[str, str, str] | None:
    """Split an `Authorization` header into (access key, signed headers, signature)."""
    prefix = ALGORITHM + " "
    if not value.startswith(prefix):
        return None
    fields: dict[str, str] = {}
    for part in value[len(prefix) :].split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val
    try:
        return fields["Access"], fields["SignedHeaders"], fields["Signature"]
    except KeyError:
        return None
