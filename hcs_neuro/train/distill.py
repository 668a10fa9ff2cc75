"""Knowledge distillation (Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a neural
network", arXiv:1503.02531): a trained model's logits as soft targets.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hcs_neuro.core.architecture import Architecture
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.model import Model, load_model
from hcs_neuro.core.reference import quantize_input
from hcs_neuro.train.net import HCSNet

__all__ = ["load_teacher", "teacher_logits", "teacher_function", "distill_loss"]


def load_teacher(path, arch: Architecture) -> Model:
    """Load the distillation teacher (``TrainConfig.teacher``) and check that it fits ``arch``.

    Raises
    ------
    ModelError
        The file does not load (see :func:`hcs_neuro.core.model.load_model`).
    ConfigError
        Its input shape or number of classes differs from ``arch``'s.
    """
    teacher = load_model(path)
    t_arch = teacher.architecture
    if tuple(t_arch.input_shape) != tuple(arch.input_shape) or t_arch.n_classes != arch.n_classes:
        raise ConfigError(f"teacher {path}: it takes input {list(t_arch.input_shape)} with {t_arch.n_classes} "
                          f"classes, but {arch.source} takes {list(arch.input_shape)} with {arch.n_classes}")
    return teacher


def teacher_logits(teacher: Model, images, batch_size: int = 512) -> np.ndarray:
    """Real-valued logits of ``teacher`` (the values its own training loss saw), float32.

    Soft targets for distillation: :func:`torch_forward` returns the integer logits of a
    low-precision model instead, which differ from these by the readout's scale.
    """
    return teacher_function(teacher)(images, batch_size)


def teacher_function(teacher: Model):
    """``images -> teacher_logits(teacher, images)`` with the teacher's network built once."""
    net = HCSNet(teacher.architecture, "probabilistic", 0, model=teacher)
    net.eval()

    def run(images, batch_size: int = 512) -> np.ndarray:
        x_all = quantize_input(teacher, images)
        out = [np.zeros((0, teacher.architecture.n_classes), np.float32)]
        with torch.no_grad():
            for s in range(0, len(x_all), batch_size):
                xb = torch.as_tensor(x_all[s:s + batch_size].astype(np.float64), dtype=net.dtype)
                out.append(net(xb).float().numpy())
        return np.concatenate(out)

    return run


def distill_loss(logits, targets, soft, weight: float, temp: float):
    """``(1 - weight) * CE(logits, targets) + weight * temp**2 * KL(softmax(soft / temp) ||
    softmax(logits / temp))`` (Hinton et al. 2015), and the cross-entropy alone (for the loss
    curve, so that runs with and without a teacher compare)."""
    ce = F.cross_entropy(logits, targets)
    kl = F.kl_div(F.log_softmax(logits / temp, dim=1), F.log_softmax(soft / temp, dim=1),
                  reduction="batchmean", log_target=True)
    return (1.0 - weight) * ce + weight * temp * temp * kl, ce
