"""The settings classes are the one definition of every ``LRSEARCH_*`` variable.

The README's table is generated from them; every variable the package names
is one of their fields; values are checked and an empty variable is unset.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from lrsearch.cli import envdoc
from lrsearch.cli.main import app
from lrsearch.client._settings import ClientSettings
from lrsearch.service import Settings
from lrsearch.storage import CommonSettings
from lrsearch.workers.settings import WorkerSettings, default_threads, resolve_threads

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ["lrsearch", "service", "storage", "workers", "search_space"]
_NAME = re.compile(r"LRSEARCH_[A-Z0-9_]*[A-Z0-9]")
# Prose, not a variable: "each field x is read from LRSEARCH_X".
NOT_VARIABLES = {"LRSEARCH_X"}


def _defined() -> set[str]:
    return {row[0].strip("`") for row in envdoc.rows()}


def test_readme_table_is_the_generated_one() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start, end = readme.index(envdoc.START), readme.index(envdoc.END) + len(envdoc.END)
    assert readme[start:end] == envdoc.table(), (
        "README.md's variable table is stale: "
        "run `python -m lrsearch.cli.envdoc --update README.md`"
    )


def test_envdoc_update_rewrites_only_the_table(tmp_path: Path) -> None:
    file = tmp_path / "doc.md"
    file.write_text(f"before\n{envdoc.START}\nold\n{envdoc.END}\nafter\n", encoding="utf-8")
    assert envdoc.main(["--update", str(file)]) == 0
    assert file.read_text(encoding="utf-8") == f"before\n{envdoc.table()}\nafter\n"
    with pytest.raises(ValueError, match="markers"):
        envdoc.replace_table("no markers here")


def test_every_variable_the_package_names_is_a_settings_field() -> None:
    named: dict[str, set[str]] = {}
    for folder in PACKAGE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            for name in _NAME.findall(path.read_text(encoding="utf-8")):
                named.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    undefined = {n: sorted(p) for n, p in named.items() if n not in _defined() | NOT_VARIABLES}
    assert not undefined, f"read but not defined in a settings class: {undefined}"


def test_each_variable_is_defined_once_with_a_description() -> None:
    rows = envdoc.rows()
    assert len({r[0] for r in rows}) == len(rows)
    assert all(r[2] for r in rows), [r[0] for r in rows if not r[2]]
    # The contract names of DESIGN.md.
    assert {
        "LRSEARCH_STORAGE",
        "LRSEARCH_API_URL",
        "LRSEARCH_API_KEY",
        "LRSEARCH_HEARTBEAT_S",
        "LRSEARCH_GRACE_S",
    } <= _defined()


def test_service_and_workers_share_the_common_fields() -> None:
    common = set(CommonSettings.model_fields)
    assert common == {"storage", "heartbeat_s", "grace_s"}
    assert common <= set(Settings.model_fields)
    assert common <= set(WorkerSettings.model_fields)
    assert not set(ClientSettings.model_fields) & set(Settings.model_fields)


def test_values_come_from_the_environment_and_keywords_win(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LRSEARCH_STORAGE", "sqlite:///env.db")
    monkeypatch.setenv("LRSEARCH_GRACE_S", "12.5")
    monkeypatch.setenv("LRSEARCH_THREADS", "3")
    monkeypatch.setenv("LRSEARCH_API_URL", "http://api:1")
    assert Settings().grace_s == 12.5
    assert Settings(storage="sqlite:///kw.db").storage == "sqlite:///kw.db"
    worker = WorkerSettings()
    assert (worker.storage_url, worker.threads, worker.grace_s) == ("sqlite:///env.db", 3, 12.5)
    assert ClientSettings().api_url == "http://api:1"


def test_an_empty_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # docker compose's ${LRSEARCH_GPUS-} and friends pass empty strings.
    for name in ("LRSEARCH_STORAGE", "LRSEARCH_GRACE_S", "LRSEARCH_GPUS", "LRSEARCH_THREADS"):
        monkeypatch.setenv(name, "")
    worker = WorkerSettings()
    assert worker.storage_url == "sqlite:///lrsearch.db"
    assert worker.grace_s == 60.0
    assert worker.gpus is None
    assert worker.threads is None


def test_bad_values_are_all_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRSEARCH_HEARTBEAT_S", "soon")
    monkeypatch.setenv("LRSEARCH_TRIALS_PER_GPU", "0")
    with pytest.raises(ValidationError) as info:
        WorkerSettings()
    assert {e["loc"][0] for e in info.value.errors()} == {"heartbeat_s", "trials_per_gpu"}


def test_worker_command_lists_bad_variables_and_exits_2(tmp_path: Path) -> None:
    env = {
        "LRSEARCH_STORAGE": f"sqlite:///{tmp_path / 'w.db'}",
        "LRSEARCH_HEARTBEAT_S": "soon",
        "LRSEARCH_GRACE_S": "-1",
    }
    result = CliRunner().invoke(app, ["worker", "--idle-exit", "0"], env=env)
    assert result.exit_code == 2, result.output
    assert "2 problem(s)" in result.stderr
    assert "LRSEARCH_HEARTBEAT_S: " in result.stderr
    assert "LRSEARCH_GRACE_S: " in result.stderr


@pytest.mark.parametrize(
    ("cores", "workers", "expected"), [(16, 4, 4), (16, 3, 5), (2, 6, 1), (1, 1, 1), (8, 1, 8)]
)
def test_default_threads_share_the_cores(cores: int, workers: int, expected: int) -> None:
    assert default_threads(cores=cores, workers=workers) == expected


def test_resolve_threads_prefers_the_setting_then_omp_then_the_share() -> None:
    assert resolve_threads(WorkerSettings(threads=3), cores=16, env={"OMP_NUM_THREADS": "2"}) == 3
    assert resolve_threads(WorkerSettings(), cores=16, env={"OMP_NUM_THREADS": "2"}) == 2
    assert resolve_threads(WorkerSettings(local_workers=4), cores=16, env={}) == 4
    assert resolve_threads(WorkerSettings(), cores=16, env={"OMP_NUM_THREADS": "x"}) == 16
