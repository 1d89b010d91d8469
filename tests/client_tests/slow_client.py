"""A client that claims one trial, reports its first epoch, then hangs (to be killed).

Usage: python slow_client.py STUDY   (LRSEARCH_API_URL / LRSEARCH_API_KEY set)
Prints ``CLAIMED <number>`` once the first report is in.
"""

from __future__ import annotations

import sys
import time

from lrsearch import Client


def main() -> None:
    with Client() as client:
        for trial in client.study(sys.argv[1]).trials():
            for epoch in trial.epochs():
                trial.report(0.5, epoch)
                print(f"CLAIMED {trial.number}", flush=True)
                while True:
                    time.sleep(0.1)


if __name__ == "__main__":
    main()
