"""Learning rules of the low-precision levels: one step of ``probabilistic``, ``shadow`` or
``naive`` learning (and Adam for full-precision parameters) on an :class:`~hcs_neuro.train.net.HCSNet`.

``probabilistic`` (default)
    The learned state *is* the integer level. Each step computes a desired change in level
    units from an Adam-normalised gradient step (per-element normalisation, so that every layer
    moves at the same rate relative to its level spacing whatever its gradient magnitude), and
    moves the level by one spacing with probability ``|change| / spacing`` (stochastic
    rounding: unbiased in expectation), with the run's seeded generator. Biases are levels in
    accumulator units (a much finer grid), updated the same way with steps scaled by the layer's
    largest input level. With ``adam_norm = "tensor"`` the momentum is divided by the RMS
    gradient of the whole tensor instead of each element's own, so a level's move probability
    keeps its gradient's size relative to the rest of its layer. With ``reset_momentum`` a
    weight level that moves starts a fresh momentum, so its next move needs new evidence
    (with ``beta1 = 0.99`` the best probabilistic Fashion-MNIST recipe; docs/studies/training.md).
``naive``
    Probability proportional to ``lr * |grad|`` (plain SGD step in level units, no
    normalisation), for comparison.
``shadow``
    The usual baseline: full-precision shadow weights (level units) trained with Adam, the
    forward pass uses their rounded levels, gradients pass straight through the rounding.
``float``
    Full-precision weights (``weight_bits = 32``) trained with Adam.
"""

from __future__ import annotations

import math

import torch

from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.quant import FLOAT_BITS, bias_level_range, weight_level_range
from hcs_neuro.train.config import (
    TrainConfig,
    parse_channel_gains,
    parse_layer_weight_lr,
)
from hcs_neuro.train.net import step_top

__all__ = ["LevelUpdater"]


