"""The poll loop of one CceUpgradeWatch: fetch, reconcile, write on change.

This is the I/O shell around the pure core in `reconcile.py`. It knows nothing
of kopf: `handlers.py` hands it the object's body (and each newer one, through
`notice`), a way to create Events and the scheduler's wake-up. One loop object
exists per watch and keeps its state between polls; `scheduler.py` runs its
`poll_once` when due and sleeps for it. The loops share the CCE client (and its
concurrency limit), the Kubernetes client and the credentials cache.

Order of writes, for Events exactly once (see `events.py`): every Event of a
poll is created (synchronously, under its deterministic name; AlreadyExists
counts as delivered) before the status write that records its transition. If
an Event cannot be created, or the status write fails, nothing more is written
and the poll is retried soon from the same stored status, which derives the
same Events under the same names.

Around the workflow list, the read-only lifecycle calls (pre-check, plans,
window, versions, backups): after a successful workflow list, the loop's
`LifecycleSchedule` says which are due, `lifecycle_fetch.py` makes only those
with the same credentials, and the core gets their answers with the workflows.
They never fail a poll. The next poll is due no later than the next
time-driven lifecycle transition (`time_transitions`, e.g. `UpgradeSoon` at its
lead time) or the next periodic lifecycle call, and runs the core once such a
moment has passed even when the cloud's answers did not change.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.errors import CceError, CredentialsRejected
from cce_upgrade_watch.cce.identity import KeyCredentials
from cce_upgrade_watch.cce.lifecycle import LifecycleApi
from cce_upgrade_watch.cce.models import DroppedField, UpgradeWorkflow
from cce_upgrade_watch.cce.ordering import current_first
from cce_upgrade_watch.conditions import FailureReason
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.credentials import (
    CloudCredentials,
    CredentialsCache,
    CredentialsNotFound,
    SecretUnreadable,
)
from cce_upgrade_watch.events import Event
from cce_upgrade_watch.identities import Identities, IdentityNotAllowed
from cce_upgrade_watch.lifecycle_conditions import time_transitions
from cce_upgrade_watch.lifecycle_fetch import fetch_lifecycle_parts
from cce_upgrade_watch.lifecycle_parts import LifecycleAnswers
from cce_upgrade_watch.lifecycle_state import LifecycleSchedule
from cce_upgrade_watch.reconcile import (
    INVALID_SPEC,
    NOTHING_UNCONFIRMED,
    PollFailure,
    PollOutcome,
    ReconcileResult,
    Unconfirmed,
    WorkflowsFetched,
    acknowledge_generation,
    next_poll_interval,
    reconcile,
    status_patch,
)
from cce_upgrade_watch.resource import POLL_NOW_ANNOTATION
from cce_upgrade_watch.spec import SpecError, WatchSpec, parse_watch_spec

logger = logging.getLogger(__name__)

#: How soon a poll whose status write failed is tried again.
WRITE_RETRY_SECONDS = 10.0
#: At most one forced poll (poll-now annotation) per object in this many seconds:
#: each re-reads the Secret and calls the cloud, so annotating in a loop must not
#: hammer either. A request inside the window is served when the window ends.
FORCED_POLL_MIN_SECONDS = 10.0


class StatusWriter(Protocol):
    async def patch_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """Merge-patch `.status`; the stored status as the API server returns it
        (its `metadata.resourceVersion` under the key `RESOURCE_VERSION_KEY`, if
        known), or None when the object is gone. Raises `StatusRejected` when the
        API server refuses the content (422, 413), anything else when it is down."""
        ...


#: Where a `StatusWriter` may put the resourceVersion of the object it wrote.
RESOURCE_VERSION_KEY = "__resourceVersion"


class StatusRejected(Exception):
    """The API server refused the status itself (422 Invalid, 413 too large):
    trying the same status again cannot help."""


#: Creates one Event (sync or async); raises when it could not be delivered and
#: a retry may help. AlreadyExists must count as delivered.
EventPoster = Callable[[Event], Awaitable[None] | None]


class PollObserver(Protocol):
    """Hooks for metrics; every method must be cheap and must not raise."""

    def poll_finished(self, result: str, seconds: float) -> None: ...

    def status_written(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...

    def fields_dropped(self, counts: Mapping[str, int]) -> None: ...


class _NoObserver:
    def poll_finished(self, result: str, seconds: float) -> None:
        pass

    def status_written(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        pass

    def fields_dropped(self, counts: Mapping[str, int]) -> None:
        pass


@dataclass
class Services:
    """What every poll loop shares; created once at operator start-up."""

    config: OperatorConfig
    cce: CceClient
    status_writer: StatusWriter
    credentials: CredentialsCache
    observer: PollObserver = _NoObserver()  # noqa: RUF009 (stateless, safe to share)
    #: Keyless identities (`spec.identity`); None: only Secrets can be used.
    identities: Identities | None = None


@dataclass(frozen=True, slots=True)
class _QuietLifecycle:
    """A lifecycle schedule check that found nothing due, and its inputs.

    Most polls of an idle cluster bring the same answer: the client hands back
    the same workflow objects, the spec and the stored status are the same
    objects (both are replaced, never changed in place). `LifecycleSchedule.due`
    is then certain to find nothing due again until its next part falls due by
    time (no trigger without a change), so the check and the ordering of the
    workflows before it are skipped: a twentieth of a poll's CPU at N=10,000
    (docs/PERFORMANCE.md).
    """

    spec: WatchSpec
    workflows: tuple[UpgradeWorkflow, ...]
    stored: Mapping[str, Any] | None
    until: datetime | None  # the next part due by time (None: none is)

    def holds(
        self,
        spec: WatchSpec,
        workflows: Sequence[UpgradeWorkflow],
        stored: Mapping[str, Any] | None,
        now: datetime,
    ) -> bool:
        return (
            spec is self.spec
            and stored is self.stored
            and len(workflows) == len(self.workflows)
            and all(new is old for new, old in zip(workflows, self.workflows, strict=True))
            and (self.until is None or now < self.until)
        )


class PollLoop:
    """One object's polls, run by the scheduler; `notice(body)` for each watch event."""

    # Slots: one per watch, so its ~30 fields in a dict were ~1.5 KiB each (tracemalloc).
    __slots__ = (
        "_base_is_ours",
        "_body",
        "_clock",
        "_deferred_poll_now",
        "_force_credentials_refresh",
        "_last_forced_poll",
        "_last_seen",
        "_last_seen_interval",
        "_lifecycle",
        "_lifecycle_quiet",
        "_lifecycle_seed",
        "_noticed_version",
        "_poll_started_at",
        "_post_event",
        "_refresh_lifecycle",
        "_retry_after",
        "_seen_generation",
        "_seen_poll_now",
        "_services",
        "_spec",
        "_stored_status",
        "_unconfirmed",
        "_wake",
        "_wakeup_at",
        "_wall_clock",
        "_written_version",
        "_written_version_seen",
        "added_at",
        "name",
        "namespace",
    )

    def __init__(
        self,
        body: Mapping[str, Any],
        services: Services,
        post_event: EventPoster,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._body = _kept(body)  # the newest version the watch delivered (see `notice`)
        self._services = services
        self._post_event = post_event
        self._clock = clock
        self._wall_clock = wall_clock
        self._wake = wake  # the scheduler's: poll at once (again, if polling)
        self._force_credentials_refresh = False
        self._last_forced_poll: float | None = None  # clock() of the last poll-now served
        self._deferred_poll_now: asyncio.TimerHandle | None = None
        self._retry_after = 0.0  # seconds the CCE API asked us to wait (Retry-After)
        meta = body.get("metadata", {})
        self.namespace: str = meta.get("namespace", "")
        self.name: str = meta.get("name", "")
        self.added_at = clock()  # first sight of the object (resync.py)
        # What the object looked like at the last poll, to notice what changed since.
        self._seen_generation: int | None = None
        self._seen_poll_now: str | None = None
        # The status as the API server stored it, returned by our last write (or
        # newer, from the watch: see `notice`): the base the core diffs against, so
        # an Event is derived from what is really stored, even before the watch
        # delivers our own write back to us, and a status someone else edited is
        # corrected at the next poll.
        self._stored_status: Mapping[str, Any] | None = None
        self._written_version: str | None = None  # resourceVersion of our last write
        self._written_version_seen = True  # the watch has delivered that write
        self._noticed_version: str | None = None
        # The stored status is the one the last reconcile computed (nobody else's
        # fields in it), so an unchanged answer may skip the core.
        self._base_is_ours = True
        # What the last poll said that the status does not show yet (reconcile.py).
        self._unconfirmed: Unconfirmed = NOTHING_UNCONFIRMED
        # What the last poll whose status is stored saw, and the interval it chose.
        self._last_seen: tuple[WatchSpec, int, tuple[UpgradeWorkflow, ...]] | None = None
        self._last_seen_interval = 0.0
        self._spec: tuple[int, WatchSpec] | None = None  # (generation, parsed)
        # When each lifecycle part is due; a poll-now asks every part again.
        self._lifecycle_seed = str(meta.get("uid") or "")
        self._lifecycle = LifecycleSchedule(seed=self._lifecycle_seed)
        self._refresh_lifecycle = False
        # The inputs of the last schedule check that found nothing due (see
        # `_lifecycle_quiet`), and until when that answer holds.
        self._lifecycle_quiet: _QuietLifecycle | None = None
        # The next time-driven lifecycle transition of the stored status, while it
        # is ahead: once it has passed, a poll runs the core even on an unchanged
        # answer (and the loop sleeps no longer than until then).
        self._wakeup_at: datetime | None = None
        self._poll_started_at: datetime | None = None  # wall clock, for the sleep cap

    # ------------------------------------------------------------ waking up

    def notice(self, body: Mapping[str, Any]) -> None:
        """Called for every watch event of the object: keep its body (the next poll
        reads metadata and spec from it); wake the loop on a spec change or a new
        poll-now annotation; take a status newer than our last write as the base of
        the next diff (someone else edited it: the next poll corrects it); ignore
        everything else (our own status writes)."""
        meta = body.get("metadata", {})
        self._body = _kept(body)
        self._adopt_newer_status(body)
        if meta.get("generation") != self._seen_generation:
            self._wake()
        elif _poll_now(meta) != self._seen_poll_now and self._deferred_poll_now is None:
            wait = self._forced_poll_wait()
            if wait <= 0:
                self._force_poll()
            else:
                self._deferred_poll_now = asyncio.get_running_loop().call_later(
                    wait, self._force_poll
                )

    def _forced_poll_wait(self) -> float:
        if self._last_forced_poll is None:
            return 0.0
        return self._last_forced_poll + FORCED_POLL_MIN_SECONDS - self._clock()

    def _force_poll(self) -> None:
        self._deferred_poll_now = None
        self._last_forced_poll = self._clock()
        self._force_credentials_refresh = True
        self._refresh_lifecycle = True
        self._wake()

    def cancel_deferred(self) -> None:
        """Drop a poll-now waiting for its window (the object is gone)."""
        if self._deferred_poll_now is not None:
            self._deferred_poll_now.cancel()
            self._deferred_poll_now = None

    @property
    def credentials_key(self) -> tuple[str, str] | None:
        """(namespace, Secret name) this loop reads credentials from, once known."""
        if self._spec is None or self._spec[1].credentials_secret_ref is None:
            return None
        return (self.namespace, self._spec[1].credentials_secret_ref.name)

    @property
    def identity_keys(self) -> set[str]:
        """The keyless identities this loop uses (cache keys), once its spec is known."""
        identities = self._services.identities
        if self._spec is None or self._spec[1].identity is None or identities is None:
            return set()
        return identities.identities_of(self.namespace, self._spec[1])

    def _adopt_newer_status(self, body: Mapping[str, Any]) -> None:
        version = (body.get("metadata") or {}).get("resourceVersion")
        self._noticed_version = version
        if version is None:
            return
        if version == self._written_version:
            self._written_version_seen = True
            # Our own write coming back: keep the body's copy of the status (the
            # loop keeps the body anyway) rather than a second one from the PATCH answer.
            status = body.get("status")
            if isinstance(status, dict) and status == self._stored_status:
                self._stored_status = status
        elif self._written_version is None or self._written_version_seen:
            # Watch events come in order: each one is newer than what the loop
            # started from, and after our write's own, newer than our write.
            status = _as_dict(body.get("status")) or {}
            if status != (self._stored_status or {}):
                self._stored_status = status
                self._last_seen = None

    # ------------------------------------------------------------ the schedule

    def start(self) -> float:
        """Called once when the scheduler takes the watch: the seconds to wait before
        the first poll. Spreads polls out after a restart; polls a new object at once
        (a new one has no conditions yet, only the CRD's default `observedGeneration: 0`)."""
        self._stored_status = _as_dict(self._body.get("status"))
        if self._stored_status:  # metrics right after a restart, before any write
            self._services.observer.status_written(self.namespace, self.name, self._stored_status)
        if not (self._stored_status or {}).get("conditions"):
            return 0.0
        return random.uniform(0, self._services.config.max_initial_delay)

    @property
    def retry_after(self) -> float:
        """Seconds the CCE API asked to wait (Retry-After) at the last poll; the
        scheduler counts them from the poll's end."""
        return self._retry_after

    async def poll_once(self) -> float:
        """One poll; returns the seconds to wait before the next one. Never raises
        (except on cancellation): a failure is a status, not a crash."""
        meta = self._body.get("metadata", {})
        generation = int(meta.get("generation") or 0)
        self._seen_generation = meta.get("generation")
        self._seen_poll_now = _poll_now(meta)
        config = self._services.config
        try:
            spec = self._parsed_spec(generation)
        except SpecError as exc:
            # The CRD rejects such specs; this guards against an older CRD.
            outcome: PollOutcome = PollFailure(INVALID_SPEC, str(exc))
            await self._apply(
                reconcile(self._stored_status, _FALLBACK_SPEC, generation, outcome, self._now())
            )
            return config.default_poll_interval.total_seconds()
        if spec.suspend:
            await self._write(acknowledge_generation(self._stored_status, generation, spec))
            return float("inf")  # until the spec changes again
        started = time.perf_counter()
        self._poll_started_at = self._now()
        outcome, auth = await self._fetch(spec)
        lifecycle: LifecycleAnswers | None = None
        if isinstance(outcome, WorkflowsFetched) and auth is not None:
            lifecycle = await self._fetch_lifecycle(spec, outcome, auth)
        result = "success" if isinstance(outcome, WorkflowsFetched) else outcome.reason
        self._services.observer.poll_finished(result, time.perf_counter() - started)
        seen: tuple[WatchSpec, int, tuple[UpgradeWorkflow, ...]] | None = None
        if isinstance(outcome, WorkflowsFetched):
            seen = (spec, generation, tuple(outcome.workflows))
        now = self._now()
        if (
            seen is not None
            and seen == self._last_seen
            and lifecycle is None
            and (self._wakeup_at is None or now < self._wakeup_at)
        ):
            # Nothing changed since a poll whose status is stored, no lifecycle
            # answer came and no time-driven transition is due: the core would
            # compute that same status again (see reconcile.py), so skip it. The
            # client hands back the same workflow objects for the same answer,
            # which makes this comparison an identity check.
            return self._capped(self._last_seen_interval)
        reconciled = reconcile(
            self._stored_status,
            spec,
            generation,
            outcome,
            now,
            self._unconfirmed,
            lifecycle=lifecycle,
        )
        try:
            stored = await self._apply(reconciled)
        except StatusRejected as exc:
            reconciled = await self._report_rejected_status(spec, generation, exc)
            stored = True  # the same answer would be refused again: do not retry it
        if stored:
            self._unconfirmed = reconciled.unconfirmed
            if lifecycle is not None:
                # Only answers that reached the status count as asked: after a
                # failed write the same parts are due again, for the same Events.
                self._lifecycle.record(lifecycle, now)
            # The earliest one still ahead (`lifecycle_wakeup` without those that
            # passed: one the core leaves as it is must not hide a later one).
            ahead = [m for m in time_transitions(self._stored_status, spec) if m > now]
            self._wakeup_at = min(ahead, default=None)
        interval = next_poll_interval(reconciled.status, spec, self._unconfirmed).total_seconds()
        # An answer the core holds back must be seen again to be confirmed.
        self._last_seen = (
            seen if stored and self._base_is_ours and not self._unconfirmed.pending else None
        )
        self._last_seen_interval = interval
        if not stored:
            # The Kubernetes API refused or missed the write: try again soon rather
            # than a whole idle interval later, so status and Events catch up.
            interval = min(interval, WRITE_RETRY_SECONDS)
        # A throttled cluster is not asked again before the server said it may be.
        return max(self._capped(interval), self._retry_after)

    def _capped(self, interval: float) -> float:
        """`interval`, or less when a time-driven lifecycle transition or a periodic
        lifecycle call falls due sooner. Counted, as the scheduler counts intervals,
        from the poll's start; the scheduler then starts it on the next tick of the poll
        grid, so such a moment is acted on within about one tick."""
        started = self._poll_started_at
        if started is None:
            return interval
        moments = [
            moment
            for moment in (self._wakeup_at, self._lifecycle.next_due())
            if moment is not None and moment > started
        ]
        if not moments:
            return interval
        return min(interval, (min(moments) - started).total_seconds())

    async def _fetch_lifecycle(
        self, spec: WatchSpec, fetched: WorkflowsFetched, auth: httpx.Auth
    ) -> LifecycleAnswers | None:
        """The lifecycle calls due in this poll (None: none is), with the credentials
        the workflow list has just used. Never raises for a cloud failure."""
        if self._refresh_lifecycle:  # poll-now: every part is asked again
            self._lifecycle = LifecycleSchedule(seed=self._lifecycle_seed)
            self._lifecycle_quiet = None
            self._refresh_lifecycle = False
            stored: Mapping[str, Any] | None = None
        else:
            stored = self._stored_status
        now = self._now()
        quiet = self._lifecycle_quiet
        if quiet is not None and quiet.holds(spec, fetched.workflows, stored, now):
            return None
        due = self._lifecycle.due(spec, current_first(fetched.workflows), stored, now)
        if not due:
            self._lifecycle_quiet = _QuietLifecycle(
                spec, tuple(fetched.workflows), stored, self._lifecycle.next_due()
            )
            return None
        self._lifecycle_quiet = None
        api = LifecycleApi(
            self._services.cce, spec.project_id, spec.cluster_id, auth=auth, **self._route(spec)
        )
        return await fetch_lifecycle_parts(api, due, now, watch=f"{self.namespace}/{self.name}")

    def _route(self, spec: WatchSpec) -> dict[str, Any]:
        """Where this watch's calls go, and whose share of the client's request
        slots they use: its namespace (the client shares them fairly by namespace)."""
        return {"endpoint": spec.endpoint, "region": spec.region, "tenant": self.namespace}

    def _parsed_spec(self, generation: int) -> WatchSpec:
        """The spec, parsed again only when its generation moved (every spec change
        moves it); raises `SpecError`."""
        if self._spec is None or self._spec[0] != generation or not generation:
            spec = self._body.get("spec")
            self._spec = (generation, parse_watch_spec(self._services.config.with_defaults(spec)))
        return self._spec[1]

    async def _fetch(self, spec: WatchSpec) -> tuple[PollOutcome, httpx.Auth | None]:
        """The workflow list, and the credentials that read it (None on failure)."""
        ref = spec.credentials_secret_ref
        cache = self._services.credentials
        identities = self._services.identities
        keyless = spec.identity is not None  # oidc, ambient, or assumeAgency on top
        if self._force_credentials_refresh:
            if ref is not None:
                cache.invalidate(self.namespace, ref.name)
            if keyless and identities is not None:
                identities.forget(self.namespace, spec)
            self._force_credentials_refresh = False
        self._retry_after = 0.0
        for attempt in (1, 2):
            try:
                if keyless:
                    auth = await self._keyless_auth(spec)
                else:
                    assert ref is not None  # the spec's rule: exactly one source
                    secret = await cache.get(self.namespace, ref.name)
                    auth = secret.auth(spec.project_id)
                workflows = await self._services.cce.list_upgrade_workflows(
                    spec.project_id, spec.cluster_id, auth=auth, **self._route(spec)
                )
                self._report_dropped(workflows.dropped)
                return WorkflowsFetched(workflows), auth
            except CredentialsNotFound as exc:
                return PollFailure(CredentialsNotFound.reason, str(exc)), None
            except SecretUnreadable as exc:
                return PollFailure(SecretUnreadable.reason, str(exc)), None
            except IdentityNotAllowed as exc:
                return PollFailure(IdentityNotAllowed.reason, str(exc), at_once=True), None
            except CredentialsRejected as exc:
                # Maybe the Secret was rotated and the cached key revoked, or the
                # temporary credentials were revoked: read the Secret again (or
                # exchange anew) and retry once before reporting them as invalid.
                if ref is not None:
                    cache.invalidate(self.namespace, ref.name)
                if keyless and identities is not None:
                    identities.forget(self.namespace, spec)
                if attempt == 2:
                    return PollFailure.from_error(exc), None
            except CceError as exc:
                self._retry_after = getattr(exc, "retry_after", None) or 0.0
                return PollFailure.from_error(exc), None
        raise AssertionError("unreachable")

    async def _keyless_auth(self, spec: WatchSpec) -> httpx.Auth:
        """Signing with the temporary credentials of the watch's `spec.identity`."""
        identities = self._services.identities
        if identities is None:
            raise IdentityNotAllowed(
                "spec.identity: this operator was started without keyless identities"
            )
        ref = spec.credentials_secret_ref
        cache = self._services.credentials

        async def secret_keys() -> KeyCredentials:
            assert ref is not None
            return _as_key_credentials(ref.name, await cache.get(self.namespace, ref.name))

        keys = await identities.credentials(
            self.namespace, spec, secret_keys if ref is not None else None
        )
        return keys.auth(spec.project_id)

    async def _report_rejected_status(
        self, spec: WatchSpec, generation: int, exc: StatusRejected
    ) -> ReconcileResult:
        """The API server refused the status computed from this answer (too large,
        invalid): say so with a minimal write (the stored mirror, `Synced=False
        InvalidResponse`) instead of trying the same status again and again."""
        logger.warning(
            "the API server refused the status of %s/%s: %s", self.namespace, self.name, exc
        )
        failure = PollFailure(
            FailureReason.INVALID_RESPONSE,
            "the API server refused the status computed from the CCE answer "
            f"({exc}); the status shows the last one it accepted",
            at_once=True,
        )
        reconciled = reconcile(
            self._stored_status, spec, generation, failure, self._now(), self._unconfirmed
        )
        try:
            await self._apply(reconciled)
        except StatusRejected as again:
            logger.error(
                "the API server refused even the minimal status of %s/%s: %s",
                self.namespace,
                self.name,
                again,
            )
        return reconciled

    def _report_dropped(self, dropped: Sequence[DroppedField]) -> None:
        """Informational fields the answer had but could not be read: one WARNING
        line per poll (not per field) and the dropped-fields counter."""
        if not dropped:
            return
        logger.warning(
            "%s/%s: left out unreadable fields of the CCE answer: %s",
            self.namespace,
            self.name,
            "; ".join(f"{d.field} x{d.count} ({d.why})" for d in dropped),
        )
        self._services.observer.fields_dropped({d.field: d.count for d in dropped})

    async def _apply(self, reconciled: ReconcileResult) -> bool:
        """Create the result's Events, then write its status; True when stored.

        Raises `StatusRejected` when the API server refuses the status itself.
        """
        patch = status_patch(self._stored_status, reconciled.status)
        if patch is None:
            self._base_is_ours = True
            return True
        for event in reconciled.events:
            if not await self._deliver(event):
                return False
        return await self._write_patch(patch, reconciled.status)

    async def _deliver(self, event: Event) -> bool:
        try:
            posted = self._post_event(event)
            if inspect.isawaitable(posted):
                await posted
        except Exception as exc:  # retry with the next poll: same stored status, same name
            logger.warning(
                "could not create the %s Event of %s/%s: %s",
                event.reason,
                self.namespace,
                self.name,
                exc,
            )
            return False
        return True

    async def _write(self, new_status: Mapping[str, Any]) -> bool:
        """Patch the status if it changed (no Events); True when it is stored."""
        patch = status_patch(self._stored_status, new_status)
        if patch is None:
            return True
        try:
            return await self._write_patch(patch, new_status)
        except StatusRejected as exc:
            logger.warning(
                "the API server refused the status of %s/%s: %s", self.namespace, self.name, exc
            )
            return False

    async def _write_patch(self, patch: Mapping[str, Any], new_status: Mapping[str, Any]) -> bool:
        try:
            stored = await self._services.status_writer.patch_status(
                self.namespace, self.name, patch
            )
        except StatusRejected:
            raise
        except Exception as exc:  # the API server may be down: retry at the next poll
            logger.warning(
                "could not write the status of %s/%s: %s", self.namespace, self.name, exc
            )
            return False
        if stored is None:  # the object was deleted meanwhile
            return False
        stored = dict(stored)
        version = stored.pop(RESOURCE_VERSION_KEY, None)
        # What the API server stored is the base of the next diff (not what we
        # meant to store): a field someone else set beside ours is corrected.
        self._stored_status = stored
        self._base_is_ours = status_patch(stored, new_status) is None
        if version is not None:
            self._written_version = str(version)
            self._written_version_seen = self._noticed_version == self._written_version
        self._last_seen = None  # set again by the poll that wrote it, if it did
        self._services.observer.status_written(self.namespace, self.name, stored)
        return True

    def _now(self) -> datetime:
        return self._wall_clock()


_FALLBACK_SPEC = parse_watch_spec(
    {
        "region": "xx-placeholder-0",
        "projectId": "0" * 32,
        "clusterId": "00000000-0000-0000-0000-000000000000",
        "credentialsSecretRef": {"name": "placeholder"},
    }
)


def _as_key_credentials(secret: str, credentials: CloudCredentials) -> KeyCredentials:
    """A Secret's AK/SK as the source of an `assumeAgency` (STS needs a signature:
    an IAM token cannot sign)."""
    if credentials.access_key is None or credentials.secret_key is None:
        raise CredentialsNotFound(
            f"Secret {secret!r}: spec.identity.assumeAgency needs 'accessKey' and "
            "'secretKey' to sign the AssumeAgency call; a 'token' cannot"
        )
    return KeyCredentials(
        credentials.access_key, credentials.secret_key, credentials.security_token
    )


def _kept(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a loop keeps of a body: the metadata it reads (generation,
    resourceVersion, the poll-now annotation), the spec and the status. Not a copy:
    the spec and status are the watch event's own objects, and the rest of the
    body (managedFields above all, ~5 KiB of Python objects per watch) is let go."""
    meta = body.get("metadata") or {}
    kept_meta: dict[str, Any] = {
        "generation": meta.get("generation"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    poll_now = _poll_now(meta)
    if poll_now is not None:
        kept_meta["annotations"] = {POLL_NOW_ANNOTATION: poll_now}
    return {"metadata": kept_meta, "spec": body.get("spec"), "status": body.get("status")}


def _poll_now(meta: Mapping[str, Any]) -> str | None:
    annotations = meta.get("annotations") or {}
    value = annotations.get(POLL_NOW_ANNOTATION)
    return str(value) if value is not None else None


def _as_dict(value: Any) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None
