"""What kopf's cause detection costs per watch event, with kopf's diff base and without.

    .venv/bin/python -m benchmarks.kopf_event

kopf runs `_detect_causes` on every watch event of every object. With its own
diff base storage that starts with a deep copy of the whole body, status
included; with `kopf_storage.NoDiffBase` (what the operator uses, since it has
only `on.event` handlers) it does not. The body is a watch's after one poll of
a running upgrade (its status as the poll loop wrote it). Reads kopf 1.45's
internals, so it may need a change with another kopf version.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import kopf
from kopf._cogs.structs import references
from kopf._core.engines import indexing
from kopf._core.reactor import inventory, processing
from tests.unit.operator.test_pollloop import (
    RUNNING,
    FakeCce,
    FakeSecrets,
    FakeWriter,
    body,
    make_services,
)

import cce_upgrade_watch.handlers  # noqa: F401 (registers the operator's handlers)
from cce_upgrade_watch.kopf_storage import NoDiffBase
from cce_upgrade_watch.pollloop import PollLoop
from cce_upgrade_watch.resource import GROUP, KIND, KOPF_PREFIX, PLURAL, VERSION

EVENTS = 5000


async def polled_body() -> dict[str, Any]:
    cce = FakeCce()
    cce.answers = [RUNNING]
    writer = FakeWriter()
    raw = body()
    raw["metadata"].update(uid="u-1", resourceVersion="12345", labels={"team": "a"})
    loop = PollLoop(raw, make_services(cce, writer, FakeSecrets()), lambda _event: None)
    loop.start()
    await loop.poll_once()
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND, **raw, "status": writer.status}


def seconds_per_event(raw: dict[str, Any], storage: kopf.DiffBaseStorage) -> float:
    settings = kopf.OperatorSettings()
    settings.persistence.diffbase_storage = storage
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    resource = references.Resource(GROUP, VERSION, PLURAL)
    memory = inventory.ResourceMemory()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(EVENTS):
            event_body = kopf.Body(raw)  # type: ignore[arg-type]
            processing._detect_causes(
                indexers=indexing.OperatorIndexers(),
                registry=kopf.get_default_registry(),
                settings=settings,
                resource=resource,
                raw_event={"type": "MODIFIED", "object": raw},  # type: ignore[typeddict-item]
                body=event_body,
                patch=kopf.Patch(body=event_body),
                memory=memory,
                local_logger=None,  # type: ignore[arg-type]
                event_logger=None,  # type: ignore[arg-type]
            )
        best = min(best, (time.process_time() - started) / EVENTS)
    return best


async def main() -> None:
    raw = await polled_body()
    print(f"body: {len(json.dumps(raw))} bytes of JSON, status {len(json.dumps(raw['status']))}")
    kopfs = kopf.AnnotationsDiffBaseStorage(prefix=KOPF_PREFIX, key="last-handled-configuration")
    for name, storage in (("kopf's diff base", kopfs), ("NoDiffBase", NoDiffBase())):
        print(f"{name}: {seconds_per_event(raw, storage) * 1e6:.0f} us of CPU per watch event")


if __name__ == "__main__":
    asyncio.run(main())
