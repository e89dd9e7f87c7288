"""The lifecycle sections of `cce-upgrade-watch check`: pre-check, next upgrade,
versions and backups, after the workflows.

Each section comes from its own read-only call (`cce/lifecycle.py`) and is
shaped by `cce/lifecycle_views.py`, so `-o json` shows the fields the status
will. A call this region does not offer (404) or this identity may not make
(403) makes its section "not available"; it never fails the check. Any other
failure is shown in its section and makes the exit code 5, after everything
else has been printed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import httpx

from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.errors import CceApiError, CceError
from cce_upgrade_watch.cce.lifecycle import LifecycleApi, is_not_available, not_available_reason
from cce_upgrade_watch.cce.lifecycle_views import (
    backup_section,
    next_upgrade_section,
    precheck_summary,
    versions_section,
)
from cce_upgrade_watch.cce.models import UpgradeWorkflow

# The calls, by the name `notAvailable` and `errors` use.
PRECHECK = "preCheck"
PLANS = "upgradePlans"
WINDOW = "maintenanceWindow"
VERSIONS = "versions"
BACKUPS = "backups"

T = TypeVar("T")


@dataclass
class LifecycleReport:
    """What the lifecycle calls told, in the status shape."""

    sections: dict[str, Any] = field(default_factory=dict)
    #: call -> why it is not available (404 or 403)
    not_available: dict[str, str] = field(default_factory=dict)
    #: call -> any other failure
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        document = dict(self.sections)
        if self.not_available:
            document["notAvailable"] = dict(self.not_available)
        if self.errors:
            document["errors"] = dict(self.errors)
        return document


def _precheck_task_id(workflows: Sequence[UpgradeWorkflow]) -> str | None:
    """The PreCheck point's task id of the current workflow (given first)."""
    for workflow in workflows[:1]:
        for point in workflow.status.point_statuses:
            if point.task_type == "PreCheck" and point.task_id:
                return point.task_id
    return None


