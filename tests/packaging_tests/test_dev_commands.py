"""The Makefile, the README and .ci/run name the same few commands.

A contributor reads ``make demo`` / ``make test`` / ``make lint`` in the
README, CI runs them through .ci/run: each must be a Makefile target, and
what the README says ``make lint`` checks must be what the target runs.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("install", "demo", "test", "lint")


def _targets() -> dict[str, str]:
    """Makefile target -> its recipe (the tab-indented lines under it)."""
    targets: dict[str, str] = {}
    current = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([a-z][\w-]*):", line)
        if match:
            current = match.group(1)
            targets[current] = ""
        elif current and line.startswith("\t"):
            targets[current] += line.strip() + "\n"
    return targets


def test_every_make_command_the_readme_and_ci_name_is_a_target() -> None:
    targets = _targets()
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", readme + ci))
    assert set(COMMANDS) <= named
    assert named <= set(targets), named - set(targets)


def test_ci_installs_then_lints_then_tests_with_postgres_required() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    steps = [m.group(1) for m in re.finditer(r"^make (\w+)$", ci, re.MULTILINE)]
    assert steps == ["install", "lint", "test"]
    assert "export LRSEARCH_REQUIRE_POSTGRES=1" in ci
    assert ci.index("LRSEARCH_REQUIRE_POSTGRES=1") < ci.index("make test")


def test_make_lint_runs_what_the_readme_says() -> None:
    recipe = _targets()["lint"]
    for tool in ("ruff check", "ruff format --check", "mypy", "lint-imports"):
        assert tool in recipe, tool
    readme = (ROOT / "README.md").read_text()
    (line,) = [x for x in readme.splitlines() if x.startswith("make lint ")]
    for word in ("ruff check", "ruff format --check", "mypy --strict", "import-linter"):
        assert word in line


def test_make_install_brings_the_worker_extra() -> None:
    # `make install` is the development set, which must train (the tests do).
    assert '-e ".[dev]"' in (ROOT / "Makefile").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    self_extras = [
        set(dep.removeprefix("lrsearch[").removesuffix("]").split(","))
        for dep in extras["optional-dependencies"]["dev"]
        if dep.startswith("lrsearch[")
    ]
    assert any("worker" in names for names in self_extras), self_extras
    assert not any(d.startswith("torch") for d in extras["dependencies"])
