"""The GitOps oracle (hack/gitops-oracle): what kstatus, Flux and Argo CD conclude.

The oracle is a small Go program that runs the tools' own libraries on objects
given as JSON: sigs.k8s.io/cli-utils' kstatus `status.Compute`, the Flux
example's `healthCheckExprs` through github.com/fluxcd/pkg/runtime/cel (as
kustomize-controller evaluates them) and Flux's kstatus fork (its verdict
without those expressions), and `health.lua` in gopher-lua the way Argo CD
runs it. Tests hand it objects and compare its verdicts with what the README
and docs/INSTALL.md promise.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
ORACLE_SCRIPT = REPO_ROOT / "hack" / "gitops-oracle"
FLUX_EXAMPLE = REPO_ROOT / "manifests" / "integrations" / "flux" / "kustomizations.yaml"
ARGOCD_HEALTH = REPO_ROOT / "manifests" / "integrations" / "argocd" / "health.lua"


@dataclass(frozen=True)
class Verdict:
    """One tool's conclusion. `error` is set when the tool could not judge the
    object (Flux then waits for its timeout, Argo CD shows Unknown)."""

    status: str
    message: str
    error: str = ""


@dataclass(frozen=True)
class Judgement:
    namespace: str
    name: str
    kstatus: Verdict
    flux: Verdict
    #: Flux without healthCheckExprs (the object only listed in healthChecks).
    flux_kstatus: Verdict
    argocd: Verdict

    def summary(self) -> tuple[str, str, str]:
        """(Argo CD health, kstatus, Flux), the order the tests' tables use."""
        return (self.argocd.status, self.kstatus.status, self.flux.status)


def _verdict(data: Mapping[str, Any]) -> Verdict:
    return Verdict(str(data["status"]), str(data["message"]), str(data.get("error", "")))


@dataclass(frozen=True)
class GitOpsOracle:
    binary: Path

    @classmethod
    def build(cls) -> GitOpsOracle:
        """Build the oracle (or reuse it from the cache): minutes once, then instant."""
        result = subprocess.run(
            [str(ORACLE_SCRIPT), "build"], check=True, text=True, stdout=subprocess.PIPE
        )
        return cls(Path(result.stdout.strip().splitlines()[-1]))

    def judge_all(
        self,
        objects: Sequence[Mapping[str, Any]],
        *,
        flux: Path = FLUX_EXAMPLE,
        argocd_health: Path = ARGOCD_HEALTH,
    ) -> list[Judgement]:
        argv = [str(self.binary), "--flux", str(flux), "--argocd-health", str(argocd_health)]
        result = subprocess.run(
            argv,
            input=json.dumps(list(objects)),
            text=True,
            capture_output=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"gitops-oracle exited {result.returncode}: {result.stderr}")
        return [
            Judgement(
                namespace=item["namespace"],
                name=item["name"],
                kstatus=_verdict(item["kstatus"]),
                flux=_verdict(item["flux"]),
                flux_kstatus=_verdict(item["fluxKstatus"]),
                argocd=_verdict(item["argocd"]),
            )
            for item in json.loads(result.stdout)
        ]

    def judge(self, obj: Mapping[str, Any], **kwargs: Any) -> Judgement:
        (judgement,) = self.judge_all([obj], **kwargs)
        return judgement
