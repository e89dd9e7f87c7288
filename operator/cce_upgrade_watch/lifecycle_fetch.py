"""The lifecycle calls of one poll: only the parts `LifecycleSchedule.due` named.

The I/O beside the poll loop's workflow list (`pollloop.py`): each due part is
one read-only call of `cce/lifecycle.py` (the pre-check: a show by the PreCheck
point's taskID, else the newest of the list), shaped by the same builders of
`cce/lifecycle_views.py` that `check -o json` uses, so the status and `check`
show the same fields. The calls go one after the other through the shared
client, under the watch's namespace as its tenant (the client shares its slots
fairly by namespace) and with the credentials the workflow list has just used;
the client bounds every answer's size already, the core bounds what it keeps.

What a part's call said becomes its `PartOutcome`: an answer; `PartNotOffered`
for a 404 (this region's gateway does not offer the API) or a 403 (this
identity may not read it), with one INFO line and no secret (the schedule asks
such a part again only every few hours); `PartFailed` for anything else, with
one WARNING line (also for an unexpected error reading one answer: the other
parts and the poll go on). Nothing here raises for a cloud failure: a lifecycle call never
fails the poll.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from cce_upgrade_watch.cce.errors import CceApiError, CceError, Forbidden
from cce_upgrade_watch.cce.lifecycle import LifecycleApi, is_not_available, not_available_reason
from cce_upgrade_watch.cce.lifecycle_views import (
    backup_section,
    plan_section,
    precheck_summary,
    versions_section,
    window_section,
)
from cce_upgrade_watch.lifecycle_parts import (
    DueCalls,
    LifecycleAnswers,
    Part,
    PartAnswer,
    PartFailed,
    PartNotOffered,
    PartOutcome,
)

logger = logging.getLogger(__name__)

#: The order of the calls within a poll (the order of the status sections).
CALL_ORDER = (Part.PRECHECK, Part.PLANS, Part.WINDOW, Part.VERSIONS, Part.BACKUPS)


async def fetch_lifecycle_parts(
    api: LifecycleApi, due: DueCalls, now: datetime, *, watch: str
) -> LifecycleAnswers:
    """Ask the cloud for the due parts; `watch` ("namespace/name") names the
    object in log lines."""
    outcomes: dict[Part, PartOutcome] = {}
    for part in CALL_ORDER:
        if part in due.parts:
            outcomes[part] = await _ask(api, part, due, now, watch)
    return LifecycleAnswers(outcomes)


async def _ask(
    api: LifecycleApi, part: Part, due: DueCalls, now: datetime, watch: str
) -> PartOutcome:
    try:
        return PartAnswer(await _section(api, part, due, now))
    except CceApiError as exc:
        if is_not_available(exc):
            reason = not_available_reason(exc)
            logger.info("%s: the lifecycle part %s is not available: %s", watch, part, reason)
            code = exc.status_code or (403 if isinstance(exc, Forbidden) else 404)
            return PartNotOffered(code, reason)
        return _failed(part, exc, watch)
    except CceError as exc:
        return _failed(part, exc, watch)
    except Exception:  # a bug reading one part must not fail the poll, nor the others
        logger.exception("%s: the lifecycle part %s could not be read", watch, part)
        return PartFailed("the operator could not read the answer (see its log)")


def _failed(part: Part, exc: CceError, watch: str) -> PartFailed:
    logger.warning("%s: the lifecycle part %s failed (asked again later): %s", watch, part, exc)
    return PartFailed(str(exc))


async def _section(api: LifecycleApi, part: Part, due: DueCalls, now: datetime) -> Any | None:
    """The part's section as `PartAnswer` documents it; None: the cloud has none."""
    if part == Part.PRECHECK:
        task = await api.newest_precheck(due.precheck_task_id)
        return precheck_summary(task) if task is not None else None
    if part == Part.PLANS:
        return plan_section(await api.list_upgrade_plans())
    if part == Part.WINDOW:
        return window_section(await api.show_maintenance_window(), now)
    if part == Part.VERSIONS:
        return versions_section(await api.show_upgrade_info()) or None
    return backup_section(await api.list_snapshot_tasks())
