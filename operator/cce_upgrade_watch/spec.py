"""The `CceUpgradeWatch` spec as the operator reads it.

The CRD already validates every field at the API server; this model is the
operator's own defence (an object stored before a CRD change, a test that skips
the server) and turns the camelCase dict kopf hands over into typed values:
durations become `timedelta`s. The rules mirror the CRD's, and every error names
the field it is about (`spec.pollInterval: must be at least 10s`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from cce_upgrade_watch.cce.endpoints import REGION_PATTERN
from cce_upgrade_watch.durations import format_duration, parse_duration

__all__ = [
    "ACTIVE_POLL_INTERVAL_MIN",
    "DEFAULT_ACTIVE_POLL_INTERVAL",
    "DEFAULT_AUDIENCE",
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_PLAN_INTERVAL",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_UPGRADE_SOON_LEAD_TIME",
    "HISTORY_LIMIT_MAX",
    "LEAD_TIME_MAX",
    "LEAD_TIME_MIN",
    "PLAN_INTERVAL_MAX",
    "PLAN_INTERVAL_MIN",
    "POLL_INTERVAL_MAX",
    "POLL_INTERVAL_MIN",
    "AmbientIdentity",
    "AssumeAgency",
    "Identity",
    "LifecycleSpec",
    "OidcIdentity",
    "SecretReference",
    "SpecError",
    "WatchSpec",
    "parse_watch_spec",
]

DEFAULT_POLL_INTERVAL = timedelta(minutes=5)
DEFAULT_ACTIVE_POLL_INTERVAL = timedelta(seconds=30)
DEFAULT_HISTORY_LIMIT = 5
POLL_INTERVAL_MIN = timedelta(seconds=10)
POLL_INTERVAL_MAX = timedelta(hours=24)
ACTIVE_POLL_INTERVAL_MIN = timedelta(seconds=5)
HISTORY_LIMIT_MAX = 50
#: `spec.lifecycle.planInterval`: how often the upgrade plans are asked for.
DEFAULT_PLAN_INTERVAL = timedelta(hours=2)
PLAN_INTERVAL_MIN = timedelta(minutes=5)
PLAN_INTERVAL_MAX = timedelta(hours=24)
#: `spec.lifecycle.upgradeSoonLeadTime`: how long before a plan's notBefore
#: `UpgradeSoon` is posted.
DEFAULT_UPGRADE_SOON_LEAD_TIME = timedelta(hours=24)
LEAD_TIME_MIN = timedelta(minutes=1)
LEAD_TIME_MAX = timedelta(days=30)

# The same patterns as the CRD (crds/cceupgradewatches.cce.upgradewatch.io.yaml).
_PROJECT_ID = re.compile(r"[0-9a-f]{32}")
_CLUSTER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A Huawei region id, as strict as the endpoint table (cn-north-4, ap-southeast-1).
_REGION = REGION_PATTERN
_ENDPOINT = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?")
# Plain HTTP would send signed requests and tokens in clear: only to this machine.
_LOOPBACK_HTTP = re.compile(
    r"http://(localhost|127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|\[::1\])(:[0-9]{1,5})?(/.*)?"
)
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _matching(pattern: re.Pattern[str], description: str) -> Any:
    def check(value: str) -> str:
        if not pattern.fullmatch(value):
            raise ValueError(f"must be {description}, got {value[:80]!r}")
        return value

    return AfterValidator(check)


def _endpoint(value: str) -> str:
    if not _ENDPOINT.fullmatch(value):
        raise ValueError(f"must be an https:// URL, got {value[:80]!r}")
    if value.startswith("http://") and not _LOOPBACK_HTTP.fullmatch(value):
        raise ValueError(
            "plain http:// is allowed only for loopback hosts (localhost, 127.x.x.x, [::1]);"
            " use https://"
        )
    return value


def _duration(value: Any) -> Any:
    # Strings come from the object; timedeltas from code that builds a spec directly.
    if isinstance(value, str):
        return parse_duration(value)
    return value


def _bounded(minimum: timedelta, maximum: timedelta | None = None) -> Any:
    def check(value: timedelta) -> timedelta:
        if value < minimum:
            raise ValueError(f"must be at least {format_duration(minimum, compact=True)}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {format_duration(maximum, compact=True)}")
        return value

    return AfterValidator(check)


ProjectId = Annotated[str, _matching(_PROJECT_ID, "32 lowercase hexadecimal characters")]
ClusterId = Annotated[
    str, _matching(_CLUSTER_ID, "a lowercase UUID such as 4d1ecb2c-229a-11e8-9c75-0255ac100ceb")
]
Region = Annotated[
    str,
    Field(max_length=63),
    _matching(
        _REGION,
        "a Huawei Cloud region id such as ap-southeast-1 or cn-north-4 "
        "(two letters, one or more words, a number; lowercase, dashes)",
    ),
]
Endpoint = Annotated[str, AfterValidator(_endpoint)]
PollInterval = Annotated[
    timedelta, BeforeValidator(_duration), _bounded(POLL_INTERVAL_MIN, POLL_INTERVAL_MAX)
]
ActivePollInterval = Annotated[
    timedelta, BeforeValidator(_duration), _bounded(ACTIVE_POLL_INTERVAL_MIN)
]

PlanInterval = Annotated[
    timedelta, BeforeValidator(_duration), _bounded(PLAN_INTERVAL_MIN, PLAN_INTERVAL_MAX)
]
LeadTime = Annotated[timedelta, BeforeValidator(_duration), _bounded(LEAD_TIME_MIN, LEAD_TIME_MAX)]


def _history_limit(value: int) -> int:
    if not 0 <= value <= HISTORY_LIMIT_MAX:
        raise ValueError(f"must be between 0 and {HISTORY_LIMIT_MAX}, got {value}")
    return value


HistoryLimit = Annotated[int, AfterValidator(_history_limit)]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class SecretReference(_Model):
    """A Secret in the watch's own namespace; there is no namespace field on purpose."""

    name: Annotated[
        str,
        Field(min_length=1, max_length=253),
        _matching(_DNS1123_SUBDOMAIN, "a DNS-1123 subdomain (a Secret name)"),
    ]


