"""The client's public surface, and that importing it stays light (no torch)."""

from __future__ import annotations

import json
import subprocess
import sys

import lrsearch
import lrsearch.client

HEAVY = ("torch", "lrsearch.workers", "fastapi", "sqlalchemy", "lrsearch.service")


def _loaded_after(code: str) -> dict[str, bool]:
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, bool] = json.loads(out.splitlines()[-1])
    return result


def test_importing_the_client_loads_no_torch() -> None:
    loaded = _loaded_after("import lrsearch\nfrom lrsearch import Client\nimport lrsearch.client")
    assert loaded == dict.fromkeys(HEAVY, False)


def test_a_client_and_a_study_load_no_torch() -> None:
    code = "from lrsearch import Client\nClient('http://127.0.0.1:9', 'k').study('s')"
    assert not _loaded_after(code)["torch"]


def test_client_all() -> None:
    assert lrsearch.Client is lrsearch.client.Client
    assert "Client" in lrsearch.__all__
    assert sorted(lrsearch.client.__all__) == sorted(
        [
            "LEFT_THE_LOOP",
            "ApiError",
            "Client",
            "ClientError",
            "ServiceUnreachableError",
            "Study",
            "Trial",
            "TrialSchedule",
        ]
    )
    for name in lrsearch.client.__all__:
        assert getattr(lrsearch.client, name) is not None
