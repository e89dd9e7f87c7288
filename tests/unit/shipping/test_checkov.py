"""checkov on the manifests, the Dockerfile and the rendered Helm chart: no failed
check, and every skip is one we decided on, with its reason inline.

checkov is not a dependency of the project's venv (it pins older versions of
packages the project uses); install it on its own, e.g.
`python3 -m venv /opt/checkov && /opt/checkov/bin/pip install checkov` and put
its `checkov` on PATH, or point CHECKOV at it. Without it these tests skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.shipping._support import CHART, DOCKERFILE, MANIFESTS, REPO_ROOT, built_helm, helm

pytestmark = pytest.mark.timeout(300)


def checkov_binary() -> str | None:
    candidates = [os.environ.get("CHECKOV"), shutil.which("checkov")]
    candidates.append(str(REPO_ROOT / ".venv" / "bin" / "checkov"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


CHECKOV = checkov_binary()
requires_checkov = pytest.mark.skipif(CHECKOV is None, reason="checkov is not installed")

#: The checks we skip on purpose; each carries its reason where it is skipped.
DECIDED_SKIPS = {
    "kubernetes": {
        # automountServiceAccountToken: the operator's whole job is the Kubernetes API.
        "CKV_K8S_38",
        # Image by digest: the base names a release tag; overlays pin the digest.
        "CKV_K8S_43",
    },
    "dockerfile": {
        # HEALTHCHECK: Kubernetes ignores it; the Deployment probes /healthz.
        "CKV_DOCKER_2",
        # FROM ${BASE_IMAGE}: checkov does not expand the ARG, a digest-pinned default.
        "CKV_DOCKER_7",
    },
}


def checkov(*args: str) -> dict[str, Any]:
    assert CHECKOV is not None
    result = subprocess.run(
        [CHECKOV, *args, "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
        cwd=REPO_ROOT,
    )
    # checkov exits 1 when a check failed; its JSON report says which.
    assert result.returncode in (0, 1), result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert isinstance(report, dict), report
    return report


def assert_clean(report: dict[str, Any], framework: str) -> None:
    summary = report["summary"]
    print(f"checkov {framework}: {summary}")
    failed = report["results"]["failed_checks"]
    assert summary["failed"] == 0, "\n".join(
        f"{check['check_id']} {check['check_name']} in {check['file_path']} ({check['resource']})"
        for check in failed
    )
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0
    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} is skipped without a reason"
    assert {check["check_id"] for check in skipped} == DECIDED_SKIPS[framework]


@requires_checkov
def test_manifests_pass_checkov() -> None:
    report = checkov("--directory", str(MANIFESTS), "--framework", "kubernetes")
    assert report["check_type"] == "kubernetes"
    assert report["summary"]["resource_count"] >= 10
    assert_clean(report, "kubernetes")


@requires_checkov
def test_dockerfile_passes_checkov() -> None:
    report = checkov("--file", str(DOCKERFILE), "--framework", "dockerfile")
    assert report["check_type"] == "dockerfile"
    assert_clean(report, "dockerfile")


@requires_checkov
@pytest.mark.skipif(built_helm() is None, reason="helm is not built: run hack/helm build")
def test_rendered_helm_chart_passes_checkov(tmp_path: Path) -> None:
    binary = built_helm()
    assert binary is not None
    rendered = helm(binary, "template", "cuw", str(CHART), "--namespace", "cce-upgrade-watch")
    (tmp_path / "chart.yaml").write_text(rendered.stdout)
    report = checkov("--directory", str(tmp_path), "--framework", "kubernetes")
    assert report["summary"]["resource_count"] >= 6
    assert_clean(report, "kubernetes")
