"""kopf registration only: start-up settings, the shared scheduler, watch events.

Importing this module registers the handlers with kopf's default registry;
`commands/run.py` imports it just before starting kopf. The operator's shared
services (CCE client, Kubernetes client, credentials cache) and the poll
scheduler (`scheduler.py`) are created in the start-up handler and kept in
kopf's `memo`; watch events add, wake and remove the objects' poll loops.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Awaitable, Iterable
from typing import Any, Protocol

import httpx
import kopf

from cce_upgrade_watch.cce.client import CceClient, RetryPolicy
from cce_upgrade_watch.cce.identity import IdentityHttp
from cce_upgrade_watch.cce.senders import AiohttpSender
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.credentials import CredentialsCache
from cce_upgrade_watch.events import Event
from cce_upgrade_watch.identities import Identities, ambient_provider
from cce_upgrade_watch.kopf_storage import NoDiffBase, only_event_handlers
from cce_upgrade_watch.kubeapi import KILL_AFTER_EVENTS_ENV, KubeApi, load_client_config
from cce_upgrade_watch.metrics import OperatorMetrics
from cce_upgrade_watch.pollloop import PollLoop, Services
from cce_upgrade_watch.resource import FINALIZER, GROUP, KOPF_PREFIX, PLURAL, VERSION
from cce_upgrade_watch.resync import KnownLoop, resync_forever
from cce_upgrade_watch.scheduler import Scheduler

logger = logging.getLogger(__name__)

REPORTING_COMPONENT = "cce-upgrade-watch"
#: Middle-generation collections between two full ones (Python's default: 10).
FULL_COLLECTION_THRESHOLD = 100
#: How long kopf keeps an idle object's worker, and the last event it holds.
KOPF_WORKER_IDLE_SECONDS = 0.5


@kopf.on.startup()
async def start_services(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo.config
    paused = kopf_pause_toggles()
    if paused is None and not settings.peering.standalone:
        raise kopf.PermanentError(
            "cannot follow kopf's pauses (peering) in this kopf version: a paused "
            "replica would keep polling; run without --peering, or with kopf 1.45"
        )
    tune_garbage_collector()
    logging.getLogger("kopf.objects").addFilter(QuietWakeups())
    settings.posting.reporting_component = REPORTING_COMPONENT
    settings.posting.event_name_prefix = "cce-upgrade-watch-"
    # Only raw-event handlers: kopf adds no finalizer and stores no state. Earlier
    # versions ran a daemon per object, for which kopf put FINALIZER on each; with
    # it named here, kopf removes it from every object on its first event (kopf's
    # `process_resource_causes`: no handler requires it, yet it is there), so
    # their objects can be deleted. Any bookkeeping would go into annotations
    # under our prefix, never into `.status`, which belongs to the CRD's contract.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = (
        # Nothing reads kopf's diff base without change handlers: skip building it.
        NoDiffBase()
        if only_event_handlers(kopf.get_default_registry())
        else kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX, key="last-handled-configuration")
    )
    # A dead watch connection is noticed within minutes, not hours.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    shorten_idle_workers(settings)
    metrics: OperatorMetrics = memo.metrics
    kill_after = os.environ.get(KILL_AFTER_EVENTS_ENV, "").strip()  # test only
    kube = KubeApi(
        load_client_config(),
        reporting_component=REPORTING_COMPONENT,
        reporting_instance=settings.posting.reporting_instance,
        kill_after_events=int(kill_after) if kill_after.isdigit() else None,
    )
    memo.kube = kube
    scheduler = Scheduler(max_in_flight=config.max_concurrent_polls)
    memo.scheduler = scheduler
    memo.services = Services(
        config=config,
        cce=CceClient(
            timeout=httpx.Timeout(config.cce_timeout, connect=min(5.0, config.cce_timeout)),
            max_in_flight=config.cce_max_in_flight,
            max_response_bytes=config.cce_max_response_bytes,
            deadline=config.cce_timeout,
            retry=RetryPolicy(attempts=config.cce_max_attempts),
            on_request=metrics.observe_cce_request,
            endpoint_policy=config.endpoint_policy,
        ),
        status_writer=kube,
        credentials=CredentialsCache(kube.read_secret_data, ttl=config.secret_cache_ttl),
        observer=metrics,
        identities=make_identities(config, kube),
    )
    memo.paused = paused
    if paused is not None:
        memo.pause_follower = asyncio.create_task(stop_while_paused(paused, memo))
    scheduler.start()
    memo.loops = {}
    metrics.watch_count(lambda: len(memo.loops))
    memo.resync = asyncio.create_task(
        resync_forever(
            config.resync_interval,
            lambda: known_loops(memo),
            kube.list_watch_uids,
            lambda uids: stop_polling(memo, uids),
        ),
        name="resync",
    )


def make_identities(config: OperatorConfig, kube: KubeApi) -> Identities:
    """Keyless identities: STS/IAM/metadata through their own small connection pool."""
    timeout = httpx.Timeout(config.cce_timeout, connect=min(5.0, config.cce_timeout))
    http = IdentityHttp(AiohttpSender(timeout, max_connections=8))
    ambient = None
    if config.ambient_credentials:
        ambient = ambient_provider(
            config.ambient_credentials,
            http=http,
            env=os.environ,
            metadata_endpoint=config.metadata_endpoint,
            sts_endpoint=config.sts_endpoint,
            policy=config.endpoint_policy,
        )
    return Identities(
        http=http,
        mint_token=kube.create_service_account_token,
        policy=config.endpoint_policy,
        ambient=ambient,
        ambient_namespaces=config.ambient_namespaces,
        sts_endpoint=config.sts_endpoint,
        iam_endpoint=config.iam_endpoint,
    )


def shorten_idle_workers(settings: kopf.OperatorSettings) -> None:
    """Let kopf's per-object workers end 0.5 s after their last event, not 5 s.

    While a worker waits for its object's next event it keeps the last one: the
    whole parsed body, 15-23 KB of Python objects. While new objects arrive at
    ~150 a second, 5 s of them (~750) had such a worker waiting; at N=10,000 the
    peak RSS fell by 11 MiB in one run (docs/PERFORMANCE.md, change 24). A later
    event (the status write's own, a spec change) gets a new worker: a task.
    """
    settings.queueing.idle_timeout = KOPF_WORKER_IDLE_SECONDS


def tune_garbage_collector() -> None:
    """Keep Python's cyclic collector from walking the long-lived heap over and over.

    Nearly everything the operator holds lives as long as the process (modules,
    clients, kopf's per-object state, one poll loop per watch), while every poll
    allocates short-lived objects, which trigger collections. A full collection
    walks the whole heap: with 5000 watches ~150 ms, about once a minute, a tenth
    of the operator's CPU. What exists at start-up is frozen out of collections,
    and full collections come ten times more rarely. Young objects are collected
    as usual, so short-lived cycles are freed as before.
    """
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_THRESHOLD)


class PauseToggles(Protocol):
    """kopf's `operator_paused` (an `aiotoggles.ToggleSet`): on while paused."""

    def is_on(self) -> bool: ...

    def wait_for(self, value: bool) -> Awaitable[None]: ...


#: The kopf root task that holds `operator_paused` (kopf 1.45, `spawn_tasks`).
KOPF_PAUSE_HOLDER = "daemon killer"


def kopf_pause_toggles() -> PauseToggles | None:
    """kopf's pause flag, which it hands to its own tasks but not to handlers.

    When a peer of higher priority is alive, kopf pauses: it closes its watch
    streams and stops the daemons, never telling raw-event handlers. The
    scheduler must stop polling then, or two replicas would poll. kopf 1.45's
    root task "daemon killer" (`daemons.daemon_killer`, run by `aiotasks.guard`)
    holds the flag as an argument; read it from there (read only). None: not
    found (another kopf version): start-up refuses peering then.
    """
    for task in asyncio.all_tasks():
        if task.get_name() != KOPF_PAUSE_HOLDER:
            continue
        guard = getattr(task.get_coro(), "cr_frame", None)
        killer = guard.f_locals.get("coro") if guard is not None else None
        frame = getattr(killer, "cr_frame", None)
        paused = frame.f_locals.get("operator_paused") if frame is not None else None
        if callable(getattr(paused, "is_on", None)) and callable(getattr(paused, "wait_for", None)):
            return paused
    return None


@kopf.on.cleanup()
async def stop_services(memo: kopf.Memo, **_: Any) -> None:
    for name in ("pause_follower", "resync"):
        task: asyncio.Task[None] | None = memo.get(name)
        if task is not None:
            task.cancel()
    scheduler: Scheduler | None = memo.get("scheduler")
    if scheduler is not None:
        # As kopf stopped the daemons: polls in flight may end for 5 s, then are
        # cancelled; a poll stuck after that is abandoned 10 s later.
        await scheduler.stop(grace=5.0, abandon_after=10.0)
    services: Services | None = memo.get("services")
    if services is not None:
        await services.cce.aclose()
        if services.identities is not None:
            await services.identities.http.aclose()
    kube: KubeApi | None = memo.get("kube")
    if kube is not None:
        kube.close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def follow_watch_events(
    type: str | None,  # kopf's name for the watch event's type
    body: kopf.Body,
    uid: str,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Every watch event of every object: the only thing kopf does for them.

    The first event of an object (the listing at start-up or after a resume,
    ADDED, or any other of a uid not seen yet) hands it to the scheduler; later
    ones wake it early on a spec change or poll-now (`PollLoop.notice`); DELETED,
    or a deletion under way, removes it. No daemon, so kopf needs no finalizer,
    keeps no task and no body per object (docs/PERFORMANCE.md).

    A coroutine, so it runs on the event loop: a plain function would be sent to
    kopf's thread pool for every watch event of every object (a thread hop each),
    and would touch the scheduler from another thread, which is unsafe.
    """
    loops: dict[str, PollLoop] | None = memo.get("loops")
    if loops is None:  # start-up did not finish
        return
    forget_managed_fields(body)
    meta = body.get("metadata") or {}
    paused = memo.get("paused")
    if (
        type == "DELETED"
        or meta.get("deletionTimestamp")
        or (paused is not None and paused.is_on())
    ):
        # kopf stopped a daemon in each of these cases too; while paused (a peer
        # of higher priority works) an event that sneaked through starts nothing.
        stop_polling(memo, [uid])
        return
    loop = loops.get(uid)
    if loop is not None:
        loop.notice(body)
        return
    scheduler: Scheduler = memo.scheduler
    kube: KubeApi = memo.kube
    # The Event's involved object: the name and uid never change; holding the
    # first body for it would keep a second body per object alive.
    involved = {"metadata": {k: meta.get(k) for k in ("name", "namespace", "uid")}}

    async def post_event(event: Event) -> None:
        # Created now, before the status write, under a deterministic name (not
        # queued with kopf.event, which posts later and may lose it): events.py.
        await kube.create_event(involved, event)

    loop = PollLoop(body, memo.services, post_event, wake=lambda: scheduler.wake(uid))
    loops[uid] = loop
    scheduler.add(uid, loop, tenant=loop.namespace)


def known_loops(memo: kopf.Memo) -> dict[str, KnownLoop]:
    loops: dict[str, PollLoop] = memo.loops
    return {uid: KnownLoop(loop.namespace, loop.added_at) for uid, loop in loops.items()}


def stop_polling(memo: kopf.Memo, uids: Iterable[str]) -> None:
    """Remove the watches from the scheduler (a poll in flight ends, and is not
    followed by another: a status write to a deleted object finds it gone), and
    drop what only they used."""
    loops: dict[str, PollLoop] = memo.loops
    scheduler: Scheduler = memo.scheduler
    gone = [(uid, loop) for uid in uids if (loop := loops.pop(uid, None)) is not None]
    if not gone:
        return
    for uid, loop in gone:
        scheduler.remove(uid)
        loop.cancel_deferred()
        memo.metrics.forget(loop.namespace, loop.name)
    # The watches are gone (or no longer ours): their credentials go too, unless
    # another live watch names the same Secret.
    services: Services = memo.services
    in_use = {key for other in loops.values() if (key := other.credentials_key)}
    services.credentials.retain(in_use)
    if services.identities is not None:
        services.identities.retain(set().union(*(other.identity_keys for other in loops.values())))


async def stop_while_paused(paused: PauseToggles, memo: kopf.Memo) -> None:
    """kopf pauses (peering: a peer of higher priority is alive) by closing its
    watch streams, and used to stop every daemon; stop every poll the same way.
    On resume kopf lists the objects again, and each one's first event hands it
    back to the scheduler (`follow_watch_events`)."""
    while True:
        await paused.wait_for(True)
        logger.info("paused (peering): stopping the polls of %d watches", len(memo.loops))
        stop_polling(memo, list(memo.loops))
        await paused.wait_for(False)
        logger.info("resumed (peering): watches come back with kopf's listing")


class QuietWakeups(logging.Filter):
    """kopf logs every raw-event handler call at INFO: one line per watch event of
    every object, which says nothing. Drop those lines (not its failures)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not str(record.msg).startswith(
            "Handler 'follow_watch_events'"
        )


def forget_managed_fields(body: kopf.Body) -> None:
    """Drop `metadata.managedFields` from a watch event's body.

    The poll loop keeps the newest body of its object for as long as it exists
    (`PollLoop.notice`). Server-side apply's field ownership is read by nothing
    here or in kopf, yet as Python objects it is about a third of a body: 6-10 KB
    per watch (docs/PERFORMANCE.md). `body["metadata"]` is kopf's parsed dict of
    the event, so this frees it for good.
    """
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
