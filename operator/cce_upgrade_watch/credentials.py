"""Cloud credentials from the Secret a watch names, cached so polls rarely read Secrets.

A Secret holds either `accessKey` + `secretKey` (+ optional `securityToken`) or
`token`. The operator may only `get` Secrets by name (no list/watch: least
privilege), so it cannot be told when one changes. Instead the cache:
- keeps a Secret for `ttl` seconds (one read per Secret per TTL, however many
  watches share it);
- forgets it at once when the cloud answers 401, so a rotated Secret is read
  again and used on the very poll that found the old key revoked;
- forgets it on an explicit poll-now request;
- never caches "not found", so a Secret created later is picked up on the
  next poll;
- drops what no watch uses any more (`retain`, called when a watch goes away)
  and, once per TTL, every expired entry, so credentials of a deleted watch or
  Secret do not stay in memory.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import httpx

from cce_upgrade_watch.cce.auth import AkSkAuth, TokenAuth

# The key names inside the Secret (names, not values).
ACCESS_KEY = "accessKey"
SECRET_KEY = "secretKey"  # noqa: S105
SECURITY_TOKEN = "securityToken"  # noqa: S105
TOKEN = "token"  # noqa: S105


class CredentialsNotFound(Exception):
    """The Secret or the keys it must hold are missing. The message names no value."""

    reason = "CredentialsNotFound"


class SecretUnreadable(Exception):
    """The Kubernetes API could not be asked for the Secret (5xx, refused, timeout):
    worth retrying soon, nothing a person must fix. The message names the Secret."""

    reason = "ApiUnavailable"


#: The Secret types whose data the operator uses as cloud credentials. Typed
#: Secrets of Kubernetes (service-account tokens, TLS keys, registry logins) hold
#: credentials for something else: a watch must not be able to send those away.
CREDENTIALS_SECRET_TYPE = "cce.upgradewatch.io/credentials"  # noqa: S105 (a type name)
ALLOWED_SECRET_TYPES = frozenset({CREDENTIALS_SECRET_TYPE, "Opaque"})


def check_secret_type(namespace: str, name: str, secret_type: str | None) -> None:
    """Raise `CredentialsNotFound` naming the type unless it may hold cloud credentials."""
    secret_type = secret_type or "Opaque"  # the API server's default for an empty type
    if secret_type not in ALLOWED_SECRET_TYPES:
        shown = secret_type if len(secret_type) <= 100 else secret_type[:97] + "..."
        raise CredentialsNotFound(
            f"Secret {name!r} in namespace {namespace!r} has type {shown!r}; only Secrets of "
            f"type {CREDENTIALS_SECRET_TYPE!r} or 'Opaque' are used as cloud credentials"
        )


@dataclass(frozen=True, repr=False)
class CloudCredentials:
    """Either an AK/SK pair (+ security token) or an IAM token. Never printed."""

    access_key: str | None = None
    secret_key: str | None = None
    security_token: str | None = None
    token: str | None = None

    def __repr__(self) -> str:
        kind = "token" if self.token else "AK/SK"
        return f"CloudCredentials(<{kind}, hidden>)"

    def auth(self, project_id: str) -> httpx.Auth:
        if self.token:
            return TokenAuth(self.token)
        # from_secret_data guarantees both when there is no token.
        assert self.access_key is not None
        assert self.secret_key is not None
        return AkSkAuth(self.access_key, self.secret_key, project_id, self.security_token)

    @classmethod
    def from_secret_data(cls, secret_name: str, data: Mapping[str, str]) -> CloudCredentials:
        """Decode a Secret's `data` (base64 values) into credentials.

        Raises `CredentialsNotFound` naming the missing or empty keys, never a value.
        """
        decoded: dict[str, str] = {}
        for key in (ACCESS_KEY, SECRET_KEY, SECURITY_TOKEN, TOKEN):
            raw = data.get(key)
            if raw is None:
                continue
            try:
                value = base64.b64decode(raw, validate=True).decode().strip()
            except (binascii.Error, UnicodeDecodeError):
                raise CredentialsNotFound(
                    f"Secret {secret_name!r}: key {key!r} is not valid base64-encoded UTF-8"
                ) from None
            if value and key != SECRET_KEY and not (value.isascii() and value.isprintable()):
                # Sent as a header: refused here, where the message can name the
                # Secret and the key (never the value).
                raise CredentialsNotFound(
                    f"Secret {secret_name!r}: key {key!r} holds characters an HTTP header "
                    "cannot carry (printable ASCII only)"
                )
            if value:
                decoded[key] = value
        if TOKEN in decoded:
            return cls(token=decoded[TOKEN])
        missing = [key for key in (ACCESS_KEY, SECRET_KEY) if key not in decoded]
        if not missing:
            return cls(
                access_key=decoded[ACCESS_KEY],
                secret_key=decoded[SECRET_KEY],
                security_token=decoded.get(SECURITY_TOKEN),
            )
        problems = [
            f"{key!r} is empty" if key in data else f"{key!r} is missing" for key in missing
        ]
        others = sorted(set(data) - {ACCESS_KEY, SECRET_KEY, SECURITY_TOKEN, TOKEN})
        found = f" (it has only {', '.join(repr(k) for k in others)})" if others else ""
        raise CredentialsNotFound(
            f"Secret {secret_name!r}: {' and '.join(problems)}{found}; it needs "
            f"{ACCESS_KEY!r} and {SECRET_KEY!r} (optionally {SECURITY_TOKEN!r}), or {TOKEN!r}"
        )


#: Reads a Secret's `data` by namespace and name; returns None when it does not exist.
SecretReader = Callable[[str, str], Awaitable[Mapping[str, str] | None]]


@dataclass
class _Entry:
    credentials: CloudCredentials
    fetched_at: float


@dataclass
class CredentialsCache:
    read_secret: SecretReader
    ttl: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    _last_sweep: float | None = None
    reads: int = 0  # Secret reads made, for tests and benchmarks

    async def get(self, namespace: str, name: str) -> CloudCredentials:
        key = (namespace, name)
        self._sweep_expired()
        entry = self._entries.get(key)
        if entry is not None and self.clock() - entry.fetched_at < self.ttl:
            return entry.credentials
        self.reads += 1
        data = await self.read_secret(namespace, name)
        if data is None:
            self._entries.pop(key, None)
            raise CredentialsNotFound(f"Secret {name!r} not found in namespace {namespace!r}")
        try:
            credentials = CloudCredentials.from_secret_data(name, data)
        except CredentialsNotFound:
            self._entries.pop(key, None)
            raise
        self._entries[key] = _Entry(credentials, self.clock())
        return credentials

    def invalidate(self, namespace: str, name: str) -> None:
        self._entries.pop((namespace, name), None)

    def retain(self, in_use: set[tuple[str, str]]) -> None:
        """Forget every Secret not in `in_use` ((namespace, name) of the live watches)."""
        for key in self._entries.keys() - in_use:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep_expired(self) -> None:
        # Once per TTL at most: a walk over all entries would cost every poll.
        now = self.clock()
        if self._last_sweep is not None and now - self._last_sweep < self.ttl:
            return
        self._last_sweep = now
        expired = [k for k, e in self._entries.items() if now - e.fetched_at >= self.ttl]
        for key in expired:
            del self._entries[key]
