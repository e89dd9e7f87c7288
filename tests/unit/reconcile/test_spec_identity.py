"""`spec.identity`: exactly one credentials source, the old form unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from cce_upgrade_watch.spec import DEFAULT_AUDIENCE, SpecError, parse_watch_spec

from ._support import BASE_SPEC

ACCOUNT = "0123456789abcdef0123456789abcdef"
OIDC = {
    "serviceAccountName": "watcher",
    "identityProviderUrn": f"iam::{ACCOUNT}:identity-provider:kube",
    "agencyUrn": f"iam::{ACCOUNT}:agency:reader",
}
WITHOUT_SECRET = {k: v for k, v in BASE_SPEC.items() if k != "credentialsSecretRef"}


def test_the_secret_form_is_unchanged() -> None:
    spec = parse_watch_spec(BASE_SPEC)
    assert spec.credentials_secret_ref is not None
    assert spec.identity is None


def test_oidc_defaults() -> None:
    spec = parse_watch_spec({**WITHOUT_SECRET, "identity": {"oidc": OIDC}})
    assert spec.identity is not None
    assert spec.identity.oidc is not None
    assert spec.identity.oidc.audience == DEFAULT_AUDIENCE
    assert spec.identity.oidc.duration_seconds == 3600


def test_assume_agency_by_domain_and_name() -> None:
    spec = parse_watch_spec(
        {**BASE_SPEC, "identity": {"assumeAgency": {"domainId": ACCOUNT, "agencyName": "x"}}}
    )
    assert spec.assume_agency is not None
    assert spec.assume_agency.urn == f"iam::{ACCOUNT}:agency:x"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (WITHOUT_SECRET, "exactly one credentials source"),
        ({**BASE_SPEC, "identity": {"ambient": {}}}, "exactly one credentials source"),
        ({**WITHOUT_SECRET, "identity": {"oidc": OIDC, "ambient": {}}}, "exactly one"),
        (
            {**WITHOUT_SECRET, "identity": {"oidc": {**OIDC, "agencyUrn": None}}},
            "spec.identity.oidc: agencyUrn is required",
        ),
        (
            {**WITHOUT_SECRET, "identity": {"oidc": {**OIDC, "identityProviderId": "kube"}}},
            "spec.identity.oidc: set exactly one of identityProviderUrn",
        ),
        (
            {**WITHOUT_SECRET, "identity": {"oidc": {**OIDC, "serviceAccountName": "A"}}},
            "spec.identity.oidc.serviceAccountName",
        ),
        (
            {**WITHOUT_SECRET, "identity": {"oidc": {**OIDC, "durationSeconds": 60}}},
            "spec.identity.oidc.durationSeconds: must be between 900",
        ),
        (
            {**BASE_SPEC, "identity": {"assumeAgency": {"domainId": ACCOUNT}}},
            "spec.identity.assumeAgency: set either agencyUrn",
        ),
    ],
)
def test_invalid_identities_name_the_field(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_watch_spec(spec)
    assert message in str(caught.value)
