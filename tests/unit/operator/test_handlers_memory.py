"""What kopf keeps per object stays small: handlers.py drops what nothing reads."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from cce_upgrade_watch.handlers import wake_on_change


def test_a_watch_event_leaves_kopf_s_body_without_managed_fields() -> None:
    raw: Any = {
        "metadata": {
            "name": "prod",
            "uid": "u1",
            "generation": 1,
            "managedFields": [{"manager": "kopf", "fieldsV1": {"f:metadata": {}}}],
        },
        "spec": {"clusterId": "c"},
        "status": {"phase": "Running"},
    }
    body = kopf.Body(raw)
    memo = kopf.Memo()
    memo.loops = {}

    # kopf passes many more keyword arguments; the handler takes them as **_.
    asyncio.run(wake_on_change(body=body, uid="u1", memo=memo))  # type: ignore[call-arg,arg-type]

    assert "managedFields" not in raw["metadata"]
    assert body["metadata"] == {"name": "prod", "uid": "u1", "generation": 1}
    assert body["spec"] == {"clusterId": "c"}
    assert body["status"] == {"phase": "Running"}
