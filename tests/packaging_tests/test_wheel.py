"""The wheel holds one top-level package, ``lrsearch``, and works installed on its own.

The wheel is built from a copy of the files the Dockerfiles copy (so the
working tree gets no ``build/``), installed without its dependencies into a
fresh virtual environment, which borrows the dependencies from this
environment's site-packages through a ``.pth`` path line (no download; the
editable install of this checkout is not picked up, since a path line does
not process that folder's own ``.pth`` files). Then, from a folder holding a
user's own ``storage.py`` and ``service/`` package, everything imports from
the wheel and the ``lrsearch`` console script runs.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import lrsearch

ROOT = Path(__file__).resolve().parents[2]
# What the Dockerfiles copy before `pip install .`.
PACKAGE_DIRS = ["service", "storage", "workers", "search_space"]
SOURCES = ["pyproject.toml", "README.md", "lrsearch", *PACKAGE_DIRS]
PIP = [sys.executable, "-m", "pip"]
IMPORTS = "lrsearch, lrsearch.storage, lrsearch.service, lrsearch.workers, lrsearch.cli.main"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    user_dir: Path

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        return subprocess.run(
            [str(a) for a in args],
            cwd=self.user_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )


def _build_wheel(tmp: Path) -> Path:
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, symlinks=True, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    dist = tmp / "dist"
    subprocess.run(
        [*PIP, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("lrsearch-*.whl")
    return wheel


def _user_dir(tmp: Path) -> Path:
    """A project folder whose own modules share names with lrsearch's subpackages."""
    user = tmp / "user-project"
    (user / "service").mkdir(parents=True)
    trap = "raise ImportError(\"the user project's own {} was imported, not lrsearch's\")\n"
    (user / "storage.py").write_text(trap.format("storage.py"))
    (user / "service" / "__init__.py").write_text(trap.format("service/"))
    (user / "workers.py").write_text(trap.format("workers.py"))
    return user


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    tmp = tmp_path_factory.mktemp("packaging")
    wheel = _build_wheel(tmp)
    venv = tmp / "fresh-venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = str(venv / "bin" / "python")
    subprocess.run(
        [*PIP, "--python", python, "install", "-q", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    purelib = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # The dependencies, from this environment; lrsearch itself only from the wheel.
    (Path(purelib) / "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return Installed(wheel=wheel, venv=venv, user_dir=_user_dir(tmp))


def _record(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        (record,) = [n for n in zf.namelist() if n.endswith(".dist-info/RECORD")]
        return [row[0] for row in csv.reader(io.StringIO(zf.read(record).decode()))]


@pytest.mark.slow
def test_the_wheel_has_no_top_level_module_but_lrsearch(installed: Installed) -> None:
    files = _record(installed.wheel)
    tops = {f.split("/")[0] for f in files}
    dist_info = {t for t in tops if t.endswith(".dist-info")}
    assert tops - dist_info == {"lrsearch"}
    with zipfile.ZipFile(installed.wheel) as zf:
        (top_level,) = [n for n in zf.namelist() if n.endswith("top_level.txt")]
        assert zf.read(top_level).decode().split() == ["lrsearch"]


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_package_and_the_dashboard_assets(
    installed: Installed,
) -> None:
    files = set(_record(installed.wheel))
    expected = set()
    for folder in PACKAGE_DIRS:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add(f"lrsearch/{path.relative_to(ROOT)}")
    assets = {f for f in expected if f.startswith("lrsearch/service/static/")}
    assert {"lrsearch/service/static/index.html", "lrsearch/service/static/app.js"} <= assets
    missing = sorted(expected - files)
    assert not missing, f"not in the wheel (package-data?): {missing}"


@pytest.mark.slow
def test_everything_imports_from_the_wheel_beside_lookalike_modules(installed: Installed) -> None:
    code = (
        f"import {IMPORTS}\n"
        "for m in (lrsearch, lrsearch.storage, lrsearch.service, lrsearch.workers, lrsearch.cli):\n"
        "    print(m.__file__)\n"
    )
    # The lookalikes are importable from there: the check below can fail.
    trap = installed.run(installed.bin("python"), "-c", "import storage")
    assert "the user project's own storage.py was imported" in trap.stderr
    result = installed.run(installed.bin("python"), "-c", code)
    assert result.returncode == 0, result.stderr[-3000:]
    files = [Path(line) for line in result.stdout.split()]
    assert len(files) == 5
    for file in files:
        assert file.is_relative_to(installed.venv), f"{file} is not the wheel's copy"


@pytest.mark.slow
def test_the_console_script_prints_the_version(installed: Installed) -> None:
    result = installed.run(installed.bin("lrsearch"), "--version")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == f"lrsearch {lrsearch.__version__}\n"
    helped = installed.run(installed.bin("lrsearch"), "--help")
    assert helped.returncode == 0
    for command in ("serve", "worker", "submit", "status", "best", "delete", "keys"):
        assert command in helped.stdout
