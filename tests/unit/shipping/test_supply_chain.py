"""Issue 11.7, supply chain: hash-pinned locks for the image and CI, read-only Go builds.

The locks (requirements/*.txt, made by hack/lock) must cover exactly what
pyproject.toml asks for, with a sha256 for every pin; the image (Dockerfile) and
CI (`make venv`) install from them with --require-hashes; the Go builds of hack/
never rewrite go.mod or go.sum (-mod=readonly), so a module that does not match
go.sum fails the build instead of being trusted.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.unit.shipping._support import REPO_ROOT, pyproject

REQUIREMENTS = REPO_ROOT / "requirements"
LOCKS = ("image.txt", "test.txt", "build.txt")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")


def pins(name: str) -> dict[str, tuple[Version, list[str]]]:
    """name -> (version, sha256 hashes) of one lock file."""
    result: dict[str, tuple[Version, list[str]]] = {}
    current: str | None = None
    for line in (REQUIREMENTS / name).read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match.group(1))
            result[current] = (Version(match.group(2)), [])
        elif (hashed := re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line)) and current:
            result[current][1].append(hashed.group(1))
        elif line and not line.startswith((" ", "#")):
            pytest.fail(f"{name}: a line that is neither a pin nor a hash: {line!r}")
    return result


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_has_hashes(lock: str) -> None:
    locked = pins(lock)
    assert locked, f"{lock} pins nothing"
    for name, (_, hashes) in locked.items():
        assert hashes, f"{lock}: {name} has no hash"


def satisfied(requirements: list[str], locked: dict[str, tuple[Version, list[str]]]) -> None:
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate({"python_version": "3.11"}):
            continue
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{text} is not locked"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{text}: locked {version}"
        )


def test_image_lock_covers_the_dependencies() -> None:
    satisfied(pyproject()["project"]["dependencies"], pins("image.txt"))


def test_test_lock_covers_the_test_extra_with_the_image_versions() -> None:
    image, test = pins("image.txt"), pins("test.txt")
    satisfied(pyproject()["project"]["optional-dependencies"]["test"], test)
    # Tests run with exactly what the image ships.
    assert {name: image[name][0] for name in image} == {name: test[name][0] for name in image}


def test_build_lock_covers_the_build_system() -> None:
    build, test = pins("build.txt"), pins("test.txt")
    satisfied(pyproject()["build-system"]["requires"], build)
    shared = build.keys() & test.keys()
    assert {n: build[n][0] for n in shared} == {n: test[n][0] for n in shared}


def test_ci_installs_from_the_lock_with_hashes() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert (
        "pip install --quiet --require-hashes -r requirements/test.txt -r requirements/build.txt"
        in makefile
    )
    # The project itself: no dependency resolution, no download of a build backend.
    assert "pip install --quiet --no-deps --no-build-isolation -e ." in makefile
    assert "pip install --quiet -e '.[test]'" not in makefile


@pytest.mark.parametrize("script", ["hack/localcluster", "hack/helm", "hack/gitops-oracle"])
def test_go_builds_are_read_only(script: str) -> None:
    text = (REPO_ROOT / script).read_text()
    assert re.search(r'^export GOFLAGS="?-mod=readonly[ "]?', text, flags=re.M), script
    assert "-mod=mod" not in text


def test_go_modules_have_a_go_sum() -> None:
    for go_mod in sorted(Path(REPO_ROOT / "hack").rglob("go.mod")):
        go_sum = go_mod.with_name("go.sum")
        assert go_sum.is_file(), f"{go_mod} has no go.sum: -mod=readonly would fail"
        assert go_sum.read_text().strip()
