"""The Dockerfile's install steps, replayed without Docker.

The builder stage runs `pip wheel --wheel-dir /wheels .` on the build context
(what .dockerignore lets through); the final stage installs from those wheels
only (`pip install --no-index --find-links=/wheels cce-upgrade-watch`) and runs
`cce-upgrade-watch run`. Here: the same context copied to a temporary
directory, the same two pip commands, a fresh venv, and the entrypoint started
with `--help`. The dependencies' wheels come from the package index, as in the
builder; pip's cache makes a second run quick.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.shipping._support import REPO_ROOT, pyproject
from tests.unit.shipping.test_dockerfile import in_build_context

pytestmark = pytest.mark.timeout(900)


def image_python() -> str:
    """Python 3.12 like the image when this machine has it, else the test's own."""
    candidate = shutil.which("python3.12")
    if candidate:
        probe = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return sys.executable


def copy_build_context(target: Path) -> None:
    """The files `docker build .` would send, as .dockerignore decides."""
    for path in sorted(REPO_ROOT.rglob("*")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        top = relative.split("/")[0]
        if top in {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis"}:
            continue
        if path.is_file() and in_build_context(relative):
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)


def test_wheel_installs_into_a_fresh_venv_and_the_entrypoint_starts(tmp_path: Path) -> None:
    context, wheels, env_dir = tmp_path / "context", tmp_path / "wheels", tmp_path / "venv"
    copy_build_context(context)
    assert not (context / "tests").exists()
    assert (context / "operator" / "cce_upgrade_watch" / "cli.py").is_file()

    started = time.monotonic()
    # The builder stage: `pip wheel --wheel-dir /wheels .`
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), "."],
        cwd=context,
        check=True,
    )
    version = pyproject()["project"]["version"]
    assert (wheels / f"cce_upgrade_watch-{version}-py3-none-any.whl").is_file()

    # The final stage: a Python without the project, installing from /wheels only.
    python = image_python()
    subprocess.run([python, "-m", "venv", str(env_dir)], check=True)
    bin_dir = env_dir / "bin"
    subprocess.run(
        [
            str(bin_dir / "python"), "-m", "pip", "install", "--quiet",
            "--no-index", f"--find-links={wheels}", "cce-upgrade-watch",
        ],
        check=True,
    )  # fmt: skip
    elapsed = time.monotonic() - started

    # ENTRYPOINT ["cce-upgrade-watch", "run"] with --help, as the image's user would
    # see it: no write access needed, HOME in /tmp, no bytecode written.
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(tmp_path),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = subprocess.run(
        ["cce-upgrade-watch", "run", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    for flag in ("--liveness", "--metrics-port", "--all-namespaces", "--peering"):
        assert flag in result.stdout
    # The installed package is the whole package: its data files came along, and
    # it was imported from the venv, not from this checkout.
    probe = subprocess.run(
        [
            str(bin_dir / "python"), "-c",
            "import importlib.resources as r, cce_upgrade_watch as c; "
            "print(c.__file__); "
            "print(sum(1 for f in (r.files(c) / 'simulator' / 'scenarios').iterdir()"
            " if f.name.endswith('.yaml')))",
        ],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    module_file, scenario_count = probe.stdout.split()
    assert Path(module_file).is_relative_to(env_dir)
    assert int(scenario_count) > 0
    # Nothing of the build leaked into the venv: no pip wheel, no setuptools needed at run time.
    installed = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"cce-upgrade-watch=={version}" in installed.splitlines()
    print(f"wheels built and installed in {elapsed:.0f}s with {python}")
