"""The lifecycle conditions: `PreCheckPassed`, `UpgradeScheduled`, `UpToDate`. Pure.

They stand beside the four kstatus conditions (`conditions.py`), which they
never change: kstatus, Flux, Argo CD and `kubectl wait` read only those four.
Each is derived from the lifecycle sections of the new status and `now`:

- `PreCheckPassed`: True `Passed`, or `RisksToConfirm` (passed; its findings
  must be confirmed before the upgrade); False `FatalFindings`, `CheckError`
  (the check itself could not run) or `Expired` (its `expireTime` passed);
  Unknown `InProgress` or `NotRun` (no pre-check exists).
- `UpgradeScheduled`: True `Scheduled`, or `StartsSoon` (within
  `spec.lifecycle.upgradeSoonLeadTime` of `notBefore`, or past it); False `NoPlan`.
- `UpToDate`: True `OnSuggestedPatch`; False `PatchAvailable`.

Any of them is Unknown with reason `Unavailable` when its call is not offered
(404/403; the message says which). Before the first answer of its part, and
when the part is turned off in `spec.lifecycle`, a condition is absent: absent
says "not known (yet)", Unknown says "asked, and the cloud cannot tell". So a
watch reads exactly as before until the lifecycle calls have answered.

`StartsSoon` is what makes `UpgradeSoon` exactly once: the Event is posted with
the status write that stores the new reason, and derives from the stored one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cce_upgrade_watch.cce.timestamps import format_rfc3339
from cce_upgrade_watch.conditions import ConditionState, ConditionType, find_condition
from cce_upgrade_watch.lifecycle_parts import Part, PartState, enabled_parts
from cce_upgrade_watch.lifecycle_sections import parse_time
from cce_upgrade_watch.spec import WatchSpec

__all__ = [
    "LIFECYCLE_CONDITIONS",
    "LifecycleReason",
    "derive_lifecycle_conditions",
    "describe_findings",
    "describe_plan",
    "plan_of",
    "precheck_verdict",
    "time_transitions",
]

#: The lifecycle conditions, in the order they follow the four kstatus ones.
LIFECYCLE_CONDITIONS = (
    ConditionType.PRECHECK_PASSED,
    ConditionType.UPGRADE_SCHEDULED,
    ConditionType.UP_TO_DATE,
)
# metav1.Condition allows 32 kB; the message also lands in Events: keep it short.
_MAX_MESSAGE = 900
#: Findings named in a message.
_NAMED_FINDINGS = 3


class LifecycleReason(StrEnum):
    """Reasons of the lifecycle conditions."""

    PASSED = "Passed"
    RISKS_TO_CONFIRM = "RisksToConfirm"
    FATAL_FINDINGS = "FatalFindings"
    CHECK_ERROR = "CheckError"
    EXPIRED = "Expired"
    IN_PROGRESS = "InProgress"
    NOT_RUN = "NotRun"
    SCHEDULED = "Scheduled"
    STARTS_SOON = "StartsSoon"
    NO_PLAN = "NoPlan"
    ON_SUGGESTED_PATCH = "OnSuggestedPatch"
    PATCH_AVAILABLE = "PatchAvailable"
    UNAVAILABLE = "Unavailable"


#: `PreCheckPassed` reasons by what they say of the pre-check.
_FAILED = frozenset({LifecycleReason.FATAL_FINDINGS, LifecycleReason.CHECK_ERROR})
_PASSED = frozenset({LifecycleReason.PASSED, LifecycleReason.RISKS_TO_CONFIRM})
_ENDED_PHASES = frozenset({"Success", "Failed", "Error"})


def derive_lifecycle_conditions(
    status: Mapping[str, Any], spec: WatchSpec, now: datetime
) -> list[ConditionState]:
    """The lifecycle conditions of the parts `spec.lifecycle` turns on, for the
    lifecycle sections of `status` (the new one) at `now`."""
    enabled = enabled_parts(spec)
    conditions: list[ConditionState] = []
    if Part.PRECHECK in enabled and _answered(status, Part.PRECHECK):
        conditions.append(_precheck_passed(status, now))
    if Part.PLANS in enabled and _answered(status, Part.PLANS):
        conditions.append(_upgrade_scheduled(status, spec.lifecycle.upgrade_soon_lead_time, now))
    if Part.VERSIONS in enabled and _answered(status, Part.VERSIONS):
        conditions.append(_up_to_date(status))
    return conditions


def _answered(status: Mapping[str, Any], part: Part) -> bool:
    return _state_entry(status, part).get("state") in set(PartState)


def _unknown(
    kind: ConditionType, status: Mapping[str, Any], part: Part, what: str
) -> ConditionState | None:
    """Unknown when the part is unavailable, else None."""
    entry = _state_entry(status, part)
    if entry.get("state") == PartState.UNAVAILABLE:
        return ConditionState(
            kind,
            None,
            LifecycleReason.UNAVAILABLE,
            _bounded(f"The CCE API does not give {what} here: {entry.get('message') or '?'}"),
        )
    return None


# -------------------------------------------------------------- pre-check


def _precheck_passed(status: Mapping[str, Any], now: datetime) -> ConditionState:
    kind = ConditionType.PRECHECK_PASSED
    unknown = _unknown(kind, status, Part.PRECHECK, "the pre-check")
    if unknown is not None:
        return unknown
    section = status.get("preCheck")
    if not isinstance(section, Mapping):
        return ConditionState(kind, None, LifecycleReason.NOT_RUN, "No pre-check has run")
    name = _precheck_name(section)
    phase = section.get("phase")
    expires = parse_time(section.get("expireTime"))
    fatal = _count(section, "fatal")
    if phase in _ENDED_PHASES and expires is not None and expires <= now:
        return ConditionState(
            kind,
            False,
            LifecycleReason.EXPIRED,
            _bounded(
                f"{name} expired at {format_rfc3339(expires)} ({_counts(section)}); "
                "run a new pre-check before upgrading"
            ),
        )
    valid = f"; valid until {format_rfc3339(expires)}" if expires is not None else ""
    if fatal or phase == "Failed":
        return ConditionState(
            kind,
            False,
            LifecycleReason.FATAL_FINDINGS,
            _bounded(f"{name} failed ({_counts(section)}): {describe_findings(section)}"),
        )
    if phase == "Error":
        return ConditionState(
            kind,
            False,
            LifecycleReason.CHECK_ERROR,
            _bounded(f"{name} could not run: {section.get('message') or 'no message'}"),
        )
    if phase == "Success":
        findings = _findings(section)
        if findings:
            return ConditionState(
                kind,
                True,
                LifecycleReason.RISKS_TO_CONFIRM,
                _bounded(
                    f"{name} passed with {len(findings) + _count(section, 'findingsOmitted')} "
                    f"findings to confirm{valid}: {describe_findings(section)}"
                ),
            )
        return ConditionState(kind, True, LifecycleReason.PASSED, f"{name} passed{valid}")
    return ConditionState(
        kind, None, LifecycleReason.IN_PROGRESS, _bounded(f"{name} is {phase or 'in progress'}")
    )


def precheck_verdict(reason: Any) -> str | None:
    """`failed`, `passed` or `expired` for a `PreCheckPassed` reason, else None."""
    if reason in _FAILED:
        return "failed"
    if reason in _PASSED:
        return "passed"
    if reason == LifecycleReason.EXPIRED:
        return "expired"
    return None


def describe_findings(section: Mapping[str, Any]) -> str:
    """The first findings (the most severe), named with their messages."""
    findings = _findings(section)
    if not findings:
        return _text(section.get("message")) or "no findings listed"
    named = [
        f"{f.get('level') or '?'} {f.get('name') or '(unnamed)'}"
        + (f" ({f['message']})" if _text(f.get("message")) else "")
        for f in findings[:_NAMED_FINDINGS]
    ]
    more = len(findings) - _NAMED_FINDINGS + _count(section, "findingsOmitted")
    return "; ".join(named) + (f"; and {more} more" if more > 0 else "")


def _precheck_name(section: Mapping[str, Any]) -> str:
    task = _text(section.get("taskID"))
    versions = ""
    if _text(section.get("clusterVersion")) or _text(section.get("targetVersion")):
        versions = (
            f" ({section.get('clusterVersion') or '?'} -> {section.get('targetVersion') or '?'})"
        )
    return f"Pre-check {task}{versions}" if task else f"The pre-check{versions}"


def _counts(section: Mapping[str, Any]) -> str:
    return ", ".join(f"{_count(section, level)} {level}" for level in ("fatal", "warning", "info"))


def _findings(section: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    findings = section.get("findings")
    return [f for f in findings if isinstance(f, Mapping)] if isinstance(findings, list) else []


# -------------------------------------------------------------- upgrade plan


def plan_of(status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The plan fields of `status.nextUpgrade` (without the window), or None."""
    upcoming = status.get("nextUpgrade")
    if not isinstance(upcoming, Mapping):
        return None
    plan = {key: value for key, value in upcoming.items() if key != "maintenanceWindow"}
    return plan or None


