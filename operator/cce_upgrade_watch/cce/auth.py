"""Authentication of CCE requests as `httpx.Auth` flows: an IAM token, or AK/SK.

Both are per request, so one shared `httpx.AsyncClient` serves objects with
different credentials: pass the auth to each call.

`AkSkAuth` signs what goes on the wire. It rewrites the query string into the
canonical form it signs (as the official SDK sends it), so the server
recomputes the same string whatever encoding the caller used (`+` or `%20` for
a space, any key order). The path is signed as httpx sends it, after httpx has
encoded it and removed dot segments.

Neither class ever shows a secret: `repr()` masks it, and every value is
checked in the constructor so a bad one fails here, without being echoed, and
not later inside the HTTP stack, whose errors would quote the header.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import UTC, datetime

import httpx

from cce_upgrade_watch.cce import signing
from cce_upgrade_watch.cce.errors import CredentialsMissing

TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 (a header name, not a secret)
PROJECT_ID_HEADER = "X-Project-Id"
SECURITY_TOKEN_HEADER = "X-Security-Token"  # noqa: S105 (a header name)
JSON_CONTENT_TYPE = "application/json"

# The headers AkSkAuth signs, when present. Only these: headers httpx adds
# (Accept-Encoding, Connection, Content-Length, User-Agent) are left unsigned so a
# proxy that rewrites one does not break the signature.
_SIGNED_HEADERS = (
    "Host",
    "Content-Type",
    signing.DATE_HEADER,
    PROJECT_ID_HEADER,
    SECURITY_TOKEN_HEADER,
    signing.CONTENT_SHA256_HEADER,
)


def mask(secret: str, *, visible: int = 0) -> str:
    """`****`, optionally after the first `visible` characters (for access key ids)."""
    if visible and len(secret) > 2 * visible:
        return secret[:visible] + "****"
    return "****"


def _credential(name: str, value: str | None, *, header: bool) -> str:
    # Surrounding whitespace is a copy mistake (`kubectl create secret --from-file`
    # keeps the file's trailing newline), never part of a Huawei credential.
    text = (value or "").strip()
    if not text:
        raise CredentialsMissing(f"the {name} is empty")
    if header and not (text.isascii() and text.isprintable()):
        # Sent as a header value: it must be printable ASCII. Not echoed.
        raise CredentialsMissing(f"the {name} contains characters a header cannot carry")
    return text


class TokenAuth(httpx.Auth):
    """An IAM token in `X-Auth-Token` (valid 24 hours, revoked on permission changes)."""

    def __init__(self, token: str) -> None:
        self._token = _credential("token", token, header=True)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[TOKEN_HEADER] = self._token
        yield request

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in output (used to scrub server text)."""
        return (self._token,)

    def __repr__(self) -> str:
        return f"TokenAuth(token={mask(self._token)!r})"


class AkSkAuth(httpx.Auth):
    """SDK-HMAC-SHA256 signing with an access key / secret key pair.

    `security_token` comes with temporary AK/SK (STS); it is sent as
    `X-Security-Token` and signed. `project_id=None` signs a call to a global
    service (STS's AssumeAgency), which takes no `X-Project-Id`. `clock` exists
    for tests.
    """

    requires_request_body = True  # the body is hashed into the signature

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        project_id: str | None,
        security_token: str | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._access_key = _credential("access key", access_key, header=True)
        self._secret_key = _credential("secret key", secret_key, header=False)
        self._project_id = (
            None if project_id is None else _credential("project id", project_id, header=True)
        )
        self._security_token = (
            _credential("security token", security_token, header=True)
            if security_token is not None and security_token.strip()
            else None
        )
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def access_key(self) -> str:
        """The access key id: not a secret (it is in every Authorization header)."""
        return self._access_key

    @property
    def project_id(self) -> str | None:
        return self._project_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self.sign_request(request)
        yield request

    def sign_request(self, request: httpx.Request) -> None:
        """Add the SDK headers and the `Authorization` header to `request`, in place.

        The headers are gathered in a plain dict and set on the request at the end:
        every lookup or assignment on an `httpx.Headers` scans all its entries, and
        a dozen of them were a tenth of the CPU of a poll (docs/PERFORMANCE.md).
        """
        headers = request.headers
        present = dict(headers.items())  # lowercased names, one pass
        added: dict[str, str] = {}
        if signing.DATE_HEADER.lower() not in present:
            # An X-Sdk-Date set by the caller is kept, as the SDK does.
            added[signing.DATE_HEADER] = signing.format_sdk_date(self._clock())
        if self._project_id is not None:
            added[PROJECT_ID_HEADER] = self._project_id
        content_type = present.get("content-type")
        if content_type is None:
            content_type = added["Content-Type"] = JSON_CONTENT_TYPE
        if self._security_token is not None:
            added[SECURITY_TOKEN_HEADER] = self._security_token
        if signing.needs_unsigned_payload(content_type):
            added[signing.CONTENT_SHA256_HEADER] = signing.UNSIGNED_PAYLOAD

        pairs = request.url.params.multi_items()
        query = signing.canonical_query(pairs)
        if pairs or b"?" in request.url.raw_path:
            # Send the query in the canonical order that is signed. (Re-parsing the
            # URL costs a fifth of a millisecond; a URL without a query skips it.)
            request.url = request.url.copy_with(query=query.encode("ascii") if query else None)

        signed: dict[str, str] = {}
        for name in _SIGNED_HEADERS:
            value = added.get(name)
            if value is None:
                value = present.get(name.lower())
            if value is not None:
                signed[name] = value
        signature = signing.sign(
            method=request.method,
            path=request.url.raw_path.split(b"?", 1)[0].decode("ascii"),
            query=pairs,
            headers=signed,
            body=request.content,
            secret_key=self._secret_key,
        )
        added["Authorization"] = signature.authorization(self._access_key)
        headers.update(added)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in output (used to scrub server text)."""
        return tuple(s for s in (self._secret_key, self._security_token) if s)

    def __repr__(self) -> str:
        token = f", security_token={mask(self._security_token)!r}" if self._security_token else ""
        return (
            f"AkSkAuth(access_key={mask(self._access_key, visible=4)!r}, "
            f"secret_key={mask(self._secret_key)!r}, project_id={self._project_id!r}{token})"
        )


def redact(text: str, auth: httpx.Auth | None) -> str:
    """`text` with every secret of `auth` replaced by `****`, and its access key id
    cut to the first characters, as `repr` shows it.

    The access key id is no secret, but a credential all the same: a server that
    echoes it ("unknown access key ...") must not put it whole into a status,
    an Event or a log.
    """
    secrets = auth.secrets() if isinstance(auth, TokenAuth | AkSkAuth) else ()
    for secret in secrets:
        text = text.replace(secret, "****")
    if isinstance(auth, AkSkAuth):
        text = text.replace(auth.access_key, mask(auth.access_key, visible=4))
    return text