class LevelUpdater:
    """One learning step of ``cfg.learning`` on the parameters of an :class:`HCSNet`.

    The public hook for custom training loops (instrumented runs, e.g. the theory probe of
    ``analysis/paper``): after ``loss.backward()`` call ``step(frac)`` with ``frac`` the
    fraction of the run done (drives the cosine schedule). Low-precision levels move by the
    chosen rule (probabilistic: Adam-normalised step, stochastically rounded to whole levels
    with the network's seeded generator; shadow: full-precision shadow values; naive);
    full-precision parameters take an Adam step. Clear the gradients before each backward pass.

    Example
    -------
    >>> net = HCSNet(arch, "probabilistic", seed=0)          # doctest: +SKIP
    >>> upd = LevelUpdater(net, cfg)                          # doctest: +SKIP
    >>> loss = F.cross_entropy(net(x), y); loss.backward()    # doctest: +SKIP
    >>> upd.step(step / total_steps)                          # doctest: +SKIP
    """

    def __init__(self, net, cfg: TrainConfig):
        self.net = net
        self.cfg = cfg
        self.t = 0
        self.state = {}
        arch = net.arch
        self.groups = []  # (param, kind, bits, lr_mult, lo, hi, layer index or None)
        net.track_rates = cfg.homeostasis > 0  # (the training passes then record the win rates)
        factors = parse_layer_weight_lr(arch, cfg.layer_weight_lr)
        if cfg.weight_step != net.weight_step:  # the net's scales and these steps share one unit
            raise ConfigError(f"[training] weight_step = {cfg.weight_step!r}, but the network was built with "
                              f"{net.weight_step!r}: pass HCSNet(..., weight_step=cfg.weight_step)")
        gain_layers = parse_channel_gains(arch, cfg.channel_gains, cfg.weight_step)
        if gain_layers != {int(i) for i in net.gains}:
            raise ConfigError(f"[training] channel_gains = {cfg.channel_gains!r}, but the network's gain layers are "
                              f"{sorted(int(i) for i in net.gains)}: call net.use_channel_gains(...) with the same layers")
        for i, spec in enumerate(arch.layers):
            if not spec.has_weights:
                continue
            j = net.widx[i]
            in_top = net.scales[i][1]
            if spec.weight_bits == FLOAT_BITS:
                self.groups.append((net.weights[j], "float", 32, 1.0, None, None, i))
                self.groups.append((net.biases[j], "float", 32, 1.0, None, None, i))
            else:
                lo, hi = weight_level_range(spec.weight_bits)
                blo, bhi = bias_level_range(spec.bias_bits)
                # lr in level units, or (weight_step = "range") a fraction of the top level; the
                # bias levels are in accumulator units, whose drive grows with both tops
                top = step_top(spec.weight_bits, net.weight_step)
                if str(i) in net.gains:  # ternary levels (a ternary layer's step), gain levels 1..top
                    # moving lr * top levels per step (lr a fraction of the range, as weight_step = "range")
                    self.groups.append((net.weights[j], "weight", 2, factors.get(i, 1.0), -1, 1, i))
                    self.groups.append((net.gains[str(i)], "gain", spec.weight_bits, float(hi), 1, hi, i))
                else:
                    self.groups.append((net.weights[j], "weight", spec.weight_bits, top * factors.get(i, 1.0), lo, hi, i))
                self.groups.append((net.biases[j], "bias", spec.bias_bits, max(in_top, 1.0) * top, blo, bhi, i))
        self.groups.append((net.log_temp, "float", 32, 1.0, None, None, None))

    def step(self, frac: float):
        cfg = self.cfg
        self.t += 1
        decay = 0.5 * (1 + math.cos(math.pi * frac)) if cfg.lr_schedule == "cosine" else 1.0
        b1, b2 = cfg.beta1, cfg.beta2
        bc1 = 1 - b1 ** self.t
        bc2 = 1 - b2 ** self.t
        with torch.no_grad():
            for p, kind, bits, mult, lo, hi, layer in self.groups:
                g = p.grad
                if g is None:
                    continue
                rule = "float" if kind == "float" else (self.net.bias_learning if kind == "bias" else self.net.weight_rule(layer))
                if rule == "naive":
                    delta = g * (-cfg.lr * decay * mult)
                else:
                    st = self.state.get(id(p))
                    if st is None:
                        st = self.state[id(p)] = (torch.zeros_like(p), torch.zeros_like(p))
                    m, v = st
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    lr = (cfg.lr_float if kind == "float" else cfg.lr * mult) * decay
                    if kind != "float" and cfg.adam_norm == "tensor":
                        delta = (m / bc1) * (-lr / (math.sqrt(float(v.mean()) / bc2) + cfg.eps))
                    else:
                        delta = (m / bc1) / ((v / bc2).sqrt_().add_(cfg.eps))
                        if cfg.step_power != 1.0 and kind == "weight" and rule == "probabilistic":
                            delta = delta.sign() * delta.abs().pow_(cfg.step_power)
                        delta = delta * (-lr)
                if kind == "bias" and cfg.homeostasis and layer in self.net.win_rates:
                    # homeostatic thresholds: real drive units -> accumulator units (the bias levels')
                    r = self.net.win_rates[layer]
                    delta = delta + (r.mean() - r) * (cfg.homeostasis * decay / self.net.drive_scale[layer])
                if rule in ("float", "shadow"):
                    p.add_(delta)
                    if rule == "shadow" and lo is not None:
                        p.clamp_(lo, hi)
                    continue
                spacing = 2.0 if (kind == "weight" and bits == 1) else 1.0
                q = delta / spacing
                low = torch.floor(q)
                r = torch.rand(q.shape, generator=self.net.gen, dtype=q.dtype)
                move = (low + (r < (q - low)).to(q.dtype)) * spacing
                if cfg.reset_momentum and rule == "probabilistic" and kind == "weight":
                    new = (p + move).clamp_(lo, hi)
                    m.masked_fill_(new != p, 0.0)  # moved levels start a fresh momentum
                    p.copy_(new)
                else:
                    p.add_(move).clamp_(lo, hi)
                p.grad = None
