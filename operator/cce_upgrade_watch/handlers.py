"""kopf registration only: start-up settings, one poll loop per object, wake-ups.

Importing this module registers the handlers with kopf's default registry;
`commands/run.py` imports it just before starting kopf. The operator's shared
services (CCE client, Kubernetes client, credentials cache) are created in the
start-up handler and handed to every loop through kopf's `memo`.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

import httpx
import kopf

from cce_upgrade_watch.cce.client import CceClient, RetryPolicy
from cce_upgrade_watch.cce.identity import IdentityHttp
from cce_upgrade_watch.cce.senders import AiohttpSender
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.credentials import CredentialsCache
from cce_upgrade_watch.events import Event
from cce_upgrade_watch.identities import Identities, ambient_provider
from cce_upgrade_watch.kubeapi import KILL_AFTER_EVENTS_ENV, KubeApi, load_client_config
from cce_upgrade_watch.metrics import OperatorMetrics
from cce_upgrade_watch.pollloop import PollLoop, Services
from cce_upgrade_watch.resource import FINALIZER, GROUP, KOPF_PREFIX, PLURAL, VERSION

logger = logging.getLogger(__name__)

REPORTING_COMPONENT = "cce-upgrade-watch"
#: Middle-generation collections between two full ones (Python's default: 10).
FULL_COLLECTION_THRESHOLD = 100


@kopf.on.startup()
async def start_services(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config: OperatorConfig = memo.config
    tune_garbage_collector()
    logging.getLogger("kopf.objects").addFilter(QuietWakeups())
    settings.posting.reporting_component = REPORTING_COMPONENT
    settings.posting.event_name_prefix = "cce-upgrade-watch-"
    # kopf's own bookkeeping goes into annotations under our prefix, never into
    # `.status`, which belongs to the CRD's contract.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    # A dead watch connection is noticed within minutes, not hours.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    metrics: OperatorMetrics = memo.metrics
    kill_after = os.environ.get(KILL_AFTER_EVENTS_ENV, "").strip()  # test only
    kube = KubeApi(
        load_client_config(),
        reporting_component=REPORTING_COMPONENT,
        reporting_instance=settings.posting.reporting_instance,
        kill_after_events=int(kill_after) if kill_after.isdigit() else None,
    )
    memo.kube = kube
    memo.loops = {}
    metrics.watch_count(lambda: len(memo.loops))
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


@kopf.on.cleanup()
async def stop_services(memo: kopf.Memo, **_: Any) -> None:
    services: Services | None = memo.get("services")
    if services is not None:
        await services.cce.aclose()
        if services.identities is not None:
            await services.identities.http.aclose()
    kube: KubeApi | None = memo.get("kube")
    if kube is not None:
        kube.close()


# The loop exits by itself when its stop flag is set (it sleeps on that flag);
# only a poll stuck in a request is cancelled, after the backoff.
@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_backoff=5.0, cancellation_timeout=10.0)
async def poll(
    body: kopf.Body,
    uid: str,
    namespace: str | None,
    name: str,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """The object's poll loop, for as long as the object exists."""

    kube: KubeApi = memo.kube

    async def post_event(event: Event) -> None:
        # Created now, before the status write, under a deterministic name (not
        # queued with kopf.event, which posts later and may lose it): events.py.
        await kube.create_event(body, event)

    loop = PollLoop(body, memo.services, post_event)
    memo.loops[uid] = loop
    try:
        await loop.run(stopped)
    finally:
        loop.cancel_deferred()
        memo.loops.pop(uid, None)
        memo.metrics.forget(namespace or "", name)
        # The watch is gone (or no longer ours): its credentials go too, unless
        # another live watch names the same Secret.
        in_use = {key for other in memo.loops.values() if (key := other.credentials_key)}
        memo.services.credentials.retain(in_use)
        if memo.services.identities is not None:
            memo.services.identities.retain(
                set().union(*(other.identity_keys for other in memo.loops.values()))
            )


class QuietWakeups(logging.Filter):
    """kopf logs every raw-event handler call at INFO: one line per watch event of
    every object, which says nothing. Drop those lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Handler 'wake_on_change'")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def wake_on_change(body: kopf.Body, uid: str, memo: kopf.Memo, **_: Any) -> None:
    """Raw watch events cost no API write: use them to wake a loop early.

    A coroutine, so it runs on the event loop: a plain function would be sent to
    kopf's thread pool for every watch event of every object (a thread hop each),
    and would set the loop's asyncio.Event from another thread, which is unsafe.
    """
    forget_managed_fields(body)
    loop: PollLoop | None = memo.get("loops", {}).get(uid)
    if loop is not None:
        loop.notice(body)


def forget_managed_fields(body: kopf.Body) -> None:
    """Drop `metadata.managedFields` from the body kopf keeps for the object.

    kopf holds the newest body of every object for as long as it exists (the
    daemon's live view, replaced by each watch event; this handler sees every
    event, before the daemon does). Server-side apply's field ownership is read
    by nothing here or in kopf, yet as Python objects it is about a third of a
    body: 6-10 KB per watch (docs/PERFORMANCE.md). `body["metadata"]` is kopf's
    own parsed dict, so this frees it for good, until the next event.
    """
    meta = body.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
