"""`KubeApi.create_service_account_token`: what it asks the TokenRequest API, and
how a refusal reads (the Kubernetes API is faked; e2e uses the real one)."""

from __future__ import annotations

from typing import Any

import kubernetes
import pytest

from cce_upgrade_watch.cce.identity import IdentityExchangeFailed
from cce_upgrade_watch.kubeapi import KubeApi


class FakeCore:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome
        self.asked: list[tuple[str, str, Any]] = []

    def create_namespaced_service_account_token(self, name: str, namespace: str, body: Any) -> Any:
        self.asked.append((name, namespace, body))
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def kube(outcome: Any) -> tuple[KubeApi, FakeCore]:
    api = KubeApi(kubernetes.client.Configuration())
    core = FakeCore(outcome)
    api._core = core  # type: ignore[assignment]
    return api, core


async def test_asks_for_that_service_account_audience_and_lifetime() -> None:
    answer = kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=["x"]),
        status=kubernetes.client.V1TokenRequestStatus(token="eyJ.token", expiration_timestamp=None),
    )
    api, core = kube(answer)
    try:
        token = await api.create_service_account_token("team-a", "watcher", "sts.example", 600)
    finally:
        api.close()
    assert token == "eyJ.token"
    [(name, namespace, body)] = core.asked
    assert (name, namespace) == ("watcher", "team-a")
    assert body.spec.audiences == ["sts.example"]
    assert body.spec.expiration_seconds == 600


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (403, "may not create tokens for ServiceAccount 'watcher' in namespace 'team-a' (RBAC"),
        (404, "ServiceAccount 'watcher' in namespace 'team-a' does not exist"),
        (500, "refused a token for ServiceAccount 'watcher' in namespace 'team-a': HTTP 500"),
    ],
)
async def test_refusals_are_identity_exchange_failed(status: int, expected: str) -> None:
    api, _ = kube(kubernetes.client.ApiException(status=status, reason="nope"))
    try:
        with pytest.raises(IdentityExchangeFailed) as caught:
            await api.create_service_account_token("team-a", "watcher", "aud", 600)
    finally:
        api.close()
    assert expected in str(caught.value)
    assert caught.value.reason == "IdentityExchangeFailed"
