"""The training loop: :func:`train` (data, network, learning rule, schedule, evaluation, report),
the learning-curve recorder of ``hcs-neuro train --curve``, and the throughput benchmark.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from hcs_neuro.core.architecture import Architecture
from hcs_neuro.core.curve import write_curve
from hcs_neuro.core.datasets import load_dataset
from hcs_neuro.core.errors import ConfigError
from hcs_neuro.core.model import Model
from hcs_neuro.core.progress import progress as progress_bar
from hcs_neuro.core.quant import FLOAT_BITS
from hcs_neuro.core.reference import evaluate, quantize_input
from hcs_neuro.train.config import (
    TrainConfig,
    parse_channel_gains,
    parse_layer_weight_lr,
    parse_shadow_layers,
)
from hcs_neuro.train.distill import distill_loss, load_teacher, teacher_function
from hcs_neuro.train.net import HCSNet, load_init, torch_forward
from hcs_neuro.train.rules import LevelUpdater

__all__ = ["train", "measure_throughput", "chance_loss_warning", "CHANCE_LOSS_FRACTION", "augment", "model_stub",
           "curve_recorder"]


def augment(rng, x: np.ndarray, shift: int, hflip: bool) -> np.ndarray:
    """Random translations by up to ``shift`` pixels (zero fill) and horizontal flips."""
    if shift:
        n, c, h, w = x.shape
        pad = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
        oy = rng.integers(0, 2 * shift + 1, n)
        ox = rng.integers(0, 2 * shift + 1, n)
        rows = oy[:, None] + np.arange(h)
        cols = ox[:, None] + np.arange(w)
        x = pad.transpose(0, 2, 3, 1)[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if hflip:
        flip = rng.random(len(x)) < 0.5
        x = x.copy()
        x[flip] = x[flip][..., ::-1]
    return x


#: An epoch whose mean training loss is at least this fraction of chance (ln of the number of
#: classes: the cross-entropy of a uniform guess) has not learned, or has collapsed: see
#: :func:`chance_loss_warning`.
CHANCE_LOSS_FRACTION = 0.97


def chance_loss_warning(epoch: int, mean_loss: float, n_classes: int) -> str:
    """A warning if ``epoch`` (1-based, from the second on) ended with its mean training loss at chance.

    A network whose loss sits at ln(n_classes) does no better than a uniform guess. This is how
    the collapse of docs/studies/training.md ("k sweep with the momentum reset") shows: at k = 1/8 one
    run fell from 74.7 % to chance in epoch 5, when the first layer's largest biases
    won at every location of every image, and never recovered. The first epoch is not checked
    (a short or small run may still be near chance there). Returns ``""`` when all is well.
    """
    chance = math.log(n_classes)
    if epoch < 2 or mean_loss < CHANCE_LOSS_FRACTION * chance:  # (a NaN loss warns too)
        return ""
    return (f"warning: epoch {epoch}: mean training loss {mean_loss:.3f} is at or above chance (ln {n_classes} = "
            f"{chance:.3f}, a uniform guess): the network is not learning, or has collapsed (see "
            "docs/studies/training.md: k sweep); try another --seed, a smaller --lr or a denser --k")


def train(arch: Architecture, cfg: TrainConfig, data_dir=None, progress: bool = True, command: str = "",
          train_data=None, test_data=None, max_steps: int | None = None, teacher=None,
          on_epoch=None, init=None) -> tuple[Model, dict]:
    """Train ``arch`` with ``cfg`` and return ``(model, report)``.

    The report (also stored as the model's metadata) holds the dataset, bits, k, learning
    rule, seed, epochs, final training loss (a running average of the cross-entropy with the
    labels, also when a teacher adds soft targets) and each epoch's mean (``epoch_train_loss``),
    ``teacher_train_accuracy`` (with a teacher and no augmentation: its accuracy on the training
    images, else None), ``warnings`` (e.g. an epoch at chance, printed on stderr as it
    happens: :func:`chance_loss_warning`), ``train_images_per_s`` (training steps only),
    ``test_accuracy`` from the NumPy reference forward pass, ``test_accuracy_torch`` from the
    PyTorch forward pass (they must be equal), and the command line.

    Parameters
    ----------
    arch, cfg : Architecture, TrainConfig
    data_dir : optional
        IDX folder for ``fashion-mnist``/``mnist``.
    progress : bool
        Show a tqdm progress bar (on stderr).
    command : str
        The command line, recorded in the metadata.
    train_data, test_data : (images, labels), optional
        Use these instead of loading ``cfg.dataset`` (tests, benchmarks).
    teacher : Model, optional
        ``cfg.teacher`` already loaded and checked (:func:`load_teacher`), so that it is not read
        twice (the CLI loads it before the data, to fail early); ignored without ``cfg.teacher``.
    init : Model, optional
        ``cfg.init`` already loaded and checked (:func:`load_init`), likewise.
    max_steps : int, optional
        Stop after this many steps (benchmarks).
    on_epoch : callable, optional
        ``on_epoch(epoch, model)`` is called after each completed epoch (1-based) with a
        snapshot :class:`~hcs_neuro.core.model.Model` of the current levels, e.g. to record a
        learning curve. Its time is not counted in ``train_images_per_s``.
    """
    shadow_layers = parse_shadow_layers(arch, cfg.shadow_layers)  # (a bad value fails before any work)
    parse_layer_weight_lr(arch, cfg.layer_weight_lr)
    gain_layers = parse_channel_gains(arch, cfg.channel_gains, cfg.weight_step)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    x_train, y_train = train_data if train_data is not None else load_dataset(cfg.dataset, "train", data_dir)
    x_test, y_test = test_data if test_data is not None else load_dataset(cfg.dataset, "test", data_dir)
    if tuple(x_train.shape[1:]) != tuple(arch.input_shape):
        raise ConfigError(f"{arch.source}: input shape {list(arch.input_shape)} does not fit dataset "
                          f"{cfg.dataset!r} images of shape {list(x_train.shape[1:])}")
    if int(y_train.max()) >= arch.n_classes:
        raise ConfigError(f"{arch.source}: readout has {arch.n_classes} channels but dataset {cfg.dataset!r} "
                          f"has {int(y_train.max()) + 1} classes")
    if cfg.train_subset and cfg.train_subset < len(y_train):
        keep = np.sort(np.random.default_rng(cfg.seed + 1).permutation(len(y_train))[:cfg.train_subset])
        x_train, y_train = x_train[keep], y_train[keep]
    soft_of, soft_all, teacher_acc = None, None, None
    if cfg.teacher:
        soft_of = teacher_function(teacher if teacher is not None else load_teacher(cfg.teacher, arch))
        if not (cfg.shift or cfg.hflip):  # fixed images: the soft targets once, before the clock starts
            soft_all = soft_of(x_train)
            teacher_acc = float((soft_all.argmax(1) == y_train).mean())
    learning = "float" if all(s.weight_bits == FLOAT_BITS for s in arch.layers if s.has_weights) else cfg.learning
    net = HCSNet(arch, cfg.learning, cfg.seed, ste=cfg.ste, weight_step=cfg.weight_step)
    net.bias_learning = cfg.bias_learning or cfg.learning
    net.ste_width = cfg.ste_width
    net.shadow_layers = shadow_layers
    if cfg.init:
        if gain_layers:
            raise ConfigError(f"init = {cfg.init!r} with channel_gains = {cfg.channel_gains!r}: a warm start "
                              "keeps the weight levels, which gains would re-draw; use one or the other")
        init = init if init is not None else load_init(cfg.init, arch)
        # a plain continuation (same activity bits everywhere) also keeps the activity steps and
        # the readout's temperature; into other activity bits those start fresh
        net.load_levels(init, calibration=all(a.act_bits == b.act_bits
                                              for a, b in zip(init.architecture.layers, arch.layers)))
    net.use_channel_gains(gain_layers)
    upd = LevelUpdater(net, cfg)
    rng = np.random.default_rng(cfg.seed)
    stub = model_stub(arch)
    n = len(y_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if max_steps is None else min(max_steps, steps_per_epoch * cfg.epochs)
    bar = None
    if progress:
        bar = progress_bar(total=total, desc=f"train {arch.name} ({learning})", unit="step", leave=True)
    step = 0
    t_train = 0.0
    images_seen = 0
    loss_avg = None
    epoch_losses, warnings_ = [], []
    y_t = torch.as_tensor(y_train)
    net.train()
    for epoch in range(cfg.epochs):
        order = rng.permutation(n)
        loss_sum, loss_steps = 0.0, 0
        for s in range(0, n, cfg.batch_size):
            if step >= total:
                break
            idx = order[s:s + cfg.batch_size]
            t0 = time.perf_counter()
            xb = x_train[idx]
            if cfg.shift or cfg.hflip:
                xb = augment(rng, xb, cfg.shift, cfg.hflip)
            xq = torch.as_tensor(quantize_input(stub, xb), dtype=net.dtype)
            logits = net(xq)
            if soft_of is None:
                loss = ce = F.cross_entropy(logits, y_t[idx])
            else:  # (augmented images: the teacher runs on each batch, inside the timed step)
                soft = soft_all[idx] if soft_all is not None else soft_of(xb)
                loss, ce = distill_loss(logits, y_t[idx], torch.as_tensor(soft, dtype=logits.dtype),
                                        cfg.distill_weight, cfg.distill_temp)
            for p in net.parameters():
                p.grad = None
            loss.backward()
            upd.step(step / total)
            t_train += time.perf_counter() - t0
            images_seen += len(idx)
            step += 1
            lv = float(ce.detach())  # the cross-entropy with the labels, with or without a teacher
            loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
            loss_sum, loss_steps = loss_sum + lv, loss_steps + 1
            if bar is not None:
                bar.update(1)
                if step % 20 == 0:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss_avg:.3f}")
        else:  # the epoch ran to its end
            epoch_losses.append(loss_sum / max(loss_steps, 1))
            message = chance_loss_warning(epoch + 1, epoch_losses[-1], arch.n_classes)
            if message:
                warnings_.append(message)
                if bar is not None:
                    bar.write(message, file=sys.stderr)  # above the progress bar
                else:
                    print(message, file=sys.stderr)
            if on_epoch is not None:
                net.eval()
                on_epoch(epoch + 1, net.to_model(dict(epoch=epoch + 1)))
                net.train()
    if bar is not None:
        bar.close()
    net.eval()
    model = net.to_model()
    ev = evaluate(model, x_test, y_test, progress=progress, ops=False)
    logits_t, _ = torch_forward(model, x_test, keep_layers=False)
    acc_torch = float((np.argmax(logits_t, axis=1) == y_test).mean())
    report = {
        "dataset": cfg.dataset,
        "architecture": arch.name,
        "config_file": arch.source,
        "learning": learning,
        "weight_bits": sorted({s.weight_bits for s in arch.layers if s.has_weights}),
        "act_bits": sorted({s.act_bits for s in arch.layers if not s.is_readout}),
        "input_bits": arch.input_bits,
        "k": [s.k for s in arch.layers if not s.is_readout],
        "hcs": arch.hcs,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "steps": step,
        "n_train": int(len(y_train)),
        "training": dataclasses.asdict(cfg),
        "train_loss": loss_avg,
        "epoch_train_loss": epoch_losses,
        "warnings": warnings_,
        "teacher_train_accuracy": teacher_acc,
        "train_images_per_s": images_seen / max(t_train, 1e-9),
        "train_time_s": t_train,
        "test_accuracy": ev["accuracy"],
        "test_accuracy_torch": acc_torch,
        "zero_weight_fraction": ev["zero_weight_fraction"],
        "n_test": ev["n_images"],
        "command": command,
        "torch_version": torch.__version__,
    }
    model.metadata = report
    return model, report


def model_stub(arch):
    return Model(arch, [])


def measure_throughput(arch: Architecture, cfg: TrainConfig, x, y, steps: int, fused_kwta: bool = True) -> float:
    """Training images per second over ``steps`` steps (after one warm-up step).

    ``fused_kwta=False`` forces the pure-PyTorch k-WTA (for comparing it with the compiled one).
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    net = HCSNet(arch, cfg.learning, cfg.seed, ste=cfg.ste, weight_step=cfg.weight_step)
    if not fused_kwta:
        net.use_fused = False
    upd = LevelUpdater(net, cfg)
    stub = model_stub(arch)
    rng = np.random.default_rng(cfg.seed)
    y_t = torch.as_tensor(y)
    net.train()
    t_total, n_img = 0.0, 0
    for s in range(steps + 1):
        idx = rng.integers(0, len(y), cfg.batch_size)
        t0 = time.perf_counter()
        xq = torch.as_tensor(quantize_input(stub, x[idx]), dtype=net.dtype)
        loss = F.cross_entropy(net(xq), y_t[idx])
        for p in net.parameters():
            p.grad = None
        loss.backward()
        upd.step(s / (steps + 1))
        if s:
            t_total += time.perf_counter() - t0
            n_img += len(idx)
    return n_img / t_total


def curve_recorder(path, test_data, cfg: TrainConfig):
    """The ``on_epoch`` callback of :func:`train` behind ``hcs-neuro train --curve PATH``: after every
    epoch the test accuracy (PyTorch integer forward pass) is appended and the curve file
    (:mod:`hcs_neuro.core.curve`) rewritten atomically with all epochs so far."""
    x_test, y_test = test_data
    rows, t0 = [], time.perf_counter()

    def on_epoch(epoch, model):
        logits, _ = torch_forward(model, x_test, keep_layers=False)
        rows.append({"epoch": epoch, "test_accuracy": float((np.argmax(logits, axis=1) == y_test).mean()),
                     "wall_s": time.perf_counter() - t0})
        write_curve(path, dataset=cfg.dataset, n_test=len(y_test), seed=cfg.seed, rows=rows)

    return on_epoch