#: The audience of the ServiceAccount tokens the operator mints for an `oidc`
#: identity unless the spec names another: the one the identity provider in IAM
#: is configured to accept (its "client ID"). Configurable because it is whatever
#: the cloud admin typed there; this default is the STS service's name, which is
#: what phase A's provider, the simulator and docs/INSTALL.md use.
DEFAULT_AUDIENCE = "sts.myhuaweicloud.com"
#: STS sessions: 15 minutes to 12 hours (the agency's maximum may be lower); one
#: hour at most when chained through AssumeAgency (Huawei's AssumeAgency page).
DURATION_MIN = 900
DURATION_MAX = 43200
CHAINED_DURATION_MAX = 3600

# A ServiceAccount name (DNS-1123 subdomain), the same rule as a Secret name.
_SERVICE_ACCOUNT = _DNS1123_SUBDOMAIN
# `iam::<32-hex account id>:identity-provider:<name>` / `...:agency:<name>`.
_PROVIDER_URN = re.compile(r"iam::[0-9a-f]{32}:identity-provider:[A-Za-z0-9_.\-]{1,64}")
_AGENCY_URN = re.compile(r"iam::[0-9a-f]{32}:agency:[A-Za-z0-9_.\-]{1,64}")
_IDP_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_AGENCY_NAME = _IDP_ID
_DOMAIN_ID = re.compile(r"[0-9a-f]{32}")
_AUDIENCE = re.compile(r"[!-~]{1,253}")  # printable ASCII, no spaces

