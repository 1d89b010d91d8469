"""A trial as ready-to-paste PyTorch code: ``GET .../trials/{number}/pytorch``.

The same code as ``lrsearch best NAME --as pytorch`` prints
(:func:`lrsearch.search_space.trial_pytorch_code`); the dashboard's "Copy as
PyTorch" button reads it here. JSON rather than ``text/x-python`` so that the
answer documents itself in the OpenAPI and errors stay problem+json.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from lrsearch import storage
from lrsearch.search_space import trial_pytorch_code
from lrsearch.service.deps import BackendDep, ReadableStudy
from lrsearch.service.openapi import API_PREFIX, problems

router = APIRouter(prefix=f"{API_PREFIX}/studies/{{name}}/trials", tags=["trials"])


class PytorchCodeOut(BaseModel):
    """One trial's optimizer and learning-rate schedule as Python source."""

    model_config = ConfigDict(frozen=True)

    study: str
    number: int
    state: str
    value: float | None
    code: str = Field(
        description=(
            "Python source that builds `optimizer` and `scheduler` for an existing "
            "`model` (and `steps_per_epoch` for a cyclic schedule), every value absolute; "
            "comments say when to call `scheduler.step`."
        )
    )


@router.get(
    "/{number}/pytorch",
    responses=problems(401, 403, 404, 422),
    summary="One trial as PyTorch optimizer + scheduler code",
)
def get_trial_pytorch(
    record: ReadableStudy,
    backend: BackendDep,
    number: Annotated[int, Path(ge=0, le=2**31 - 1)],
) -> PytorchCodeOut:
    """The trial's optimizer and ``torch.optim.lr_scheduler`` code, ready to paste.

    422 (``invalid-configuration``) for a trial whose parameters are not sampled yet.
    """
    row = storage.trial_detail(backend, record, number).row
    code = trial_pytorch_code(record.definition, row.params, number=number, value=row.value)
    return PytorchCodeOut(
        study=record.name, number=number, state=row.state, value=row.value, code=code
    )
