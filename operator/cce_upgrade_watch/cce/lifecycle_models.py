"""Pydantic models of the read-only calls around an upgrade, tolerant of what the API sends.

The calls (see `lifecycle.py`): a pre-check task and the list of them, the
automatic upgrade plans, the maintenance window, the upgrade info (versions)
and the master snapshot (backup) tasks. Field names are the official SDK's
(`huaweicloudsdkcce` model classes, `attribute_map`).

Everything here is informational: no answer of these calls may stop the watch
of an upgrade. So, unlike the workflow list, a field that cannot be read is
dropped (None, or left out of a list), never an error; enum-like fields stay
plain strings so a value never seen before survives; every timestamp (Go's
layout or RFC 3339) becomes a timezone-aware UTC datetime through
`timestamps.py`; strings are cut at `MAX_STRING` characters and lists at
`MAX_LIST` entries before anything stores them. `items` may be a list or one
object (the SDK types the plan list's `items` as a single plan).

`parse_lifecycle` is the one entry point for decoded bodies: it raises
`LifecycleParseError` only when the answer is not a JSON object at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cce_upgrade_watch.cce.errors import TimestampParseError, WorkflowParseError
from cce_upgrade_watch.cce.models import MAX_STRING  # the status schema's maxLength
from cce_upgrade_watch.cce.timestamps import parse_timestamp

#: Most entries kept of any list (pre-check items, nodes, plans, tasks...).
MAX_LIST = 500
#: Most error codes kept per pre-check item.
MAX_ERROR_CODES = 10


class LifecycleParseError(WorkflowParseError):
    """A lifecycle answer is not a JSON object (reason `InvalidResponse`)."""


def _text(value: Any) -> str | None:
    # Absent, empty or not string-like: dropped (None), never an error.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    if not text:
        return None
    return text if len(text) <= MAX_STRING else text[: MAX_STRING - 3] + "..."


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except TimestampParseError:
        return None


def _whole_number(value: Any) -> int | None:
    # duration_hours: an int in the SDK; "4" is accepted, anything else dropped.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(10**6) < value < 10**6 else None
    if isinstance(value, float) and value.is_integer():
        return _whole_number(int(value))
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 6:
        return int(value.strip())
    return None


def _objects(value: Any) -> list[Any]:
    """A list of objects (or a single object, as the doc examples show); entries
    that are not objects are dropped, and at most `MAX_LIST` are kept."""
    if isinstance(value, dict):
        return [value] if value else []
    if not isinstance(value, list):
        return []
    return [entry for entry in value[:MAX_LIST] if isinstance(entry, dict) and entry]


def _texts(limit: int) -> Any:
    def validate(value: Any) -> list[str]:
        if not isinstance(value, list):
            value = [value] if value is not None else []
        kept = [text for text in (_text(entry) for entry in value[:MAX_LIST]) if text]
        return kept[:limit]

    return BeforeValidator(validate)


def _object(value: Any) -> Any:
    # A nested object that is anything else describes nothing.
    return value if isinstance(value, dict) else {}


Text = Annotated[str | None, BeforeValidator(_text)]
Time = Annotated[datetime | None, BeforeValidator(_time)]
WholeNumber = Annotated[int | None, BeforeValidator(_whole_number)]
Texts = Annotated[list[str], _texts(MAX_LIST)]
OBJECTS = BeforeValidator(_objects)
AN_OBJECT = BeforeValidator(_object)

M = TypeVar("M", bound="_Model")


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class TaskMetadata(_Model):
    uid: Text = None
    name: Text = None
    creation_timestamp: Time = Field(default=None, alias="creationTimestamp")
    update_timestamp: Time = Field(default=None, alias="updateTimestamp")


# -- pre-check -------------------------------------------------------------------


class DeprecatedApiRisk(_Model):
    url: Text = None
    user_agent: Text = Field(default=None, alias="userAgent")


class NodeRisk(_Model):
    node_id: Text = Field(default=None, alias="NodeID")


class AddonRisk(_Model):
    addon_template_name: Text = Field(default=None, alias="addonTemplateName")
    alias: Text = None


class ConfigurationRisk(_Model):
    package: Text = None
    source_file: Text = Field(default=None, alias="sourceFile")
    node_msg: Text = Field(default=None, alias="nodeMsg")
    field: Text = None
    operation: Text = None
    original_value: Text = Field(default=None, alias="originalValue")
    value: Text = None


class RiskSource(_Model):
    configuration_risks: Annotated[list[ConfigurationRisk], OBJECTS] = Field(
        default_factory=list, alias="configurationRisks"
    )
    deprecated_api_risks: Annotated[list[DeprecatedApiRisk], OBJECTS] = Field(
        default_factory=list, alias="deprecatedAPIRisks"
    )
    node_risks: Annotated[list[NodeRisk], OBJECTS] = Field(default_factory=list, alias="nodeRisks")
    addon_risks: Annotated[list[AddonRisk], OBJECTS] = Field(
        default_factory=list, alias="addonRisks"
    )


class PreCheckItem(_Model):
    name: Text = None
    kind: Text = None  # Exception | Risk
    group: Text = None  # LimitCheck | MasterCheck | NodeCheck | AddonCheck | ExecuteException
    level: Text = None  # Info | Warning | Fatal
    phase: Text = None  # Init | Running | Success | Failed
    message: Text = None
    error_codes: Annotated[list[str], _texts(MAX_ERROR_CODES)] = Field(
        default_factory=list, alias="errorCodes"
    )
    risk_source: Annotated[RiskSource, AN_OBJECT] = Field(
        default_factory=RiskSource, alias="riskSource"
    )


class CheckStatus(_Model):
    """`clusterCheckStatus` and `addonCheckStatus`."""

    phase: Text = None
    items_status: Annotated[list[PreCheckItem], OBJECTS] = Field(
        default_factory=list, alias="itemsStatus"
    )


class NodeInfo(_Model):
    uid: Text = None
    name: Text = None
    status: Text = None
    node_type: Text = Field(default=None, alias="nodeType")


class NodeStageStatus(_Model):
    node_info: Annotated[NodeInfo, AN_OBJECT] = Field(default_factory=NodeInfo, alias="nodeInfo")
    items_status: Annotated[list[PreCheckItem], OBJECTS] = Field(
        default_factory=list, alias="itemsStatus"
    )


class NodeCheckStatus(_Model):
    phase: Text = None
    node_stage_status: Annotated[list[NodeStageStatus], OBJECTS] = Field(
        default_factory=list, alias="nodeStageStatus"
    )


class PreCheckSpec(_Model):
    cluster_id: Text = Field(default=None, alias="clusterID")
    cluster_version: Text = Field(default=None, alias="clusterVersion")
    target_version: Text = Field(default=None, alias="targetVersion")


class PreCheckStatus(_Model):
    phase: Text = None  # Init | Running | Success | Failed | Error
    expire_time_stamp: Time = Field(default=None, alias="expireTimeStamp")
    message: Text = None
    cluster_check_status: Annotated[CheckStatus, AN_OBJECT] = Field(
        default_factory=CheckStatus, alias="clusterCheckStatus"
    )
    addon_check_status: Annotated[CheckStatus, AN_OBJECT] = Field(
        default_factory=CheckStatus, alias="addonCheckStatus"
    )
    node_check_status: Annotated[NodeCheckStatus, AN_OBJECT] = Field(
        default_factory=NodeCheckStatus, alias="nodeCheckStatus"
    )


class PreCheckTask(_Model):
    """`ShowAutopilotPreCheck`'s answer, and an entry of `ListAutopilotPreCheckTasks`."""

    kind: Text = None
    metadata: Annotated[TaskMetadata, AN_OBJECT] = Field(default_factory=TaskMetadata)
    spec: Annotated[PreCheckSpec, AN_OBJECT] = Field(default_factory=PreCheckSpec)
    status: Annotated[PreCheckStatus, AN_OBJECT] = Field(default_factory=PreCheckStatus)


