"""Errors of the CCE side, each with the condition reason the operator reports.

`reason` is used verbatim as the `Synced=False` condition reason, so it is a
CamelCase word. Every exception's message is safe to show: it never includes a
credential. API errors quote what support asks for: the HTTP status, the CCE
`error_code`, the message and the `X-Request-Id`.

    CceError
    ├── WorkflowParseError        a body is not a workflow list (InvalidResponse)
    │   └── TimestampParseError
    ├── EndpointError             an unusable region or endpoint override
    │   └── EndpointNotAllowed    a host the operator may not send credentials to
    ├── CredentialsMissing        empty or malformed credentials, before any call
    └── CceApiError               a call failed; carries the HTTP details
        ├── CredentialsRejected   401
        ├── ClockSkew             401 because X-Sdk-Date is out of range (retryable)
        ├── Forbidden             403
        ├── ClusterNotFound       404
        ├── EndpointNotPublished  404 from the API gateway: no such API there (InvalidEndpoint)
        ├── RequestRejected       any other 4xx
        ├── Throttled             429, with `retry_after`
        ├── ApiUnavailable        5xx, connection error, timeout, dropped connection
        └── InvalidResponse       not JSON or the wrong shape (also a WorkflowParseError)
"""

from __future__ import annotations

import re

_MAX_TEXT = 300


class CceError(Exception):
    """Base class of everything this package raises on purpose."""

    #: The `Synced=False` condition reason this error maps to.
    reason: str = "ApiUnavailable"


class WorkflowParseError(CceError, ValueError):
    """A response body is not a workflow list (not JSON, or the wrong shape)."""

    reason = "InvalidResponse"


class TimestampParseError(WorkflowParseError):
    """A timestamp is in neither RFC 3339 nor Go's `time.Time.String()` layout."""


class EndpointError(CceError, ValueError):
    """An endpoint or region cannot be used (bad scheme, plain HTTP off loopback...)."""

    reason = "InvalidEndpoint"


class EndpointNotAllowed(EndpointError):
    """The endpoint's host is not one the operator may send credentials to."""

    reason = "EndpointNotAllowed"


class CredentialsMissing(CceError, ValueError):
    """Credentials are empty or cannot be sent (caught before any request)."""

    reason = "CredentialsNotFound"


def one_line(text: str | None) -> str | None:
    """Collapse whitespace and cap the length, so server text cannot break a log line."""
    if text is None:
        return None
    collapsed = re.sub(r"\s+", " ", text).strip()
    if len(collapsed) > _MAX_TEXT:
        collapsed = collapsed[: _MAX_TEXT - 3] + "..."
    return collapsed or None


class CceApiError(CceError):
    """A call to the CCE API failed. All details are optional: a timeout has none.

    `detail` describes failures the server did not describe (a timeout, a
    non-JSON body); `message` is the Kubernetes-Status-style `message` field,
    kept only when it says something `error_msg` does not.
    """

    def __init__(
        self,
        detail: str,
        *,
        operation: str = "",
        status_code: int | None = None,
        error_code: str | None = None,
        error_msg: str | None = None,
        message: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.detail = one_line(detail) or ""
        self.operation = operation
        self.status_code = status_code
        self.error_code = one_line(error_code)
        self.error_msg = one_line(error_msg)
        message = one_line(message)
        self.message = message if message != self.error_msg else None
        self.request_id = one_line(request_id)
        #: Seconds the server asked us to wait (`Retry-After`), when it did.
        self.retry_after = retry_after
        super().__init__(self._render())

    def _render(self) -> str:
        # e.g. list upgrade workflows: credentials rejected: HTTP 401 CCE.01401001
        #      "Authentication failed" [request id 5f1c...]
        head = ": ".join(t for t in (self.operation, self.detail) if t)
        parts = [head + ":" if head else ""]
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        if self.error_code:
            parts.append(self.error_code)
        text = "; ".join(t for t in (self.error_msg, self.message) if t)
        if text:
            parts.append(f'"{text}"')
        if self.retry_after is not None:
            parts.append(f"(retry after {self.retry_after:g}s)")
        parts.append(f"[request id {self.request_id or 'none'}]")
        return " ".join(p for p in parts if p)


class CredentialsRejected(CceApiError):
    """401: the token or the AK/SK signature was not accepted."""

    reason = "CredentialsInvalid"


class ClockSkew(CceApiError):
    """401 because the signature's `X-Sdk-Date` is too far from the server's time:
    the operator's clock is wrong, not the key. Retryable once the clock is fixed."""

    reason = "ClockSkew"


class Forbidden(CceApiError):
    """403: the credentials are valid but lack permission (or the project id is wrong)."""

    reason = "Forbidden"


class ClusterNotFound(CceApiError):
    """404: no such cluster in this project and region."""

    reason = "ClusterNotFound"


class EndpointNotPublished(CceApiError):
    """404 from the API gateway itself (`APIGW.0101`): the API is not published at
    this endpoint, so the region or the endpoint override is wrong, not the cluster."""

    reason = "InvalidEndpoint"


class RequestRejected(CceApiError):
    """Another 4xx: the request itself was refused (a malformed id, for instance)."""

    reason = "RequestRejected"


class Throttled(CceApiError):
    """429: too many requests; `retry_after` holds the server's delay when it gave one."""

    reason = "Throttled"


class ApiUnavailable(CceApiError):
    """5xx, connection failure, timeout or dropped connection: worth retrying later."""

    reason = "ApiUnavailable"


class InvalidResponse(CceApiError, WorkflowParseError):
    """The answer is not what the API documents: not JSON, or the wrong shape."""

    reason = "InvalidResponse"
