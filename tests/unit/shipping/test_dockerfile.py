"""The Dockerfile's rules, read with dockerfile-parse (no Docker engine runs here).

Issue 5: multi-stage (the builder makes the wheels, the final stage installs only
those), a numeric non-root user, read-only-root friendly, no build tools in the
final stage, `ENTRYPOINT ["cce-upgrade-watch", "run"]`, OCI labels.
`test_install_steps.py` replays the install steps themselves.
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


def test_multi_stage_with_a_builder_that_makes_wheels() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    builder, final = all_stages[0], all_stages[-1]
    assert builder.name == "builder"
    assert any("pip wheel" in command for command in run_commands(builder))
    assert final.base == "python:3.12-slim"
    assert builder.base == final.base, "build wheels with the Python they will run on"


def test_final_stage_installs_only_the_builders_wheels() -> None:
    final = final_stage()
    runs = final.values("RUN")
    installs = [run for run in runs if "pip install" in run]
    assert len(installs) == 1
    (install,) = installs
    # The wheels come from the builder, mounted for this step only.
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in install
    argv = shlex.split(install.split("&&")[0].split("pip install", 1)[1])
    assert "--no-index" in argv, "the final stage must not reach a package index"
    assert "--find-links=/wheels" in argv
    assert argv[-1] == "cce-upgrade-watch"
    # No source tree and nothing else from the build context.
    assert final.values("COPY") == []
    assert final.values("ADD") == []


def test_final_stage_has_no_build_tools() -> None:
    for command in run_commands(final_stage()):
        installing = command.split("&&")
        for step in installing:
            assert not BUILD_TOOLS.search(step), f"build tool in the final stage: {step.strip()}"
    # pip itself is removed once it has installed the wheels.
    assert any("pip uninstall --yes pip" in command for command in run_commands(final_stage()))


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
    # pip would otherwise leave its cache in HOME, inside the image.
    assert envs["PIP_NO_CACHE_DIR"] == "1"
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
    assert labels[prefix + "base.name"] == "python:3.12-slim"


def test_no_latest_tags_and_no_remote_adds() -> None:
    for stage in stages():
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
    ],
)
def test_build_context_is_an_allow_list(path: str, included: bool) -> None:
    assert in_build_context(path) is included


def test_every_copy_source_is_in_the_build_context() -> None:
    for stage in stages():
        for copy in stage.values("COPY"):
            words = [word for word in copy.split() if not word.startswith("--")]
            for source in words[:-1]:
                assert in_build_context(source.rstrip("/")), f"COPY {source}: excluded"