async def fetch_lifecycle(
    client: CceClient,
    project_id: str,
    cluster_id: str,
    *,
    endpoint: str,
    auth: httpx.Auth,
    workflows: Sequence[UpgradeWorkflow],
    now: datetime,
) -> LifecycleReport:
    """Every lifecycle call once, one after the other (`check` runs one request at a time)."""
    api = LifecycleApi(client, project_id, cluster_id, auth=auth, endpoint=endpoint)
    report = LifecycleReport()

    async def attempt(call: str, fetch: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await fetch()
        except CceApiError as exc:
            if is_not_available(exc):
                report.not_available[call] = not_available_reason(exc)
            else:
                report.errors[call] = str(exc)
        except CceError as exc:
            report.errors[call] = str(exc)
        return None

    task_id = _precheck_task_id(workflows)
    precheck = await attempt(PRECHECK, lambda: api.newest_precheck(task_id))
    if precheck is not None:
        report.sections["preCheck"] = precheck_summary(precheck)
    plans = await attempt(PLANS, api.list_upgrade_plans)
    window = await attempt(WINDOW, api.show_maintenance_window)
    next_upgrade = next_upgrade_section(plans, window, now)
    if next_upgrade:
        report.sections["nextUpgrade"] = next_upgrade
    info = await attempt(VERSIONS, api.show_upgrade_info)
    versions = versions_section(info) if info is not None else {}
    if versions:
        report.sections["versions"] = versions
    snapshots = await attempt(BACKUPS, api.list_snapshot_tasks)
    backed_up = backup_section(snapshots) if snapshots is not None else None
    if backed_up is not None:
        report.sections["lastBackupTime"] = backed_up
    return report


# -- the table ----------------------------------------------------------------------------


def render_lifecycle(report: LifecycleReport) -> list[str]:
    """The human sections, each after a blank line."""
    lines: list[str] = []
    lines += ["", *_precheck_block(report)]
    lines += ["", *_next_upgrade_block(report)]
    lines += ["", *_versions_block(report)]
    lines += ["", *_backup_block(report)]
    return lines


def _unavailable(report: LifecycleReport, *calls: str) -> str | None:
    for call in calls:
        if call in report.not_available:
            return f"not available: {report.not_available[call]}"
        if call in report.errors:
            return f"failed: {report.errors[call]}"
    return None


def _precheck_block(report: LifecycleReport) -> list[str]:
    problem = _unavailable(report, PRECHECK)
    summary = report.sections.get("preCheck")
    if problem is not None or summary is None:
        return [f"Pre-check: {problem or 'none yet'}"]
    versions = f"{summary.get('clusterVersion', '?')} -> {summary.get('targetVersion', '?')}"
    lines = [
        f"Pre-check {summary.get('taskID', '(no id)')}",
        f"  Phase:    {summary.get('phase', '-')}",
        f"  Versions: {versions}",
        f"  Expires:  {summary.get('expireTime', '-')}",
        f"  Findings: {summary['fatal']} fatal, {summary['warning']} warning, "
        f"{summary['info']} info",
    ]
    if "message" in summary:
        lines.append(f"  Message:  {summary['message']}")
    findings: list[Mapping[str, Any]] = summary.get("findings", [])
    if findings:
        lines.append("")
        rows = [("LEVEL", "KIND", "GROUP", "NAME", "ERROR CODES")] + [
            (
                str(f.get("level", "-")),
                str(f.get("kind", "-")),
                str(f.get("group", "-")),
                str(f.get("name", "-")),
                ",".join(f.get("errorCodes", [])) or "-",
            )
            for f in findings
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

        def row_text(row: Sequence[str]) -> str:
            return "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

        lines.append(row_text(rows[0]))
        for finding, row in zip(findings, rows[1:], strict=True):
            lines.append(row_text(row))
            if "message" in finding:
                lines.append(f"      {finding['message']}")
            lines.extend(f"      {text}" for text in _risk_lines(finding.get("riskSource", {})))
    if "findingsOmitted" in summary:
        lines.append(f"  ... and {summary['findingsOmitted']} more findings")
    return lines


def _risk_lines(source: Mapping[str, Any]) -> list[str]:
    lines = [
        f"deprecated API: {api.get('url', '?')} (user agent: {api.get('userAgent', '?')})"
        for api in source.get("deprecatedAPIs", [])
    ]
    lines += [f"node: {name}" for name in source.get("nodes", [])]
    lines += [f"add-on: {name}" for name in source.get("addons", [])]
    lines += [f"setting: {text}" for text in source.get("configurations", [])]
    return lines


def _next_upgrade_block(report: LifecycleReport) -> list[str]:
    upcoming = report.sections.get("nextUpgrade", {})
    lines = ["Next upgrade"]
    problem = _unavailable(report, PLANS)
    if problem is not None:
        lines.append(f"  Plan:     {problem}")
    elif "targetVersion" in upcoming or "notBefore" in upcoming:
        lines += [
            f"  Plan:     {upcoming.get('clusterVersion', '?')} -> "
            f"{upcoming.get('targetVersion', '?')} ({upcoming.get('phase', 'phase unknown')})",
            f"  When:     not before {upcoming.get('notBefore', '-')}, not after "
            f"{upcoming.get('notAfter', '-')}, starts by {upcoming.get('notBeforeDeadline', '-')}",
        ]
    else:
        lines.append("  Plan:     none scheduled")
    problem = _unavailable(report, WINDOW)
    window = upcoming.get("maintenanceWindow")
    if problem is not None:
        lines.append(f"  Window:   {problem}")
    elif window:
        hours = window.get("durationHours")
        lines.append(
            f"  Window:   {window.get('weeklyPeriod', '?')} from {window.get('startTime', '?')} "
            f"UTC"
            + (f" for {hours} h" if hours is not None else "")
            + (f" (scope: {window['scope']})" if "scope" in window else "")
        )
        lines.append(f"  Next window: {window.get('nextStart', 'unknown')}")
    else:
        lines.append("  Window:   none set")
    return lines


def _versions_block(report: LifecycleReport) -> list[str]:
    problem = _unavailable(report, VERSIONS)
    versions = report.sections.get("versions")
    if problem is not None or not versions:
        return [f"Versions: {problem or 'unknown'}"]
    lines = [
        "Versions",
        f"  Release:  {versions.get('release', '-')}",
        f"  Patch:    {versions.get('patch', '-')}",
    ]
    suggested = versions.get("suggestedPatch")
    if suggested is not None:
        note = " (a newer patch is available)" if versions.get("patchAvailable") else ""
        lines.append(f"  Suggested patch: {suggested}{note}")
    targets = versions.get("targetVersions")
    lines.append(f"  Upgrade targets: {', '.join(targets) if targets else 'none'}")
    last = versions.get("lastUpgrade")
    if last:
        lines.append(
            f"  Last upgrade: {last.get('phase', '?')} at {last.get('completionTime', '-')}"
        )
    return lines


def _backup_block(report: LifecycleReport) -> list[str]:
    problem = _unavailable(report, BACKUPS)
    return [f"Last backup: {problem or report.sections.get('lastBackupTime', 'none')}"]
