"""Paths and small readers shared by the shipping tests (image, manifests, integrations)."""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"
MANIFESTS = REPO_ROOT / "manifests"
INTEGRATIONS = MANIFESTS / "integrations"
CRD_FILE = REPO_ROOT / "crds" / "cceupgradewatches.cce.upgradewatch.io.yaml"


def pyproject() -> dict[str, Any]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file, each a mapping."""
    with path.open() as file:
        documents = [doc for doc in yaml.safe_load_all(file) if doc is not None]
    for doc in documents:
        assert isinstance(doc, dict), f"{path}: a document is not a mapping: {doc!r}"
    return documents


def yaml_document(path: Path) -> dict[str, Any]:
    (document,) = yaml_documents(path)
    return document


def manifest(kind: str, name: str) -> dict[str, Any]:
    """The object of this kind and name among the files of the kustomize base."""
    found = [
        doc
        for path in sorted(MANIFESTS.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in yaml_documents(path)
        if doc.get("kind") == kind and doc.get("metadata", {}).get("name") == name
    ]
    assert len(found) == 1, f"expected one {kind}/{name} in manifests/, found {len(found)}"
    return found[0]


def operator_container() -> dict[str, Any]:
    deployment = manifest("Deployment", "cce-upgrade-watch")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def walk_files(root: Path) -> Iterator[Path]:
    yield from (path for path in sorted(root.rglob("*")) if path.is_file())


CHART = REPO_ROOT / "charts" / "cce-upgrade-watch"
HACK_HELM = REPO_ROOT / "hack" / "helm"


def built_helm() -> Path | None:
    """The helm binary `hack/helm build` made, if it has been built (no build here)."""
    result = subprocess.run(
        [str(HACK_HELM), "path"], capture_output=True, text=True, check=True, timeout=30
    )
    path = Path(result.stdout.strip())
    return path if path.is_file() else None


def helm(binary: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=False, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def helm_template(binary: Path, *args: str) -> list[dict[str, Any]]:
    output = helm(binary, "template", "cuw", str(CHART), "--namespace", "ops", *args).stdout
    return [doc for doc in yaml.safe_load_all(output) if doc]
