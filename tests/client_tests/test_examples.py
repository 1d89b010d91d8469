"""The Lightning and Transformers examples, run as the user runs them, against ``lrsearch serve``.

examples/plain_pytorch.py is run by test_processes.py. Each example here
submits its study, trains every trial of the budget on generated data and
honours the pruner's decisions; the test reads the study back from the service.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from lrsearch.client import Client
from tests.client_tests.served import REPO, Served

pytestmark = pytest.mark.slow
EXAMPLES = {
    "lightning": REPO / "examples" / "lightning_module.py",
    "transformers": REPO / "examples" / "transformers_trainer.py",
}


@pytest.mark.parametrize("framework", sorted(EXAMPLES))
def test_the_example_spends_the_budget_and_honours_prunes(served: Served, framework: str) -> None:
    pytest.importorskip(framework)
    study = f"ex-{framework[:5]}-{uuid.uuid4().hex[:8]}"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES[framework]), study, "--create"],
        env=served.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "best:" in proc.stdout
    with Client(served.url, served.key) as client:
        rows = client.study(study).trial_rows()
        details = [client._http.json("GET", f"/studies/{study}/trials/{r['number']}") for r in rows]
    max_epochs = 3
    assert len(rows) == 6  # the budget, each trial once (none failed, none retried)
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"}
    for row, detail in zip(rows, details, strict=True):
        epochs = sorted(int(e) for e in detail["intermediate_values"])
        if row["state"] == "COMPLETE":
            assert epochs == list(range(max_epochs)), detail  # a report every epoch
        else:
            # Pruned at its last report (maybe the final epoch's): nothing ran after it.
            assert epochs == list(range(len(epochs))), detail
        assert len(detail["lr_curve"]) == len(epochs)
    # A prune before the last epoch stopped the training: fewer epochs reported.
    assert any(
        r["state"] == "PRUNED" and len(d["intermediate_values"]) < max_epochs
        for r, d in zip(rows, details, strict=True)
    ), rows
    assert any(r["state"] == "COMPLETE" for r in rows), rows