class PreCheckTaskList(_Model):
    items: Annotated[list[PreCheckTask], OBJECTS] = Field(default_factory=list)


# -- upgrade plans -----------------------------------------------------------------


class UpgradePlanSpec(_Model):
    cluster_id: Text = Field(default=None, alias="clusterID")
    cluster_version: Text = Field(default=None, alias="clusterVersion")
    target_version: Text = Field(default=None, alias="targetVersion")
    not_before: Time = Field(default=None, alias="notBefore")
    not_after: Time = Field(default=None, alias="notAfter")
    not_before_deadline: Time = Field(default=None, alias="notBeforeDeadline")


class UpgradePlanStatus(_Model):
    phase: Text = None


class UpgradePlan(_Model):
    metadata: Annotated[TaskMetadata, AN_OBJECT] = Field(default_factory=TaskMetadata)
    spec: Annotated[UpgradePlanSpec, AN_OBJECT] = Field(default_factory=UpgradePlanSpec)
    status: Annotated[UpgradePlanStatus, AN_OBJECT] = Field(default_factory=UpgradePlanStatus)


class UpgradePlanList(_Model):
    # The SDK says one UpgradePlan, a list is what a List kind suggests: both accepted.
    items: Annotated[list[UpgradePlan], OBJECTS] = Field(default_factory=list)


