"""The one error of the identity exchange, with its own condition reason."""

from __future__ import annotations

from cce_upgrade_watch.cce.errors import CceApiError


class IdentityExchangeFailed(CceApiError):
    """Temporary credentials could not be obtained: STS, IAM, the metadata service
    or the pod-identity agent refused, failed or answered nonsense, or the
    ServiceAccount token could not be read. The next poll tries again.

    Carries the HTTP details when there was an answer (status, error code and
    message, request id), scrubbed of every token and key that was sent.
    """

    reason = "IdentityExchangeFailed"
