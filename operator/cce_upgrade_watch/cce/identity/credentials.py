"""Temporary (or static) AK/SK credentials, and reading them from any identity answer.

STS, IAM, the ECS metadata service and CCE's pod-identity agent each wrap the
same four facts in their own names. `parse_key_credentials` accepts all of them,
exactly as the official SDK's `StsAccessor._process_credential` does:

    wrapper      "credential" (IAM, metadata) or "credentials" (STS v5, pod identity)
    access key   access | accessKeyId | access_key_id
    secret key   secret | secretAccessKey | secret_access_key
    token        securitytoken | securityToken | security_token
    expiry       expires_at | expiration

Everything is bounded before it is kept: an answer is from the network.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cce_upgrade_watch.cce.auth import AkSkAuth, mask

# Huawei's access key ids are 20 characters and secret keys 40; security tokens
# are a few kilobytes. Far larger values are not credentials.
MAX_KEY_CHARS = 256
MAX_SECURITY_TOKEN_CHARS = 16 * 1024

_ACCESS_NAMES = ("access", "accessKeyId", "access_key_id")
_SECRET_NAMES = ("secret", "secretAccessKey", "secret_access_key")
_TOKEN_NAMES = ("securitytoken", "securityToken", "security_token")
_EXPIRY_NAMES = ("expires_at", "expiration")


class CredentialsUnreadable(ValueError):
    """The answer holds no usable credentials. The message names fields, never values."""


@dataclass(frozen=True, slots=True, repr=False)
class KeyCredentials:
    """An AK/SK pair, with the security token and expiry of temporary credentials.

    Static keys (from a Secret) have neither; temporary ones have both.
    """

    access_key: str
    secret_key: str
    security_token: str | None = None
    expires_at: datetime | None = None

    def auth(self, project_id: str | None) -> AkSkAuth:
        """Signing for a call in `project_id` (None: a global service such as STS)."""
        return AkSkAuth(self.access_key, self.secret_key, project_id, self.security_token)

    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in output."""
        return tuple(s for s in (self.secret_key, self.security_token) if s)

    def __repr__(self) -> str:
        expiry = self.expires_at.isoformat() if self.expires_at else None
        token = ", security_token='****'" if self.security_token else ""
        return (
            f"KeyCredentials(access_key={mask(self.access_key, visible=4)!r}, "
            f"secret_key='****'{token}, expires_at={expiry!r})"
        )


def parse_key_credentials(body: bytes | str | Mapping[str, Any]) -> KeyCredentials:
    """Temporary credentials from an STS, IAM, metadata or pod-identity answer.

    Raises `CredentialsUnreadable` naming what is missing or malformed.
    """
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise CredentialsUnreadable("the answer is not JSON") from None
    if not isinstance(data, Mapping):
        raise CredentialsUnreadable("the answer is not a JSON object")
    inner = data.get("credential", data.get("credentials", data))
    if not isinstance(inner, Mapping):
        raise CredentialsUnreadable("the credentials in the answer are not an object")
    access = _field(inner, _ACCESS_NAMES, "access key", MAX_KEY_CHARS)
    secret = _field(inner, _SECRET_NAMES, "secret key", MAX_KEY_CHARS)
    token = _field(inner, _TOKEN_NAMES, "security token", MAX_SECURITY_TOKEN_CHARS)
    expiry = next((inner[name] for name in _EXPIRY_NAMES if name in inner), None)
    if expiry is None:
        raise CredentialsUnreadable("the answer has no expiry (expires_at or expiration)")
    return KeyCredentials(access, secret, token, parse_expiry(expiry))


def _field(inner: Mapping[str, Any], names: tuple[str, ...], what: str, limit: int) -> str:
    value = next((inner[name] for name in names if inner.get(name)), None)
    if not isinstance(value, str) or not value.strip():
        raise CredentialsUnreadable(f"the answer has no {what} ({' or '.join(names)})")
    value = value.strip()
    if len(value) > limit or not (value.isascii() and value.isprintable()):
        # A header value must be short printable ASCII; the value is not echoed.
        raise CredentialsUnreadable(f"the {what} in the answer is not a usable value")
    return value


def parse_expiry(value: object) -> datetime:
    """An expiry as an aware UTC datetime: RFC 3339 (`2026-11-29T09:00:00.000000Z`,
    the SDK's layout, or with an offset), or epoch seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError):
            raise CredentialsUnreadable("the expiry is not a valid time") from None
    if isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            # A time without a zone is UTC, as the SDK reads the layout ending in Z.
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    raise CredentialsUnreadable("the expiry is not an RFC 3339 time")
