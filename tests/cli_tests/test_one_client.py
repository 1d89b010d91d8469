"""The CLI's REST commands share the Python client's connection and print its errors alike.

``submit``/``status``/``best``/``delete`` and ``export``/``best --as pytorch``
all go through :class:`lrsearch.client._http.Http`; a failed request reads the
same whichever command made it, and ``best --as pytorch`` prints exactly the
code the service's ``.../pytorch`` route serves (one generator, in search_space).
"""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from lrsearch import storage
from lrsearch.cli.main import app
from tests.cli_tests.helpers import Live, run
from tests.service_tests.helpers import drive_trials


def _create(live: Live, name: str) -> None:
    body = {"name": name, "task": "synthetic", "budget": {"n_trials": 3, "max_epochs": 2}}
    response = httpx.post(
        f"{live.api_url}/api/v1/studies",
        json=body,
        headers={"Authorization": f"Bearer {live.key}"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "command",
    [["status"], ["best"], ["export"], ["best", "--as", "pytorch"], ["delete", "--yes"]],
    ids=["status", "best", "export", "best-as-pytorch", "delete"],
)
def test_every_command_reports_a_missing_study_alike(live: Live, command: list[str]) -> None:
    result = run(live, command[0], "no-such-study", *command[1:])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 404 "), result.stderr
    assert "no-such-study" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [["status"], ["export"]], ids=["status", "export"])
def test_no_key_gets_the_hint_from_every_command(live: Live, command: list[str]) -> None:
    env = {"LRSEARCH_API_URL": live.api_url}
    result = CliRunner().invoke(app, [command[0], "x", *command[1:]], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 401 ")
    assert "(set LRSEARCH_API_KEY)" in result.stderr


def test_best_as_pytorch_before_any_trial_completes_says_so(live: Live) -> None:
    _create(live, "cli-none-yet")
    result = run(live, "best", "cli-none-yet", "--as", "pytorch")
    assert result.exit_code == 1
    assert result.stderr == "error: study 'cli-none-yet' has no completed trial yet\n"


def test_best_as_pytorch_prints_the_services_code_for_the_best_trial(live: Live) -> None:
    _create(live, "cli-code")
    backend = storage.open_backend(live.storage_url)
    try:
        drive_trials(backend, storage.get_study(backend, "cli-code"), outcomes=["COMPLETE"] * 3)
    finally:
        backend.dispose()
    headers = {"Authorization": f"Bearer {live.read_key}"}
    best = httpx.get(f"{live.api_url}/api/v1/studies/cli-code/best", headers=headers).json()
    number = best["trial"]["number"]
    served = httpx.get(
        f"{live.api_url}/api/v1/studies/cli-code/trials/{number}/pytorch", headers=headers
    ).json()["code"]
    result = run(live, "best", "cli-code", "--as", "pytorch", key=live.read_key)
    assert result.exit_code == 0, result.output
    assert result.stdout == served
    assert f"trial {number}:" in result.stdout.splitlines()[0]
