"""One set of temporary credentials per identity, refreshed before it expires.

Many watches may share an identity (the same ServiceAccount, the node's agency);
they share its credentials, and one exchange serves all of them: concurrent
callers of `get` for the same identity wait on one lock, so an expiry never
becomes a burst of identical requests to STS.

When to refresh: `refresh_margin(lifetime)` before the expiry, which is the
smaller of 5 minutes and 10 % of the lifetime, the lifetime being measured on
our own clock from the moment the answer arrived (so a skewed cloud clock moves
only the expiry we were told, not our sense of how long we have).
- 5 minutes covers what can happen between taking credentials from the cache
  and the cloud checking them: a poll with its retries (backoff up to 20 s,
  several attempts), a slow answer, and a few minutes of clock skew between the
  operator's node and the cloud. More would only mean more exchanges.
- 10 % keeps short lifetimes useful: STS's shortest session is 15 minutes (a
  90 s margin), and tests use lifetimes of seconds; a flat 5 minutes would
  refresh such credentials on every poll, or never use them at all.

A refresh that fails raises (the poll reports `IdentityExchangeFailed` and the
next poll tries again); nothing is served past its refresh point. Nothing here
logs a credential: log lines name the identity and the expiry only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cce_upgrade_watch.cce.identity.credentials import KeyCredentials
from cce_upgrade_watch.cce.identity.errors import IdentityExchangeFailed
from cce_upgrade_watch.cce.identity.providers import CredentialProvider

log = logging.getLogger(__name__)

MAX_MARGIN_SECONDS = 300.0
MARGIN_FRACTION = 0.10
#: Identities remembered; the least recently used is forgotten beyond this.
DEFAULT_MAX_IDENTITIES = 10_000


def refresh_margin(lifetime_seconds: float) -> float:
    """Seconds before expiry at which credentials are renewed (see the module doc)."""
    return max(0.0, min(MAX_MARGIN_SECONDS, MARGIN_FRACTION * lifetime_seconds))


@dataclass(frozen=True, slots=True)
class _Entry:
    credentials: KeyCredentials
    refresh_at: datetime


class CredentialCache:
    """`await cache.get(provider)`: valid credentials for `provider.identity`."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] | None = None,
        max_identities: int = DEFAULT_MAX_IDENTITIES,
    ) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._max = max_identities
        #: Exchanges made (for tests and metrics): identity -> count.
        self.exchanges: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, provider: CredentialProvider) -> KeyCredentials:
        key = provider.identity
        entry = self._fresh(key)
        if entry is not None:
            return entry.credentials
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._fresh(key)  # another caller may have refreshed meanwhile
            if entry is not None:
                return entry.credentials
            credentials = await provider.fetch()
            self.exchanges[key] = self.exchanges.get(key, 0) + 1
            entry = self._store(key, credentials)
            log.info(
                "new temporary credentials for %s, valid until %s (renewed from %s)",
                key,
                credentials.expires_at.isoformat() if credentials.expires_at else "-",
                entry.refresh_at.isoformat(),
            )
            return credentials

    def forget(self, identity: str) -> None:
        """Drop an identity's credentials (the cloud refused them, or no watch uses it)."""
        self._entries.pop(identity, None)
        lock = self._locks.get(identity)
        if lock is not None and not lock.locked():
            del self._locks[identity]

    def retain(self, identities: set[str]) -> None:
        """Forget every identity not in `identities` (those of the live watches), so
        credentials of a deleted watch do not stay in memory until they expire."""
        for key in self._entries.keys() - identities:
            self.forget(key)

    def _fresh(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None or self._clock() >= entry.refresh_at:
            return None
        self._entries.move_to_end(key)
        return entry

    def _store(self, key: str, credentials: KeyCredentials) -> _Entry:
        now = self._clock()
        expires_at = credentials.expires_at
        if expires_at is None:
            # Keys without an expiry (static ones) do not expire on their own.
            refresh_at = datetime.max.replace(tzinfo=UTC)
        else:
            lifetime = (expires_at - now).total_seconds()
            if lifetime <= 0:
                raise IdentityExchangeFailed(
                    f"the credentials for {key} expired at {expires_at.isoformat()}, before "
                    f"they arrived (now {now.isoformat()}): is this machine's clock right?"
                )
            refresh_at = expires_at - timedelta(seconds=refresh_margin(lifetime))
        entry = _Entry(credentials, refresh_at)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            old, _ = self._entries.popitem(last=False)
            self._locks.pop(old, None)
        return entry
