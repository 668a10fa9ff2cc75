"""Training in PyTorch: HCS (k-WTA) layers, low-precision forward pass, probabilistic learning.

Importing this package imports PyTorch (the heavy dependency of training, imported here once);
the rest of hcs-neuro imports it only when it trains.

Modules: :mod:`~hcs_neuro.train.config` (TrainConfig, checked at construction),
:mod:`~hcs_neuro.train.kwta` (k-WTA on tensors; :mod:`~hcs_neuro.train.ext` its compiled
kernels), :mod:`~hcs_neuro.train.net` (HCSNet in the reference's integer units),
:mod:`~hcs_neuro.train.rules` (probabilistic / shadow / naive level updates),
:mod:`~hcs_neuro.train.distill` (teacher soft targets), :mod:`~hcs_neuro.train.loop` (train).
"""

import torch  # noqa: F401  (the package's heavy dependency, imported once here)

from hcs_neuro.train.config import (
    LEARNING_RULES,
    TrainConfig,
    load_train_config,
    low_precision_layers,
    parse_channel_gains,
    parse_layer_weight_lr,
    parse_shadow_layers,
    parse_train_overrides,
)
from hcs_neuro.train.distill import distill_loss, load_teacher, teacher_logits
from hcs_neuro.train.loop import (
    CHANCE_LOSS_FRACTION,
    chance_loss_warning,
    curve_recorder,
    measure_throughput,
    train,
)
from hcs_neuro.train.net import HCSNet, load_init, torch_forward
from hcs_neuro.train.rules import LevelUpdater

__all__ = ["LEARNING_RULES", "TrainConfig", "load_train_config", "low_precision_layers", "parse_layer_weight_lr",
           "parse_shadow_layers", "parse_channel_gains", "parse_train_overrides", "HCSNet", "LevelUpdater", "train",
           "chance_loss_warning", "torch_forward", "measure_throughput", "load_teacher", "teacher_logits",
           "distill_loss", "load_init", "curve_recorder", "CHANCE_LOSS_FRACTION"]
