"""One HTTP exchange with STS, IAM, the metadata service or the pod-identity agent.

httpx is the request model and the project's `Sender` puts it on the wire (the
same one `CceClient` uses, so proxies, TLS trust and body limits are shared).
Exchanges are never retried here: most are POSTs that mint credentials, and the
poll loop tries again on its next poll.

Every failure becomes `IdentityExchangeFailed`. Its text quotes what support
needs (the HTTP status, the error code and message, the request id) after every
secret the request carried (the ServiceAccount token, the source keys, the
metadata session token) has been replaced by `****`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from cce_upgrade_watch import __version__
from cce_upgrade_watch.cce.auth import AkSkAuth, mask
from cce_upgrade_watch.cce.identity.credentials import (
    CredentialsUnreadable,
    KeyCredentials,
    parse_key_credentials,
)
from cce_upgrade_watch.cce.identity.errors import IdentityExchangeFailed
from cce_upgrade_watch.cce.senders import ConnectionFailed, NoAnswerInTime, Sender, Undecodable

log = logging.getLogger(__name__)

USER_AGENT = f"cce-upgrade-watch/{__version__}"
JSON_UTF8 = "application/json;charset=UTF-8"  # what the SDK sends to STS and IAM
#: Credentials answers are a few kilobytes; anything far larger is refused.
MAX_ANSWER_BYTES = 256 * 1024


class IdentityHttp:
    """Sends identity exchanges through a `Sender`; shared by every provider."""

    def __init__(self, sender: Sender, *, user_agent: str = USER_AGENT) -> None:
        self._sender = sender
        self._user_agent = user_agent

    async def aclose(self) -> None:
        await self._sender.aclose()

    async def call(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        signer: KeyCredentials | None = None,
        secrets: Iterable[str] = (),
    ) -> httpx.Response:
        """One request; the answer when it is a 2xx, else `IdentityExchangeFailed`.

        `signer` signs the request (SDK-HMAC-SHA256, with its security token) for
        a global service: no project id. `secrets` are scrubbed from any error.
        """
        hidden = tuple(s for s in secrets if s) + (signer.secrets() if signer else ())
        access_key = signer.access_key if signer else None
        content = None if json_body is None else json.dumps(json_body).encode()
        request_headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        if content is not None:
            request_headers["Content-Type"] = JSON_UTF8
        request_headers.update(headers or {})
        try:
            request = httpx.Request(method, url, content=content, headers=request_headers)
        except (httpx.InvalidURL, ValueError) as exc:
            raise IdentityExchangeFailed(
                f"the {operation} URL is not valid ({_scrub(str(exc), hidden, access_key)})",
                operation=operation,
            ) from None
        if signer is not None:
            AkSkAuth(
                signer.access_key, signer.secret_key, None, signer.security_token
            ).sign_request(request)
        try:
            response = await self._sender.send(request)
        except NoAnswerInTime as exc:
            raise IdentityExchangeFailed(
                f"no answer in time ({exc})", operation=operation
            ) from None
        except Undecodable as exc:
            raise IdentityExchangeFailed(
                f"the answer could not be decoded ({exc})", operation=operation
            ) from None
        except ConnectionFailed as exc:
            # As the CCE client does: the detail (address, port, certificate error)
            # to the operator's log only, a generic text to whoever reads the status.
            log.warning("%s: %s: %s", operation, exc.kind, _scrub(str(exc), hidden, access_key))
            raise IdentityExchangeFailed(exc.kind, operation=operation) from None
        except Exception as exc:  # the sender's own limits (h2's body caps, for one)
            raise IdentityExchangeFailed(
                f"the exchange failed ({type(exc).__name__})", operation=operation
            ) from None
        if len(response.content) > MAX_ANSWER_BYTES:
            raise _failure(operation, "the answer is too large", response, hidden, access_key)
        if not response.is_success:
            raise _failure(operation, "refused", response, hidden, access_key)
        return response

    async def credentials(
        self,
        operation: str,
        method: str,
        url: str,
        **kwargs: Any,
    ) -> KeyCredentials:
        """`call`, then the temporary credentials in the answer."""
        response = await self.call(operation, method, url, **kwargs)
        try:
            return parse_key_credentials(response.content)
        except CredentialsUnreadable as exc:
            raise _failure(operation, str(exc), response, (), None) from None


def _failure(
    operation: str,
    detail: str,
    response: httpx.Response,
    hidden: tuple[str, ...],
    access_key: str | None,
) -> IdentityExchangeFailed:
    code, message = _error_fields(response)

    def scrub(text: str | None) -> str | None:
        return _scrub(text, hidden, access_key) if text else text

    return IdentityExchangeFailed(
        detail,
        operation=operation,
        status_code=response.status_code,
        error_code=scrub(code),
        error_msg=scrub(message),
        request_id=response.headers.get("X-Request-Id")
        or response.headers.get("X-IAM-Trace-Id")
        or response.headers.get("X-Openstack-Request-Id"),
    )


def _error_fields(response: httpx.Response) -> tuple[str | None, str | None]:
    """(code, message) from the shapes STS and IAM use: `{"error_code",
    "error_msg"}` and `{"error": {"code", "message"}}`; else the text itself
    (the metadata service answers in plain text)."""
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        text = response.content[:300].decode("utf-8", "replace").strip()
        return None, text or None
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    nested: dict[str, Any] = error if isinstance(error, dict) else {}
    code = body.get("error_code") or nested.get("code")
    message = body.get("error_msg") or nested.get("message") or body.get("message")
    return (
        str(code) if isinstance(code, str | int) else None,
        message if isinstance(message, str) else None,
    )


def _scrub(text: str, hidden: tuple[str, ...], access_key: str | None) -> str:
    for secret in hidden:
        text = text.replace(secret, "****")
    if access_key:
        text = text.replace(access_key, mask(access_key, visible=4))
    return text
