"""The CLI's faults, each against the real service over HTTP.

Names reach the service as one quoted path segment; ``keys create`` never
prints the storage password; ``submit`` refuses oversized files and YAML alias
bombs before sending anything; ``--version``; ``delete`` asks first.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from lrsearch import storage
from lrsearch.cli._definition_file import MAX_BYTES, MAX_NODES
from lrsearch.cli.client_cmds import masked_url
from lrsearch.cli.main import app
from tests.cli_tests.helpers import Live, run, write

# Nothing listens on port 9: a command that got as far as sending would fail with exit 1.
UNREACHABLE = {"LRSEARCH_API_URL": "http://127.0.0.1:9", "LRSEARCH_API_KEY": "x"}


def _submit_offline(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["submit", str(path)], env=UNREACHABLE)
    return result.exit_code, result.stderr


@pytest.mark.parametrize("name", ["../keys", "..", ".", "a/b", "x?y#z", "%2e%2e"])
@pytest.mark.parametrize("command", ["status", "best"])
def test_a_name_is_one_quoted_path_segment(live: Live, command: str, name: str) -> None:
    # Unquoted, `status ../keys` asked GET /api/v1/keys (the admin's key list)
    # and crashed on the answer.
    result = run(live, command, name)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: 404 ")
    if "/" not in name:  # the service got the whole name as the study's
        assert f"404 study {name!r} not found" in result.stderr


def test_a_study_with_dots_in_its_name_is_found(live: Live, tmp_path: Path) -> None:
    file = write(tmp_path / "s.json", json.dumps({"name": "v1.2..x", "task": "synthetic"}))
    assert run(live, "submit", str(file)).exit_code == 0
    result = run(live, "status", "v1.2..x")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("v1.2..x [")


def test_keys_create_masks_the_storage_password(postgres_url: str) -> None:
    # The test server trusts local connections, so any password is accepted.
    url = make_url(postgres_url).set(password="s3cret-pw")
    result = CliRunner().invoke(
        app,
        ["keys", "create", "--scope", "read"],
        env={"LRSEARCH_STORAGE": url.render_as_string(hide_password=False)},
    )
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    assert f"{url.username}:***@{url.host}" in result.stderr
    backend = storage.open_backend(postgres_url)
    try:
        assert storage.verify_key(backend, result.stdout.strip()) is not None
    finally:
        backend.dispose()


def test_masked_url_keeps_urls_without_password_and_hides_unparsable_ones() -> None:
    assert masked_url("sqlite:///x.db") == "sqlite:///x.db"
    assert masked_url("postgresql://u:p@h/d") == "postgresql://u:***@h/d"
    assert masked_url("user:secret junk") == "<storage>"


def _alias_bomb(levels: int) -> str:
    lines = ["name: bomb", "task: synthetic", 'l0: &l0 ["lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_submit_refuses_a_yaml_alias_bomb_before_sending(tmp_path: Path) -> None:
    # 6 levels: 5 * 9**6 = 2.6 million strings from 300 bytes. Before the limit
    # this was expanded and sent (here: exit 1, nothing listening); 9 levels
    # took gigabytes.
    bomb = write(tmp_path / "bomb.yaml", _alias_bomb(6))
    assert bomb.stat().st_size < 1000
    code, err = _submit_offline(bomb)
    assert code == 2, err
    assert f"aliases expand to more than {MAX_NODES} values" in err


def test_submit_refuses_a_self_referencing_anchor(tmp_path: Path) -> None:
    code, err = _submit_offline(write(tmp_path / "r.yaml", "name: &a [*a]\ntask: synthetic\n"))
    assert code == 2, err
    assert "aliases expand" in err


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_submit_refuses_a_file_over_the_size_limit(tmp_path: Path, suffix: str) -> None:
    # Valid content padded with whitespace past the limit: refused for its size alone.
    text = json.dumps({"name": "big", "task": "synthetic"}) + " " * MAX_BYTES
    code, err = _submit_offline(write(tmp_path / f"big{suffix}", text))
    assert code == 2, err
    assert "larger than 1024 KiB" in err


def test_submit_still_accepts_a_few_anchors(live: Live, tmp_path: Path) -> None:
    text = (
        "name: anchored\ntask: synthetic\n"
        "search_space:\n  dropout: &range {low: 0.1, high: 0.2}\n"
        "  schedules: [step]\n"
        "budget: &b {n_trials: 3, max_epochs: 2}\n"
    )
    result = run(live, "submit", str(write(tmp_path / "a.yaml", text)))
    assert result.exit_code == 0, result.output
    assert "created study anchored: task synthetic, 3 trials" in result.stdout


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"lrsearch {version('lrsearch')}\n"


def _study(live: Live, tmp_path: Path, name: str) -> None:
    file = write(tmp_path / f"{name}.json", json.dumps({"name": name, "task": "synthetic"}))
    assert run(live, "submit", str(file)).exit_code == 0


def test_delete_asks_and_a_no_keeps_the_study(live: Live, tmp_path: Path) -> None:
    _study(live, tmp_path, "keep-me")
    for answer in ("n\n", ""):  # "no", and no answer at all (closed stdin)
        result = run(live, "delete", "keep-me", input=answer)
        assert result.exit_code == 1, result.output
        assert "Delete study 'keep-me' and all its trials?" in result.stderr
    assert run(live, "status", "keep-me").exit_code == 0


@pytest.mark.parametrize("args", [["--yes"], []])
def test_delete_removes_the_study(live: Live, tmp_path: Path, args: list[str]) -> None:
    _study(live, tmp_path, "drop-me")
    result = run(live, "delete", "drop-me", *args, input="y\n")
    assert result.exit_code == 0, result.output
    assert "deleted study drop-me" in result.stderr
    gone = run(live, "status", "drop-me")
    assert gone.exit_code == 1
    assert "404" in gone.stderr


def test_delete_quotes_the_name_and_needs_admin(live: Live, tmp_path: Path) -> None:
    missing = run(live, "delete", "../keys", "--yes")
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: 404 ")
    _study(live, tmp_path, "guarded")
    forbidden = run(live, "delete", "guarded", "--yes", key=live.read_key)
    assert forbidden.exit_code == 1
    assert "403" in forbidden.stderr
    assert run(live, "status", "guarded").exit_code == 0