ServiceAccountName = Annotated[
    str,
    Field(min_length=1, max_length=253),
    _matching(_SERVICE_ACCOUNT, "a ServiceAccount name (a DNS-1123 subdomain)"),
]
AgencyUrn = Annotated[
    str, _matching(_AGENCY_URN, "an agency URN such as iam::<account id>:agency:<name>")
]


def _duration_seconds(maximum: int) -> Any:
    def check(value: int) -> int:
        if not DURATION_MIN <= value <= maximum:
            raise ValueError(f"must be between {DURATION_MIN} and {maximum} seconds, got {value}")
        return value

    return AfterValidator(check)


class OidcIdentity(_Model):
    """A ServiceAccount of the watch's own namespace, federated through IAM.

    With `identityProviderUrn` (and `agencyUrn`) the token is exchanged at STS
    (AssumeAgencyWithOIDC); with `identityProviderId`, on the older two-step IAM
    path (the provider's identity conversion rules grant the permissions).
    """

    service_account_name: ServiceAccountName = Field(alias="serviceAccountName")
    identity_provider_urn: (
        Annotated[
            str,
            _matching(
                _PROVIDER_URN,
                "an identity provider URN such as iam::<account id>:identity-provider:<name>",
            ),
        ]
        | None
    ) = Field(default=None, alias="identityProviderUrn")
    identity_provider_id: (
        Annotated[str, _matching(_IDP_ID, "an identity provider name (1-64 of A-Z a-z 0-9 _ - .)")]
        | None
    ) = Field(default=None, alias="identityProviderId")
    agency_urn: AgencyUrn | None = Field(default=None, alias="agencyUrn")
    audience: Annotated[
        str, _matching(_AUDIENCE, "1 to 253 printable ASCII characters without spaces")
    ] = DEFAULT_AUDIENCE
    duration_seconds: Annotated[int, _duration_seconds(DURATION_MAX)] = Field(
        default=3600, alias="durationSeconds"
    )

    @model_validator(mode="after")
    def _one_provider(self) -> OidcIdentity:
        if (self.identity_provider_urn is None) == (self.identity_provider_id is None):
            raise ValueError(
                "set exactly one of identityProviderUrn (STS) and "
                "identityProviderId (the two-step IAM path)"
            )
        if self.identity_provider_urn is not None and self.agency_urn is None:
            raise ValueError("agencyUrn is required with identityProviderUrn")
        return self


class AmbientIdentity(_Model):
    """The operator's own identity (`run --ambient-credentials`), where the admin allows it."""


class AssumeAgency(_Model):
    """Cross-account: the source's credentials turned into an agency's (STS AssumeAgency)."""

    agency_urn: AgencyUrn | None = Field(default=None, alias="agencyUrn")
    domain_id: (
        Annotated[str, _matching(_DOMAIN_ID, "an account (domain) id, 32 lowercase hex")] | None
    ) = Field(default=None, alias="domainId")
    agency_name: (
        Annotated[str, _matching(_AGENCY_NAME, "an agency name (1-64 of A-Z a-z 0-9 _ - .)")] | None
    ) = Field(default=None, alias="agencyName")
    duration_seconds: Annotated[int, _duration_seconds(CHAINED_DURATION_MAX)] = Field(
        default=CHAINED_DURATION_MAX, alias="durationSeconds"
    )

    @model_validator(mode="after")
    def _one_form(self) -> AssumeAgency:
        by_name = self.domain_id is not None or self.agency_name is not None
        if (self.agency_urn is not None) == by_name or (
            by_name and (self.domain_id is None or self.agency_name is None)
        ):
            raise ValueError("set either agencyUrn, or domainId and agencyName")
        return self

    @property
    def urn(self) -> str:
        if self.agency_urn is not None:
            return self.agency_urn
        return f"iam::{self.domain_id}:agency:{self.agency_name}"


class Identity(_Model):
    """`spec.identity`: a keyless source (oidc | ambient) and/or `assumeAgency`."""

    oidc: OidcIdentity | None = None
    ambient: AmbientIdentity | None = None
    assume_agency: AssumeAgency | None = Field(default=None, alias="assumeAgency")


