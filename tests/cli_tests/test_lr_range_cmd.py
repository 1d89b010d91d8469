"""``lrsearch lr-range TASK``: the range test from the command line, on a real task."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrsearch.cli.main import app

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_prints_the_chosen_bounds() -> None:
    result = CliRunner().invoke(app, ["lr-range", "synthetic", "--batches", "60"])
    assert result.exit_code == 0, result.output
    assert "task synthetic: learning rate from " in result.output
    assert "60 batches" in result.output or "stopped early" in result.output


def test_json_has_the_curve_and_bounds_inside_it() -> None:
    result = CliRunner().invoke(app, ["lr-range", "synthetic", "--batches", "80", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert len(found["lrs"]) == len(found["losses"]) == found["batches"] <= 80
    assert found["low"] < found["high"]
    assert found["lrs"][0] <= found["high"] <= found["lrs"][-1]
    assert found["settings"]["task"] == "synthetic"


def test_unknown_task_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["lr-range", "no-such-task"])
    assert result.exit_code == 2
    assert "no-such-task" in result.output
    assert "Traceback" not in result.output


def test_plot_without_matplotlib_says_so_and_still_prints_bounds_simulated_missing_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes the import fail as if matplotlib were not installed.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    out = tmp_path / "curve.png"
    result = CliRunner().invoke(
        app, ["lr-range", "synthetic", "--batches", "40", "--plot", str(out)]
    )
    assert result.exit_code == 1
    assert "needs matplotlib" in result.output
    assert "learning rate from" in result.output
    assert not out.exists()


def test_task_options_reach_the_task() -> None:
    result = CliRunner().invoke(
        app,
        ["lr-range", "synthetic", "--batches", "30", "--json", "--options", '{"n_classes": 3}'],
    )
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(app, ["lr-range", "synthetic", "--options", '{"no_such_option": 1}'])
    assert bad.exit_code == 2
    assert "no_such_option" in bad.output
    not_object = CliRunner().invoke(app, ["lr-range", "synthetic", "--options", "[1]"])
    assert not_object.exit_code == 2
    assert "JSON object" in not_object.output


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed here")
def test_plot_is_written_as_png(tmp_path: Path) -> None:
    out = tmp_path / "curve.png"
    result = CliRunner().invoke(
        app, ["lr-range", "synthetic", "--batches", "40", "--plot", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
