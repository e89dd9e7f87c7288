"""Fixtures shared by unit and e2e tests."""

from __future__ import annotations

import pytest

from tests.support.gitops import GitOpsOracle


@pytest.fixture(scope="session")
def gitops_oracle() -> GitOpsOracle:
    """The GitOps oracle (hack/gitops-oracle), built once and cached outside the repository."""
    return GitOpsOracle.build()
