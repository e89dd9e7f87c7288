"""The Dockerfile's rules, read with dockerfile-parse.

Issue 5: multi-stage (the builder installs, the final stage copies only the built
environment), a numeric non-root user, read-only-root friendly, no build tools in
the final stage, `ENTRYPOINT ["cce-upgrade-watch", "run"]`, OCI labels. Issue 11.7:
the base pinned by digest, dependencies only from the hash lock. The image itself is
built and run by tests/e2e/test_image.py (issue 14).
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from tests.unit.shipping._support import (
    DOCKERFILE,
    DOCKERIGNORE,
    manifest,
    operator_container,
    pyproject,
)

# What must never run in (or be installed into) the final stage.
BUILD_TOOLS = re.compile(
    r"\b(apt-get|apt|apk|gcc|g\+\+|cc|make|build-essential|git|curl|wget"
    r"|pip wheel|python -m build|setup\.py)\b"
)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [value for kind, value in self.instructions if kind == instruction]


def parse() -> DockerfileParser:
    return DockerfileParser(str(DOCKERFILE))


def stages() -> list[Stage]:
    """The stages in order, with the global ARG defaults substituted into FROM."""
    parser = parse()
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    for item in parser.structure:
        kind, value = item["instruction"], item["value"]
        if kind == "COMMENT":
            continue
        if kind == "FROM":
            words = value.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), ""), words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            result.append(Stage(base, name))
        elif not result:
            if kind == "ARG" and "=" in value:
                key, default = value.split("=", 1)
                global_args[key] = default
        else:
            result[-1].instructions.append((kind, value))
    return result


def final_stage() -> Stage:
    return stages()[-1]


def run_commands(stage: Stage) -> list[str]:
    """The shell text of each RUN, without its --mount/--network flags."""
    commands = []
    for value in stage.values("RUN"):
        words = value.split()
        while words and words[0].startswith("--"):
            words.pop(0)
        commands.append(" ".join(words))
    return commands


def stage_names() -> set[str]:
    return {stage.name for stage in stages() if stage.name}


def pip_installs(stage: Stage) -> list[list[str]]:
    """The argument lists of every `pip install` in the stage's RUN steps."""
    found = []
    for command in run_commands(stage):
        for step in command.split("&&"):
            words = shlex.split(step)
            for i, word in enumerate(words[:-1]):
                if word.endswith("pip") and words[i + 1] == "install":
                    found.append(words[i + 2 :])
    return found


def test_base_is_debian_slim_pinned_by_digest() -> None:
    """Issue 11.7: the base is pinned by digest, and the comment says how to refresh it."""
    first, *later = stages()
    assert re.fullmatch(r"debian:bookworm-slim@sha256:[0-9a-f]{64}", first.base), first.base
    # Every later stage starts from the first one: one Python for building and running.
    assert [stage.base for stage in later] == [first.name] * len(later)
    text = DOCKERFILE.read_text()
    assert "ARG BASE_IMAGE=debian:bookworm-slim@sha256:" in text
    assert "To refresh it" in text
    assert "FROM ${BASE_IMAGE} AS python" in text
    # Debian's python3, not one built or downloaded elsewhere.
    assert any("apt-get install" in c and " python3" in c for c in run_commands(first))


def test_dependencies_come_only_from_the_hash_lock() -> None:
    """Issue 11.7: every dependency is installed from requirements/*.txt with hashes checked,
    wheels only; the project's own wheel is built and installed offline."""
    builder = next(stage for stage in stages() if stage.name == "builder")
    installs = pip_installs(builder)
    assert installs, "the builder installs with pip"
    locked = [argv for argv in installs if "--require-hashes" in argv]
    assert {argv[argv.index("-r") + 1] for argv in locked} == {
        "requirements/image.txt",
        "requirements/build.txt",
    }
    for argv in locked:
        assert "--only-binary=:all:" in argv, "no sdist is built (no compiler, no setup.py run)"
    # Anything else pip installs comes from no index at all.
    for argv in installs:
        assert "--require-hashes" in argv or {"--no-index", "--no-deps"} <= set(argv), argv
    commands = " ".join(run_commands(builder))
    assert "pip wheel --no-deps --no-build-isolation --no-index" in commands
    assert "pip check" in commands
    assert "pip uninstall --yes pip setuptools" in commands
    # The lock files are in the build context; nothing else of requirements/ is needed.
    assert in_build_context("requirements/image.txt")
    assert in_build_context("requirements/build.txt")
    assert not in_build_context("requirements/test.txt")


def test_final_stage_copies_only_the_built_environment() -> None:
    final = final_stage()
    assert final.name == "runtime"
    assert final.values("COPY") == ["--from=builder /opt/cce-upgrade-watch /opt/cce-upgrade-watch"]
    assert final.values("ADD") == []
    assert pip_installs(final) == []


def test_final_stage_has_no_build_tools() -> None:
    for command in run_commands(final_stage()):
        for step in command.split("&&"):
            assert not BUILD_TOOLS.search(step), f"build tool in the final stage: {step.strip()}"


