"""The poll loop with `spec.identity`: exchange failures, 401s, refused ambient
identities and a Secret as the source of an assumeAgency (fakes for the cloud)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cce_upgrade_watch.cce.errors import CredentialsRejected
from cce_upgrade_watch.cce.identity import IdentityExchangeFailed, KeyCredentials
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.credentials import CredentialsCache
from cce_upgrade_watch.identities import IdentityNotAllowed
from cce_upgrade_watch.pollloop import PollLoop, Services
from cce_upgrade_watch.spec import WatchSpec

from .test_pollloop import RUNNING, FakeCce, FakeEvents, FakeSecrets, FakeWriter, body

ACCOUNT = "0123456789abcdef0123456789abcdef"
OIDC = {
    "oidc": {
        "serviceAccountName": "watcher",
        "identityProviderUrn": f"iam::{ACCOUNT}:identity-provider:kube",
        "agencyUrn": f"iam::{ACCOUNT}:agency:reader",
    }
}
TEMPORARY = KeyCredentials("AKTEMP", "SKTEMP", "STSTOKEN", datetime(2030, 1, 1, tzinfo=UTC))


class FakeIdentities:
    """`Identities` as the loop uses it; answers are credentials or exceptions."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []
        self.forgotten = 0
        self.sources: list[KeyCredentials] = []

    async def credentials(self, namespace: str, spec: WatchSpec, secret: Any = None) -> Any:
        self.asked.append(namespace)
        if secret is not None:
            self.sources.append(await secret())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def forget(self, namespace: str, spec: WatchSpec) -> None:
        self.forgotten += 1


def keyless_body(**spec: Any) -> dict[str, Any]:
    obj = body(**spec)
    del obj["spec"]["credentialsSecretRef"]
    return obj


def make(
    obj: dict[str, Any], cce: FakeCce, identities: FakeIdentities, secrets: FakeSecrets
) -> tuple[PollLoop, FakeWriter, FakeEvents]:
    writer = FakeWriter()
    events = FakeEvents(writer)
    services = Services(
        config=OperatorConfig(),
        cce=cce,  # type: ignore[arg-type]
        status_writer=writer,
        credentials=CredentialsCache(secrets.read),
        identities=identities,  # type: ignore[arg-type]
    )
    loop = PollLoop(obj, services, events.post, wall_clock=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    return loop, writer, events


def synced(writer: FakeWriter) -> tuple[str, str, str]:
    condition = next(c for c in writer.status["conditions"] if c["type"] == "Synced")
    return condition["status"], condition["reason"], condition["message"]


async def test_an_oidc_watch_signs_with_the_temporary_credentials() -> None:
    cce, secrets = FakeCce(), FakeSecrets()
    cce.answers = [RUNNING]
    identities = FakeIdentities(TEMPORARY)
    loop, writer, _ = make(keyless_body(identity=OIDC), cce, identities, secrets)
    await loop.poll_once()
    assert synced(writer)[:2] == ("True", "PollSucceeded")
    assert identities.asked == ["ns"]  # the watch's own namespace
    assert secrets.reads == 0  # no Secret at all
    assert cce.calls[0]._security_token == "STSTOKEN"  # type: ignore[attr-defined]


async def test_a_failed_exchange_is_identity_exchange_failed_and_retried() -> None:
    cce, secrets = FakeCce(), FakeSecrets()
    cce.answers = [RUNNING]
    failure = IdentityExchangeFailed(
        "refused", operation="assume agency with OIDC", status_code=403
    )
    identities = FakeIdentities(failure, failure, TEMPORARY)
    loop, writer, events = make(keyless_body(identity=OIDC), cce, identities, secrets)
    await loop.poll_once()
    await loop.poll_once()
    status, reason, message = synced(writer)
    assert (status, reason) == ("False", "IdentityExchangeFailed")
    assert "HTTP 403" in message
    # Retryable: not stalled, nothing a person must do.
    stalled = next(c for c in writer.status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "False"
    assert "PollFailed" in [e.reason for e in events.created]
    assert cce.calls == []  # nothing sent to CCE without credentials
    await loop.poll_once()  # the next poll retries, and succeeds
    assert synced(writer)[:2] == ("True", "PollSucceeded")


async def test_a_401_forgets_the_identity_and_exchanges_again() -> None:
    cce, secrets = FakeCce(), FakeSecrets()
    cce.answers = [CredentialsRejected("rejected", status_code=401), RUNNING]
    identities = FakeIdentities(TEMPORARY)
    loop, writer, _ = make(keyless_body(identity=OIDC), cce, identities, secrets)
    await loop.poll_once()
    assert identities.forgotten == 1
    assert len(identities.asked) == 2
    assert synced(writer)[:2] == ("True", "PollSucceeded")


async def test_a_refused_ambient_identity_needs_a_person_and_sends_nothing() -> None:
    cce, secrets = FakeCce(), FakeSecrets()
    cce.answers = [RUNNING]
    identities = FakeIdentities(IdentityNotAllowed("namespace 'ns' may not use it"))
    loop, writer, _ = make(keyless_body(identity={"ambient": {}}), cce, identities, secrets)
    interval = await loop.poll_once()
    assert synced(writer)[:2] == ("False", "IdentityNotAllowed")  # at once
    stalled = next(c for c in writer.status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True"
    assert interval == 300
    assert cce.calls == []


async def test_a_secret_is_the_source_of_an_assume_agency() -> None:
    cce, secrets = FakeCce(), FakeSecrets()
    cce.answers = [RUNNING]
    identities = FakeIdentities(TEMPORARY)
    assume = {"assumeAgency": {"agencyUrn": f"iam::{ACCOUNT}:agency:cross"}}
    loop, writer, _ = make(body(identity=assume), cce, identities, secrets)
    await loop.poll_once()
    assert synced(writer)[:2] == ("True", "PollSucceeded")
    assert [(k.access_key, k.secret_key) for k in identities.sources] == [("AK1", "SK1")]
    assert cce.calls[0]._security_token == "STSTOKEN"  # type: ignore[attr-defined]


async def test_a_token_secret_cannot_sign_an_assume_agency() -> None:
    class TokenSecret(FakeSecrets):
        async def read(self, namespace: str, name: str) -> Mapping[str, str] | None:
            return {"token": base64.b64encode(b"iam-token").decode()}

    cce = FakeCce()
    cce.answers = [RUNNING]
    assume = {"assumeAgency": {"agencyUrn": f"iam::{ACCOUNT}:agency:cross"}}
    loop, writer, _ = make(body(identity=assume), cce, FakeIdentities(TEMPORARY), TokenSecret())
    await loop.poll_once()
    status, reason, message = synced(writer)
    assert (status, reason) == ("False", "CredentialsNotFound")
    assert "assumeAgency needs 'accessKey' and 'secretKey'" in message
