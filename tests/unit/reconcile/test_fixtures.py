"""Table-driven reconcile tests: YAML inputs and expected outputs side by side.

Each file in fixtures/ is one story: a spec, a stored status (or none), then
steps, each with a poll outcome (the API's JSON as the simulator or CCE sends it,
or an error) and `now`, and the expected status and Events. The status each
step returns is stored, through a JSON round trip as the API server would, and
becomes the next step's stored status.

Every step is also replayed against its own result, which must change nothing
and emit nothing: that is what makes idle polls write-free and restarts safe.

What a step leaves unconfirmed (a first failed poll, a vanished active
workflow: see reconcile.py) goes into the next step, as the poll loop hands it
over; `expected.unconfirmed` shows it when there is any. A step with
`restart: true` starts without it, as a restarted operator does.

After an intended behaviour change, `UPDATE_RECONCILE_FIXTURES=1 pytest
tests/unit/reconcile/test_fixtures.py` rewrites the `expected` parts from the
code; review the diff as you would review code.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from cce_upgrade_watch.reconcile import NOTHING_UNCONFIRMED, Unconfirmed, reconcile, status_patch

from ._support import as_stored, event_line, make_spec, outcome_from, parse_now

FIXTURES = sorted((Path(__file__).parent / "fixtures").glob("*.yaml"))
UPDATE = os.environ.get("UPDATE_RECONCILE_FIXTURES") == "1"


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


class _FixtureDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # spell every value out: fixtures are read by people


def _save(path: Path, case: dict[str, Any]) -> None:
    text = yaml.dump(case, Dumper=_FixtureDumper, sort_keys=False, width=100, allow_unicode=True)
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_fixture(path: Path) -> None:
    case = _load(path)
    spec_raw = dict(case.get("spec") or {})
    generation = case.get("generation", 1)
    stored = case.get("stored")
    unconfirmed = NOTHING_UNCONFIRMED

    for number, step in enumerate(case["steps"]):
        if step.get("restart"):
            unconfirmed = NOTHING_UNCONFIRMED
        spec_raw.update(step.get("spec") or {})
        generation = step.get("generation", generation)
        spec = make_spec(**spec_raw)
        outcome = outcome_from(step)
        now = parse_now(step["now"])

        result = reconcile(stored, spec, generation, outcome, now, unconfirmed)

        where = f"{path.name} step {number}"
        if UPDATE:
            step["expected"] = {
                "status": result.status,
                "events": [event_line(e) for e in result.events],
            }
            if result.unconfirmed.pending:
                step["expected"]["unconfirmed"] = _unconfirmed_dict(result.unconfirmed)
        assert result.status == step["expected"]["status"], where
        assert [event_line(e) for e in result.events] == step["expected"]["events"], where
        expected_unconfirmed = step["expected"].get("unconfirmed", {})
        assert _unconfirmed_dict(result.unconfirmed) == expected_unconfirmed, where
        assert len({e.key for e in result.events}) == len(result.events), f"{where}: equal keys"

        stored = as_stored(result.status)
        replay = reconcile(
            stored, spec, generation, outcome, now + timedelta(minutes=7), unconfirmed
        )
        unconfirmed = result.unconfirmed
        assert replay.status == stored, f"{where}: replaying changed the status"
        assert replay.events == [], f"{where}: replaying emitted events"
        assert status_patch(stored, replay.status) is None, where

    if UPDATE:
        _save(path, case)


def test_fixtures_exist() -> None:
    assert len(FIXTURES) >= 15


def _unconfirmed_dict(unconfirmed: Unconfirmed) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if unconfirmed.failed_polls:
        found["failedPolls"] = unconfirmed.failed_polls
    if unconfirmed.missing is not None:
        found["missing"] = unconfirmed.missing
    return found
