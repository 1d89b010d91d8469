"""A client process for the concurrency test: waits for a go-file, then runs trials.

Usage: python budget_client.py STUDY GO_FILE   (LRSEARCH_API_URL / LRSEARCH_API_KEY set)
Each epoch takes a little time, so that two processes started together both get work.
Prints the number of each trial it ran.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from lrsearch import Client


def main() -> None:
    study, go = sys.argv[1], Path(sys.argv[2])
    while not go.exists():
        time.sleep(0.02)
    with Client() as client:
        for trial in client.study(study).trials():
            for epoch in trial.epochs():
                time.sleep(0.05)
                trial.report(trial.learning_rate, epoch)
            print(trial.number, flush=True)


if __name__ == "__main__":
    main()
