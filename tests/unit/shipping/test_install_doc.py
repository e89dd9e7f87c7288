"""docs/INSTALL.md says what the repository ships: its paths exist, its metrics
table is the operator's metrics, its RBAC table is the ClusterRole."""

from __future__ import annotations

import re

from tests.unit.shipping._support import REPO_ROOT, manifest
from tests.unit.shipping.test_monitoring import operator_metric_names

INSTALL = REPO_ROOT / "docs" / "INSTALL.md"


def text() -> str:
    return INSTALL.read_text()


def test_every_path_it_names_exists() -> None:
    paths = set(re.findall(r"`((?:manifests|overlays|charts|crds|hack|tests)/[\w./-]*)`", text()))
    paths |= set(re.findall(r"(manifests/integrations/[\w./-]+)", text()))
    assert len(paths) >= 8
    for path in paths:
        assert (REPO_ROOT / path.rstrip("/.")).exists(), path


def test_metrics_table_is_the_operators_metrics() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \| (?:counter|gauge|histogram)", text(), re.M))

    def family(sample: str) -> str:
        """The documented name a sample belongs to (histogram parts, counters' _created)."""
        for suffix in ("_bucket", "_count", "_sum"):
            if sample.endswith(suffix) and sample.removesuffix(suffix) in documented:
                return sample.removesuffix(suffix)
        if sample.endswith("_created"):
            base = sample.removesuffix("_created")
            return f"{base}_total" if f"{base}_total" in documented else base
        return sample

    assert {family(sample) for sample in operator_metric_names()} == documented


def test_rbac_table_is_the_cluster_role() -> None:
    section = text().split("## Kubernetes permissions (RBAC)")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `([\w./]+)`(?: \(core\))? \| ([\w, ]+) \|", section, re.M)
    documented = {
        (resource.split(".")[0], verb.strip())
        for resource, verbs in rows
        for verb in verbs.split(",")
    }
    granted = {
        (resource, verb)
        for rule in manifest("ClusterRole", "cce-upgrade-watch")["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert documented == granted
    # Secrets are in no table row: granted per namespace, and the doc says how.
    assert ("secrets", "get") not in documented
    for path in (
        "manifests/examples/tenant-secret-access.yaml",
        "overlays/cluster-wide-secrets",
        "manifests/admissionpolicy.yaml",
    ):
        assert path in section, path
