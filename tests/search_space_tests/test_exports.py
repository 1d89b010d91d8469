"""The public surface of search_space, and its purity (DESIGN.md, "Layout")."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

from lrsearch import search_space

REPO_ROOT = Path(__file__).resolve().parents[2]

HEAVY = ["torch", "sqlalchemy", "fastapi", "psycopg", "uvicorn"]


def _public_names() -> set[str]:
    return {
        name
        for name, value in vars(search_space).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def test_all_matches_the_public_names() -> None:
    exported = search_space.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    assert set(exported) == _public_names()


def test_every_name_in_all_resolves() -> None:
    for name in search_space.__all__:
        assert getattr(search_space, name) is not None, name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from search_space import *", namespace)
    namespace.pop("__builtins__", None)
    assert set(namespace) == set(search_space.__all__)


def test_contract_names_are_exported() -> None:
    needed = {
        "StudyDefinition",
        "parse_definition",
        "DefinitionError",
        "Problem",
        "TrialConfig",
        "sample_config",
        "validate_fixed_params",
        "ConfigError",
        "make_sampler",
        "make_pruner",
        "SCHEDULE_PARAMS",
    }
    assert needed <= set(search_space.__all__)


def test_importing_search_space_pulls_in_no_heavy_dependency() -> None:
    code = (
        "import json, sys; import search_space; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