# -- maintenance window ----------------------------------------------------------------


class MaintenanceWindow(_Model):
    """`ShowAutopilotMaintenanceWindow`: snake_case on the wire, as the SDK has it."""

    weekly_period: Text = None  # "Friday,Saturday"
    start_time: Text = None  # "02:00", UTC
    duration_hours: WholeNumber = None
    upgrade_scope: Text = None


# -- upgrade info (versions) -------------------------------------------------------------


class UpgradeVersionInfo(_Model):
    release: Text = None  # v1.28.3
    patch: Text = None  # r0
    suggest_patch: Text = Field(default=None, alias="suggestPatch")
    target_versions: Texts = Field(default_factory=list, alias="targetVersions")


class LastUpgradeInfo(_Model):
    phase: Text = None
    progress: Text = None
    completion_time: Time = Field(default=None, alias="completionTime")


class UpgradeInfoSpec(_Model):
    last_upgrade_info: Annotated[LastUpgradeInfo, AN_OBJECT] = Field(
        default_factory=LastUpgradeInfo, alias="lastUpgradeInfo"
    )
    version_info: Annotated[UpgradeVersionInfo, AN_OBJECT] = Field(
        default_factory=UpgradeVersionInfo, alias="versionInfo"
    )


class UpgradeInfo(_Model):
    spec: Annotated[UpgradeInfoSpec, AN_OBJECT] = Field(default_factory=UpgradeInfoSpec)


# -- master snapshots (backups) -------------------------------------------------------------


class SnapshotItem(_Model):
    id: Text = None
    type: Text = None  # master-backup | master-backup-rollback
    status: Text = None  # Init | Queuing | Running | Pause | Success | Failed
    creation_timestamp: Time = Field(default=None, alias="creationTimestamp")
    update_timestamp: Time = Field(default=None, alias="updateTimestamp")
    message: Text = None


class SnapshotSpec(_Model):
    items: Annotated[list[SnapshotItem], OBJECTS] = Field(default_factory=list)


class SnapshotStatus(_Model):
    phase: Text = None
    progress: Text = None
    completion_time: Time = Field(default=None, alias="completionTime")


class SnapshotTask(_Model):
    metadata: Annotated[TaskMetadata, AN_OBJECT] = Field(default_factory=TaskMetadata)
    spec: Annotated[SnapshotSpec, AN_OBJECT] = Field(default_factory=SnapshotSpec)
    status: Annotated[SnapshotStatus, AN_OBJECT] = Field(default_factory=SnapshotStatus)


class SnapshotListStatus(_Model):
    latest_backup_time: Time = Field(default=None, alias="latestBackupTime")


class SnapshotTaskList(_Model):
    items: Annotated[list[SnapshotTask], OBJECTS] = Field(default_factory=list)
    status: Annotated[SnapshotListStatus, AN_OBJECT] = Field(default_factory=SnapshotListStatus)


def parse_lifecycle(model: type[M], body: Any) -> M:
    """`body` (decoded JSON) as `model`; `LifecycleParseError` only when it is not
    an object (or is nested beyond reason)."""
    if not isinstance(body, dict):
        raise LifecycleParseError("the response is not a JSON object")
    try:
        return model.model_validate(body)
    except (ValidationError, RecursionError) as exc:  # pragma: no cover - every field is lenient
        raise LifecycleParseError(f"the response could not be read: {exc}") from None
