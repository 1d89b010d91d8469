"""The Python client of an lrsearch service: results, and the trial loop for your own code.

    from lrsearch import Client
    study = Client().study("my-study")
    for trial in study.trials():
        ...

Importing it never loads torch: the PyTorch helpers of :class:`Trial` import
the workers' code when called.
"""

from lrsearch.client._client import Client
from lrsearch.client._errors import ApiError, ClientError, ServiceUnreachableError
from lrsearch.client._study import LEFT_THE_LOOP, Study
from lrsearch.client._trial import Trial, TrialSchedule

__all__ = [
    "LEFT_THE_LOOP",
    "ApiError",
    "Client",
    "ClientError",
    "ServiceUnreachableError",
    "Study",
    "Trial",
    "TrialSchedule",
]
