"""What kopf keeps per object: no diff base, because no handler reads one.

kopf computes a "diff base" (the object's essence: spec, labels, annotations) on
every watch event of every object, for change handlers (`on.create`,
`on.update`, `on.resume`, `on.field`) and daemons. It starts with a deep copy of
the whole body, status included, copies the essence again, and diffs it against
the one stored in an annotation. This operator registers only `on.event`
handlers (`handlers.py`), which see the raw event: nothing reads the diff, yet
it cost a deep copy of every body kopf received, twice per new watch (its
ADDED and the MODIFIED of its first status) and once per status change.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff base that is always empty and never stored.

    Only for a registry without change handlers and daemons (start-up checks it:
    `only_event_handlers`): with one, kopf would see every object as new on
    every event.
    """

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None
    ) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def only_event_handlers(registry: kopf.OperatorRegistry) -> bool:
    """True when `registry` has no handler that reads a diff base: no change
    handler (create/update/resume/delete/field), no daemon or timer."""
    # kopf 1.45 has no public accessor for a registry's handlers by kind.
    return not (registry._changing.get_all_handlers() or registry._spawning.get_all_handlers())
