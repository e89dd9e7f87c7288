"""Errors of the CCE side, each with the condition reason the operator reports.

Every exception's message is safe to show: it never includes a credential.
"""

from __future__ import annotations


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