def test_runs_as_a_numeric_non_root_user_that_exists() -> None:
    final = final_stage()
    users = final.values("USER")
    assert users, "the final stage must set USER"
    user = users[-1]
    match = re.fullmatch(r"(\d+)(?::(\d+))?", user)
    assert match, f"USER must be numeric (runAsNonRoot can only verify a number): {user!r}"
    uid, gid = int(match.group(1)), int(match.group(2) or match.group(1))
    assert uid != 0
    assert gid != 0
    # The user exists in /etc/passwd: kopf asks for the user name at start-up.
    commands = " ".join(run_commands(final))
    assert f"useradd --system --uid {uid} --gid {gid}" in commands
    # The Deployment runs as the same user.
    pod = manifest("Deployment", "cce-upgrade-watch")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid
    assert pod["securityContext"]["runAsGroup"] == gid
    # USER comes after the last RUN: nothing after it runs as root.
    kinds = [kind for kind, _ in final.instructions]
    assert kinds.index("USER") > max(i for i, kind in enumerate(kinds) if kind == "RUN")


def test_read_only_root_filesystem_friendly() -> None:
    envs: dict[str, str] = parse().envs
    assert envs["PYTHONDONTWRITEBYTECODE"] == "1"
    assert envs["HOME"] == "/tmp"
    assert envs["PATH"].startswith("/opt/cce-upgrade-watch/bin:")
    # The builder's pip leaves no cache in the layers either.
    assert "PIP_NO_CACHE_DIR=1" in DOCKERFILE.read_text()
    final = final_stage()
    assert final.values("WORKDIR")[-1] == "/tmp"
    assert final.values("VOLUME") == []
    # /tmp is the one writable path in the Deployment too.
    container = operator_container()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert [mount["mountPath"] for mount in container["volumeMounts"]] == ["/tmp"]


def test_entrypoint_is_the_run_command() -> None:
    final = final_stage()
    (entrypoint,) = final.values("ENTRYPOINT")
    assert json.loads(entrypoint) == ["cce-upgrade-watch", "run"]
    assert "cce-upgrade-watch" in pyproject()["project"]["scripts"]
    (cmd,) = final.values("CMD")
    assert isinstance(json.loads(cmd), list), "CMD must be in exec form"


def test_exposed_ports_are_the_deployments() -> None:
    (expose,) = final_stage().values("EXPOSE")
    ports = {int(port) for port in expose.split()}
    container_ports = {port["containerPort"] for port in operator_container()["ports"]}
    assert ports == container_ports == {8080, 9090}


def test_oci_labels() -> None:
    labels: dict[str, str] = parse().labels
    project: dict[str, Any] = pyproject()["project"]
    prefix = "org.opencontainers.image."
    required = {"title", "description", "version", "revision", "created", "licenses", "source"}
    assert required <= {key.removeprefix(prefix) for key in labels if key.startswith(prefix)}
    assert labels[prefix + "title"] == project["name"]
    assert labels[prefix + "description"] == project["description"]
    assert labels[prefix + "version"] == project["version"]
    license_ = project["license"]  # a table {text = ...}, or an SPDX string (PEP 639)
    assert labels[prefix + "licenses"] == (
        license_ if isinstance(license_, str) else license_["text"]
    )
    assert labels[prefix + "base.name"] == "debian:bookworm-slim"


def test_no_latest_tags_and_no_remote_adds() -> None:
    for stage in stages():
        if stage.base in stage_names():
            continue
        assert ":" in stage.base
        assert not stage.base.endswith(":latest")
        for add in stage.values("ADD"):
            assert "://" not in add


# ---------------------------------------------------------------- .dockerignore


def dockerignore_rules() -> list[tuple[bool, str]]:
    """(negated, pattern) in file order, as Docker reads them."""
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, line.removeprefix("!").rstrip("/")))
    return rules


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    included = True
    for negated, pattern in dockerignore_rules():
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for candidate in candidates:
            bare = pattern.removeprefix("**/")
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(candidate.split("/")[-1], bare)
            ):
                included = negated
                break
    return included


@pytest.mark.parametrize(
    ("path", "included"),
    [
        ("pyproject.toml", True),
        ("README.md", True),
        ("operator/cce_upgrade_watch/cli.py", True),
        ("operator/cce_upgrade_watch/simulator/scenarios/x.yaml", True),
        ("operator/cce_upgrade_watch/__pycache__/cli.cpython-312.pyc", False),
        ("operator/cce_upgrade_watch.egg-info/PKG-INFO", False),
        (".venv/bin/python", False),
        (".git/HEAD", False),
        ("tests/unit/__init__.py", False),
        ("manifests/deployment.yaml", False),
        ("Dockerfile", False),
        ("requirements/image.txt", True),
        ("requirements/test.txt", False),
    ],
)
def test_build_context_is_an_allow_list(path: str, included: bool) -> None:
    assert in_build_context(path) is included


def test_every_copy_source_is_in_the_build_context() -> None:
    for stage in stages():
        for copy in stage.values("COPY"):
            if "--from=" in copy:
                continue  # from another stage, not from the build context
            words = [word for word in copy.split() if not word.startswith("--")]
            for source in words[:-1]:
                assert in_build_context(source.rstrip("/")), f"COPY {source}: excluded"
