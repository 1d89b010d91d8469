"""The learning-rate schedule types and the parameters each one owns.

Every schedule parameter is an Optuna parameter named ``<schedule>.<param>``
(``step.gamma``, ``cyclic.max_lr``...). Its default range lives here; a study
definition may narrow or move it under ``search_space.schedule_params``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ScheduleType = Literal["step", "exponential", "cosine", "plateau", "cyclic", "warmup"]
SCHEDULE_TYPES: tuple[ScheduleType, ...] = (
    "step",
    "exponential",
    "cosine",
    "plateau",
    "cyclic",
    "warmup",
)

WeightInit = Literal[
    "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "orthogonal", "default"
]
WEIGHT_INITS: tuple[WeightInit, ...] = (
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "default",
)

OptimizerName = Literal["sgd", "adam", "adamw", "rmsprop", "adagrad"]
OPTIMIZERS: tuple[OptimizerName, ...] = ("sgd", "adam", "adamw", "rmsprop", "adagrad")

CYCLIC_MODES: tuple[str, ...] = ("triangular", "triangular2", "exp_range")

# Integer schedule parameters count epochs: no more than a study may train.
MAX_EPOCHS = 10_000


@dataclass(frozen=True)
class ParamSpec:
    """Default range of one schedule parameter.

    ``kind`` is ``"int"``, ``"float"`` or ``"categorical"``; numeric specs use
    ``low``/``high``/``log`` and categorical ones ``choices``. ``min_low`` and
    ``max_high`` bound what a definition may ask for (``None``: unbounded).
    """

    kind: Literal["int", "float", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str, ...] = ()
    min_low: float | None = None
    max_high: float | None = None
    low_open: bool = False
    high_open: bool = False
    help: str = ""


SCHEDULE_PARAMS: dict[ScheduleType, dict[str, ParamSpec]] = {
    "step": {
        "step_size": ParamSpec(
            "int", 1, 10, min_low=1, max_high=MAX_EPOCHS, help="epochs between decays"
        ),
        "gamma": ParamSpec(
            "float",
            0.1,
            0.9,
            min_low=0.0,
            max_high=1.0,
            low_open=True,
            help="factor applied at each decay",
        ),
    },
    "exponential": {
        "gamma": ParamSpec(
            "float",
            0.8,
            0.99,
            min_low=0.0,
            max_high=1.0,
            low_open=True,
            help="factor applied every epoch",
        ),
    },
    "cosine": {
        "eta_min": ParamSpec(
            "float",
            0.0,
            0.1,
            min_low=0.0,
            max_high=1.0,
            help="final learning rate, as a fraction of the base learning rate",
        ),
    },
    "plateau": {
        "factor": ParamSpec(
            "float",
            0.1,
            0.7,
            min_low=0.0,
            max_high=1.0,
            low_open=True,
            high_open=True,
            help="factor applied on a plateau",
        ),
        "patience": ParamSpec(
            "int",
            1,
            5,
            min_low=0,
            max_high=MAX_EPOCHS,
            help="epochs without improvement before a decay",
        ),
    },
    "cyclic": {
        "max_lr": ParamSpec(
            "float",
            2.0,
            10.0,
            log=True,
            min_low=1.0,
            max_high=1000.0,
            help="peak, as a multiple of the base LR",
        ),
        "step_size": ParamSpec(
            "int", 1, 5, min_low=1, max_high=MAX_EPOCHS, help="epochs from base to peak"
        ),
        "mode": ParamSpec("categorical", choices=CYCLIC_MODES, help="cycle amplitude policy"),
    },
    "warmup": {
        "start_factor": ParamSpec(
            "float",
            0.01,
            0.5,
            log=True,
            min_low=0.0,
            max_high=1.0,
            low_open=True,
            help="first learning rate, as a fraction of the base learning rate",
        ),
        "ramp_epochs": ParamSpec(
            "int", 1, 10, min_low=1, max_high=MAX_EPOCHS, help="epochs of the linear ramp"
        ),
    },
}