def _upgrade_scheduled(
    status: Mapping[str, Any], lead_time: timedelta, now: datetime
) -> ConditionState:
    kind = ConditionType.UPGRADE_SCHEDULED
    unknown = _unknown(kind, status, Part.PLANS, "the automatic upgrade plans")
    if unknown is not None:
        return unknown
    plan = plan_of(status)
    if plan is None:
        return ConditionState(
            kind, False, LifecycleReason.NO_PLAN, "No automatic upgrade is planned"
        )
    starts = parse_time(plan.get("notBefore"))
    message = describe_plan(plan, status)
    if starts is not None and now >= starts - lead_time:
        return ConditionState(kind, True, LifecycleReason.STARTS_SOON, message)
    return ConditionState(kind, True, LifecycleReason.SCHEDULED, message)


def describe_plan(plan: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    """`Automatic upgrade v1.28 -> v1.29 not before ..., not after ...`."""
    versions = f"{plan.get('clusterVersion') or '?'} -> {plan.get('targetVersion') or '?'}"
    when = [
        f"{label} {plan[key]}"
        for key, label in (
            ("notBefore", "not before"),
            ("notAfter", "not after"),
            ("notBeforeDeadline", "starting by"),
        )
        if _text(plan.get(key))
    ]
    text = f"Automatic upgrade {versions}" + (f" {', '.join(when)}" if when else "")
    if _text(plan.get("phase")):
        text += f" (plan phase {plan['phase']})"
    upcoming = status.get("nextUpgrade")
    window = upcoming.get("maintenanceWindow") if isinstance(upcoming, Mapping) else None
    if isinstance(window, Mapping) and _text(window.get("nextStart")):
        text += f"; next maintenance window {window['nextStart']}"
    return _bounded(text)


# -------------------------------------------------------------- versions


def _up_to_date(status: Mapping[str, Any]) -> ConditionState:
    kind = ConditionType.UP_TO_DATE
    unknown = _unknown(kind, status, Part.VERSIONS, "the cluster's versions")
    if unknown is not None:
        return unknown
    versions = status.get("versions")
    versions = versions if isinstance(versions, Mapping) else {}
    release = versions.get("release") or "?"
    patch, suggested = versions.get("patch"), versions.get("suggestedPatch")
    if versions.get("patchAvailable") is True:
        return ConditionState(
            kind,
            False,
            LifecycleReason.PATCH_AVAILABLE,
            _bounded(f"Patch {suggested} is suggested for {release}; the cluster runs {patch}"),
        )
    targets = versions.get("targetVersions")
    upgrades = (
        f"; upgrades are offered to {', '.join(targets)}" if isinstance(targets, list) else ""
    )
    return ConditionState(
        kind,
        True,
        LifecycleReason.ON_SUGGESTED_PATCH,
        _bounded(
            f"The cluster runs {release} {patch or ''}".rstrip()
            + f", the suggested patch{upgrades}"
        ),
    )


# -------------------------------------------------------------- time


def time_transitions(status: Mapping[str, Any] | None, spec: WatchSpec) -> Iterator[datetime]:
    """The moments at which `status` will change with time alone: an upgrade
    entering the lead time, a pre-check expiring, a maintenance window starting
    (its `nextStart` moves on)."""
    status = status if isinstance(status, Mapping) else {}
    conditions = status.get("conditions")
    enabled = enabled_parts(spec)
    scheduled = find_condition(conditions, ConditionType.UPGRADE_SCHEDULED)
    plan = plan_of(status)
    if (
        Part.PLANS in enabled
        and plan is not None
        and scheduled is not None
        and scheduled.get("reason") == LifecycleReason.SCHEDULED
    ):
        starts = parse_time(plan.get("notBefore"))
        if starts is not None:
            yield starts - spec.lifecycle.upgrade_soon_lead_time
    checked = find_condition(conditions, ConditionType.PRECHECK_PASSED)
    section = status.get("preCheck")
    if (
        Part.PRECHECK in enabled
        and isinstance(section, Mapping)
        and checked is not None
        and checked.get("reason") != LifecycleReason.EXPIRED
    ):
        expires = parse_time(section.get("expireTime"))
        if expires is not None:
            yield expires
    upcoming = status.get("nextUpgrade")
    window = upcoming.get("maintenanceWindow") if isinstance(upcoming, Mapping) else None
    if Part.WINDOW in enabled and isinstance(window, Mapping):
        start = parse_time(window.get("nextStart"))
        if start is not None:
            yield start


# -------------------------------------------------------------- helpers


def _state_entry(status: Mapping[str, Any], part: Part) -> Mapping[str, Any]:
    lifecycle = status.get("lifecycle")
    entry = lifecycle.get(str(part)) if isinstance(lifecycle, Mapping) else None
    return entry if isinstance(entry, Mapping) else {}


def _count(section: Mapping[str, Any], key: str) -> int:
    value = section.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _bounded(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
