"""``lrsearch worker`` limits PyTorch's CPU threads; K workers share the host's cores.

The supervised children are real ``lrsearch worker`` processes on CPU (the
GPU ids are only labels with ``--device cpu``); each logs the thread count its
torch actually uses (``torch.get_num_threads()`` after the limit is applied).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from lrsearch import storage
from lrsearch.cli.main import app
from lrsearch.workers.device import apply_threads
from lrsearch.workers.settings import cpu_cores

REPO = Path(__file__).resolve().parents[2]
_THREADS = re.compile(r"^\[(gpu\d)\] .*PyTorch uses (\d+) CPU thread", re.MULTILINE)


def _supervise(tmp_path: Path, *args: str, **env: str) -> dict[str, int]:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    storage.open_backend(url).dispose()  # the schema once, before two children race for it
    result = subprocess.run(
        [sys.executable, "-m", "lrsearch.cli.main", "worker", "--device", "cpu", *args],
        cwd=REPO,
        env={**os.environ, "LRSEARCH_STORAGE": url, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return {label: int(n) for label, n in _THREADS.findall(result.stdout + result.stderr)}


@pytest.mark.slow
def test_supervised_children_share_the_cores(tmp_path: Path) -> None:
    # OMP_NUM_THREADS of the supervisor must not leak into the children's share.
    seen = _supervise(tmp_path, "--gpus", "0,1", "--idle-exit", "0.2", OMP_NUM_THREADS="7")
    assert seen == {"gpu0": max(1, cpu_cores() // 2), "gpu1": max(1, cpu_cores() // 2)}


@pytest.mark.slow
def test_supervised_children_take_threads_from_the_option(tmp_path: Path) -> None:
    seen = _supervise(tmp_path, "--gpus", "0,1", "--threads", "3", "--idle-exit", "0.2")
    assert seen == {"gpu0": 3, "gpu1": 3}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LRSEARCH_THREADS": "3"}, 3),
        ({"OMP_NUM_THREADS": "2"}, 2),
        # No limit given: every core of the host (the tests' OMP_NUM_THREADS=1 cleared).
        ({"OMP_NUM_THREADS": ""}, None),
    ],
)
def test_a_plain_worker_applies_its_thread_limit(
    tmp_path: Path, env: dict[str, str], expected: int | None
) -> None:
    expected = cpu_cores() if expected is None else expected
    before = torch.get_num_threads()
    full_env = {
        "LRSEARCH_STORAGE": f"sqlite:///{tmp_path / 'w.db'}",
        # Listed so that the runner restores them: the worker sets them for its children.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", ""),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", ""),
        **env,
    }
    try:
        result = CliRunner().invoke(
            app, ["worker", "--device", "cpu", "--idle-exit", "0"], env=full_env
        )
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == expected
    finally:
        torch.set_num_threads(before)


def test_apply_threads_passes_the_limit_to_child_processes() -> None:
    before = torch.get_num_threads()
    env: dict[str, str] = {}
    try:
        apply_threads(2, env)
        assert torch.get_num_threads() == 2
        assert env == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="at least 1"):
        apply_threads(0, env)
