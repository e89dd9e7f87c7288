"""README's "What the watch tells you" names what the code sets: every lifecycle
condition reason and every lifecycle Event (with its type), no other; its
Prometheus and console examples use the CRD's column and the status' fields."""

from __future__ import annotations

import re

from cce_upgrade_watch.events import EventReason, EventType
from cce_upgrade_watch.lifecycle_conditions import LIFECYCLE_CONDITIONS, LifecycleReason
from tests.unit.shipping._support import CRD_FILE, REPO_ROOT, yaml_document

README = REPO_ROOT / "README.md"
#: The workflow's own Events (README's "The resource" section lists them).
WORKFLOW_EVENTS = {
    EventReason.WORKFLOW_DISCOVERED,
    EventReason.PHASE_CHANGED,
    EventReason.TASK_STATUS_CHANGED,
    EventReason.POLL_FAILED,
    EventReason.POLL_RECOVERED,
    EventReason.WORKFLOW_GONE,
    EventReason.MORE_CHANGES,
}


def section() -> str:
    text = README.read_text()
    return text.split("## What the watch tells you")[1].split("\n## ")[0]


def table_rows(text: str, header: str) -> list[list[str]]:
    block = text.split(header)[1].split("\n\n")[0]
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in block.strip().splitlines()[1:]  # after the --- row
    ]


def test_the_conditions_table_names_every_reason_the_core_sets() -> None:
    rows = table_rows(section(), "| condition | True | False | Unknown |")
    assert [row[0] for row in rows] == [f"`{kind}`" for kind in LIFECYCLE_CONDITIONS]
    named = set(re.findall(r"`(\w+)`", " ".join(" ".join(row[1:]) for row in rows)))
    named |= set(re.findall(r"reason `(\w+)`", section()))
    reasons = {str(reason) for reason in LifecycleReason}
    assert reasons <= named, reasons - named


def test_the_events_table_is_the_lifecycle_events() -> None:
    rows = table_rows(section(), "| reason | type | when |")
    documented: dict[str, str] = {}
    for reasons, kind, _ in rows:
        for reason in re.findall(r"`(\w+)`", reasons):
            documented[reason] = kind
    lifecycle = {str(r) for r in EventReason} - {str(r) for r in WORKFLOW_EVENTS}
    assert set(documented) == lifecycle
    # The Warnings are the ones the core posts as Warning; the rest Normal.
    warnings = {"PreCheckFailed", "UpgradeSoon"}
    assert {r for r, kind in documented.items() if kind == str(EventType.WARNING)} == warnings
    assert set(documented.values()) == {str(EventType.NORMAL), str(EventType.WARNING)}
    source = (REPO_ROOT / "operator/cce_upgrade_watch/lifecycle_events.py").read_text()
    for reason in warnings:
        constant = EventReason(reason).name
        assert re.search(rf"EventType\.WARNING,\s*EventReason\.{constant}\b", source), reason


def test_wide_output_column_and_custom_columns_exist() -> None:
    crd = yaml_document(CRD_FILE)
    (version,) = crd["spec"]["versions"]
    columns = {c["name"].upper(): c for c in version["additionalPrinterColumns"]}
    assert columns["NEXT UPGRADE"]["jsonPath"] == ".status.nextUpgrade.notBefore"
    assert "NEXT UPGRADE" in section()
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for path in re.findall(r"\.status\.([\w.]+)", section()):
        node = status
        for key in path.split("."):
            assert key in node, f".status.{path} is not in the CRD"
            node = node[key].get("properties", {})