class LifecycleSpec(_Model):
    """`spec.lifecycle`: which read-only lifecycle calls a watch makes, and how often.

    Each part can be turned off; a part turned off is never asked and its
    status section is removed (`lifecycle_state.py`).
    """

    pre_check: bool = Field(default=True, alias="preCheck")
    #: The automatic upgrade plans and the maintenance window (`status.nextUpgrade`).
    plans: bool = True
    versions: bool = True
    backups: bool = True
    plan_interval: PlanInterval = Field(default=DEFAULT_PLAN_INTERVAL, alias="planInterval")
    upgrade_soon_lead_time: LeadTime = Field(
        default=DEFAULT_UPGRADE_SOON_LEAD_TIME, alias="upgradeSoonLeadTime"
    )


class WatchSpec(_Model):
    """A validated `CceUpgradeWatch.spec`; build it with `parse_watch_spec`."""

    region: Region | None = None
    endpoint: Endpoint | None = None
    project_id: ProjectId = Field(alias="projectId")
    cluster_id: ClusterId = Field(alias="clusterId")
    credentials_secret_ref: SecretReference | None = Field(
        default=None, alias="credentialsSecretRef"
    )
    identity: Identity | None = None
    poll_interval: PollInterval = Field(default=DEFAULT_POLL_INTERVAL, alias="pollInterval")
    active_poll_interval: ActivePollInterval = Field(
        default=DEFAULT_ACTIVE_POLL_INTERVAL, alias="activePollInterval"
    )
    suspend: bool = False
    history_limit: HistoryLimit = Field(default=DEFAULT_HISTORY_LIMIT, alias="historyLimit")
    lifecycle: LifecycleSpec = Field(default_factory=LifecycleSpec)

    @model_validator(mode="after")
    def _region_or_endpoint(self) -> WatchSpec:
        if self.region is None and self.endpoint is None:
            raise ValueError(_REGION_OR_ENDPOINT)
        identity = self.identity or Identity()
        sources = sum(
            x is not None for x in (self.credentials_secret_ref, identity.oidc, identity.ambient)
        )
        if sources != 1:
            raise ValueError(_ONE_SOURCE)
        return self

    @property
    def assume_agency(self) -> AssumeAgency | None:
        return self.identity.assume_agency if self.identity else None


_REGION_OR_ENDPOINT = "spec.region or spec.endpoint must be set"
_ONE_SOURCE = (
    "spec: set exactly one credentials source: credentialsSecretRef, identity.oidc "
    "or identity.ambient"
)


class SpecError(ValueError):
    """The spec is invalid; `problems` lists one `spec.<field>: <what is wrong>` each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def parse_watch_spec(raw: Mapping[str, Any] | None) -> WatchSpec:
    """Validate a spec dict as kopf passes it (`spec` of the handler kwargs).

    Raises `SpecError` naming every invalid field.
    """
    if raw is None:
        raise SpecError(["spec: is required"])
    if not isinstance(raw, Mapping):
        raise SpecError([f"spec: must be an object, got {type(raw).__name__}"])
    try:
        return WatchSpec.model_validate(dict(raw))
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
    # Pydantic skips the whole-spec rule once a field fails; report it anyway,
    # so one round of fixes is enough.
    neither = raw.get("region") is None and raw.get("endpoint") is None
    if neither and _REGION_OR_ENDPOINT not in problems:
        problems.append(_REGION_OR_ENDPOINT)
    identity = raw.get("identity")
    identity = identity if isinstance(identity, Mapping) else {}
    given = (raw.get("credentialsSecretRef"), identity.get("oidc"), identity.get("ambient"))
    if sum(x is not None for x in given) != 1 and _ONE_SOURCE not in problems:
        problems.append(_ONE_SOURCE)
    raise SpecError(problems)


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "is required"
    if not location:
        # A whole-spec rule (region or endpoint) already names its fields.
        return message
    return f"spec.{location}: {message}"
