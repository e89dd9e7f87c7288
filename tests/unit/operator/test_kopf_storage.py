"""kopf_storage.py: kopf builds no diff base for an operator of watch events only;
and kopf lets go of an idle object's last event soon (handlers.shorten_idle_workers)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import kopf
from kopf._core.reactor import queueing

import cce_upgrade_watch.handlers  # noqa: F401 (registers the operator's handlers)
from cce_upgrade_watch.handlers import KOPF_WORKER_IDLE_SECONDS, shorten_idle_workers
from cce_upgrade_watch.kopf_storage import NoDiffBase, only_event_handlers
from cce_upgrade_watch.resource import GROUP, PLURAL, VERSION


def big_body() -> kopf.Body:
    return kopf.Body(
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CceUpgradeWatch",
            "metadata": {"name": "w", "namespace": "ns", "uid": "u", "labels": {"a": "b"}},
            "spec": {"clusterId": "c"},
            "status": {"points": [{"task": str(i), "status": "Init"} for i in range(100)]},
        }
    )


def test_the_operators_registry_has_only_event_handlers() -> None:
    # If a change handler or a daemon is ever added, start-up keeps kopf's own
    # diff base (handlers.start_services); this says when that happens.
    assert only_event_handlers(kopf.get_default_registry())


def test_a_change_handler_or_a_daemon_needs_the_diff_base() -> None:
    def noop(**_: Any) -> None:
        return None

    with_create = kopf.OperatorRegistry()
    kopf.on.create(GROUP, VERSION, PLURAL, registry=with_create)(noop)
    with_daemon = kopf.OperatorRegistry()
    kopf.daemon(GROUP, VERSION, PLURAL, registry=with_daemon)(noop)
    with_event = kopf.OperatorRegistry()
    kopf.on.event(GROUP, VERSION, PLURAL, registry=with_event)(noop)

    assert not only_event_handlers(with_create)
    assert not only_event_handlers(with_daemon)
    assert only_event_handlers(with_event)


def test_the_diff_base_is_empty_and_never_stored() -> None:
    storage = NoDiffBase()
    body = big_body()
    patch = kopf.Patch()

    assert storage.build(body=body) == {}
    assert storage.fetch(body=body) is None
    storage.store(body=body, patch=patch, essence=kopf.BodyEssence(spec={"x": 1}))
    assert not patch  # nothing written to the object


def test_kopf_lets_go_of_an_objects_last_event_soon_after_it() -> None:
    """kopf's worker for an object holds the object's last event (its whole body)
    while it waits for the next one: 5 s by kopf's default. With the operator's
    settings it ends, and lets the body go, within about 0.5 s."""
    settings = kopf.OperatorSettings()
    shorten_idle_workers(settings)
    assert settings.queueing.idle_timeout == KOPF_WORKER_IDLE_SECONDS <= 1.0

    class Body(dict[str, Any]):
        pass  # a dict that can be weakly referenced

    async def scenario() -> bool:
        processed = asyncio.Event()

        async def processor(**_: Any) -> None:
            processed.set()

        key: Any = ("resource", "u1")
        backlog: asyncio.Queue[Any] = asyncio.Queue()
        streams: dict[Any, queueing.Stream] = {key: queueing.Stream(backlog, asyncio.Event())}
        raw = Body(type="ADDED", object={"metadata": {"uid": "u1"}})
        gone = weakref.ref(raw)
        await backlog.put(raw)
        del raw
        worker = asyncio.create_task(
            queueing.worker(
                signaller=asyncio.Condition(),
                settings=settings,
                processor=processor,
                streams=streams,
                key=key,
            )
        )
        await asyncio.wait_for(processed.wait(), timeout=5)
        # kopf's default would keep the worker, and the body, for 5 s more.
        await asyncio.wait_for(worker, timeout=3)
        return gone() is None and key not in streams

    assert asyncio.run(scenario())
