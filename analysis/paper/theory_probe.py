"""Theory check: how hypercolumn sparsification changes probabilistic level updates.

An instrumented copy of the training loop of :func:`hcs_neuro.train.train` (same network
:func:`hcs_neuro.train.HCSNet`, same update rule) that records, per weighted layer:

* ``input_active_fraction``: fraction of the layer's presynaptic units that are non-zero,
  per example;
* ``touched_fraction``: fraction of weights with a non-zero gradient for a single example
  (batch size 1, a fixed probe set of images);
* ``sign_consistency``: per weight, ``|sum_e g_e| / sum_e |g_e|`` over the probe examples
  that touch it (1 = every example pushes the same way), averaged over touched weights;
* ``changed_fraction``: fraction of weight levels that the probabilistic rule actually moved,
  per training step, and ``flip_fraction``: fraction moved per step *against* the sign the
  level ends the run with (wasted, random-walk moves).

The exact prediction checked for the linear readout: the gradient of the cross-entropy with
respect to ``w[c, i]`` is ``(p_c - y_c) * a_i`` with ``p_c - y_c != 0`` for a softmax, so a
readout weight is touched by an example exactly when its presynaptic unit is active:
``touched_fraction == input_active_fraction`` for the readout.

The update step is :class:`hcs_neuro.train.LevelUpdater`, the public hook for custom
training loops (this loop needs per-step access to the levels). The network and the recipe are
those of the claims grid (:mod:`paper_grid`).
"""

from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["probe_training", "theory_point"]


def probe_training(arch, cfg, train_data, test_data, probe_examples: int = 32) -> dict:
    """Train ``arch`` with ``cfg`` in the instrumented loop and return the measurements.

    Parameters
    ----------
    arch, cfg : Architecture, TrainConfig
        As :func:`paper_grid.point_architecture` and :func:`paper_grid.point_train_config` build
        them for a grid point (the recipe of the grid).
    train_data, test_data : (images, labels)
    probe_examples : int
        Test images used for the per-example gradient statistics (drawn with ``10_000 + seed``),
        probed at 5 evenly spaced steps of the run.

    Returns
    -------
    dict
        ``layers``: per weighted layer the means over probes/steps of the quantities in the
        module docstring; ``readout_prediction_max_abs_error``: the largest
        ``|touched - input_active|`` of the readout over all probed examples (exactly 0 if the
        prediction holds); ``test_accuracy`` of the trained levels (NumPy reference).
    """
    import torch
    import torch.nn.functional as F

    from hcs_neuro.core.model import Model
    from hcs_neuro.core.reference import quantize_input
    from hcs_neuro.train import HCSNet, LevelUpdater

    from paper_grid import test_pass

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    x_tr, y_tr = train_data
    x_te, y_te = test_data
    torch.manual_seed(cfg.seed)
    net = HCSNet(arch, cfg.learning, cfg.seed, ste=cfg.ste, weight_step=cfg.weight_step)
    upd = LevelUpdater(net, cfg)
    stub = Model(arch, [])
    rng = np.random.default_rng(cfg.seed)
    widx = sorted(net.widx)  # layer indices with weights
    n = len(y_tr)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    probe_at = set(np.linspace(0, total - 1, 5).astype(int).tolist())
    probe_rng = np.random.default_rng(10_000 + cfg.seed)
    probe_idx = probe_rng.choice(len(y_te), size=min(probe_examples, len(y_te)), replace=False)
    xq_probe = torch.as_tensor(quantize_input(stub, x_te[probe_idx]), dtype=net.dtype)
    y_probe = torch.as_tensor(y_te[probe_idx])
    y_t = torch.as_tensor(y_tr)

    changed = {i: [] for i in widx}
    # moves per weight, counted as they happen (up and down), for the moves against the final sign
    ups = {i: torch.zeros_like(net.weights[net.widx[i]], dtype=torch.int32) for i in widx}
    downs = {i: torch.zeros_like(net.weights[net.widx[i]], dtype=torch.int32) for i in widx}
    probes = {i: {"touched": [], "active": [], "consistency": []} for i in widx}
    readout = max(widx)
    readout_err = 0.0
    t0 = time.perf_counter()
    step = 0
    net.train()
    for _epoch in range(cfg.epochs):
        order = rng.permutation(n)
        for s in range(0, n, cfg.batch_size):
            if step in probe_at:
                readout_err = max(readout_err, _probe(torch, F, net, widx, readout, xq_probe, y_probe, probes))
            idx = order[s:s + cfg.batch_size]
            xq = torch.as_tensor(quantize_input(stub, x_tr[idx]), dtype=net.dtype)
            before = [net.weights[net.widx[i]].detach().clone() for i in widx]
            loss = F.cross_entropy(net(xq), y_t[idx])
            for p in net.parameters():
                p.grad = None
            loss.backward()
            upd.step(step / total)
            for j, i in enumerate(widx):
                d = net.weights[net.widx[i]].detach() - before[j]
                changed[i].append(float((d != 0).double().mean()))
                ups[i] += (d > 0).to(torch.int32)
                downs[i] += (d < 0).to(torch.int32)
            step += 1
    train_time = time.perf_counter() - t0
    net.eval()
    model = net.to_model()
    tp = test_pass(model, x_te, y_te)
    layers = []
    for i in widx:
        final = torch.sign(net.weights[net.widx[i]].detach())
        # a move is against the final sign when its direction differs from it (every move of a
        # weight that ends at 0)
        against = torch.where(final > 0, downs[i], torch.where(final < 0, ups[i], ups[i] + downs[i]))
        layers.append({
            "index": i,
            "type": arch.layers[i].type,
            "n_weights": int(net.weights[net.widx[i]].numel()),
            "input_active_fraction": float(np.mean(probes[i]["active"])),
            "touched_fraction": float(np.mean(probes[i]["touched"])),
            "sign_consistency": float(np.mean(probes[i]["consistency"])),
            "changed_fraction_per_step": float(np.mean(changed[i])),
            "changed_fraction_per_step_last_epoch": float(np.mean(changed[i][-steps_per_epoch:])),
            "flip_fraction_per_step": float(against.double().mean()) / max(step, 1),
        })
    return {
        "layers": layers,
        "readout_prediction_max_abs_error": readout_err,
        "probe_steps": sorted(probe_at),
        "probe_examples": int(len(probe_idx)),
        "steps": step,
        "train_time_s": train_time,
        "test_accuracy": tp["accuracy"],
    }


def theory_point(params: dict, seed: int, *, dataset: str, config: str, epochs: int, batch_size: int, lr: float,
                 weight_step: str = "range", settings: dict | None = None, threads: int = 1, channels: int = 0,
                 test_images: int = 0, probe_examples: int = 32) -> dict:
    """The instrumented run of one grid point (the ``python`` sweep target of
    ``specs/theory_*.toml``): the same recipe options as :func:`paper_grid.train_point`.

    Returns
    -------
    dict
        ``test_accuracy``, ``readout_prediction_max_abs_error`` and, per weighted layer ``i``,
        ``{quantity}_layer{i}`` for every quantity of :func:`probe_training`; plus the means over
        the layers after the first (``{quantity}_later``) and over all layers (``{quantity}_all``).
    """
    from paper_grid import point_data, point_recipe

    arch, cfg = point_recipe(config, params, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, threads=threads,
                             weight_step=weight_step, settings=settings, channels=channels)
    train_data, test_data = point_data(dataset, test_images)
    rec = probe_training(arch, cfg, train_data, test_data, probe_examples=probe_examples)
    out = {"test_accuracy": rec["test_accuracy"],
           "readout_prediction_max_abs_error": rec["readout_prediction_max_abs_error"],
           "steps": rec["steps"], "train_time_s": rec["train_time_s"]}
    quantities = ("input_active_fraction", "touched_fraction", "sign_consistency", "changed_fraction_per_step",
                  "changed_fraction_per_step_last_epoch", "flip_fraction_per_step")
    for q in quantities:
        vals = [layer[q] for layer in rec["layers"]]
        for layer in rec["layers"]:
            out[f"{q}_layer{layer['index']}"] = layer[q]
        out[f"{q}_later"] = float(np.mean(vals[1:])) if len(vals) > 1 else float("nan")
        out[f"{q}_all"] = float(np.mean(vals))
    return out


def _probe(torch, F, net, widx, readout, xq, y, probes) -> float:
    """Per-example gradient statistics on the probe set; returns the readout prediction error."""
    grads = {i: [] for i in widx}
    actives = {i: [] for i in widx}
    acts = {}
    hooks = []
    # presynaptic activity of each weighted layer = the input tensor of that layer's op; record it
    # with the network's record=True pass (outputs of every layer; input for layer 0)
    for e in range(len(y)):
        xe = xq[e:e + 1]
        logits, rec = net(xe, record=True)
        loss = F.cross_entropy(logits, y[e:e + 1])
        for p in net.parameters():
            p.grad = None
        loss.backward()
        for i in widx:
            g = net.weights[net.widx[i]].grad
            grads[i].append(g.detach().clone() if g is not None else torch.zeros_like(net.weights[net.widx[i]]))
            pre = xe if i == 0 else rec[i - 1][2]
            actives[i].append(float((pre != 0).double().mean()))
        for p in net.parameters():
            p.grad = None
    err = 0.0
    for i in widx:
        g = torch.stack(grads[i])  # (E, *w)
        touched = (g != 0).double().flatten(1).mean(dim=1)  # per example
        probes[i]["touched"].append(float(touched.mean()))
        probes[i]["active"].append(float(np.mean(actives[i])))
        tot = g.abs().sum(dim=0)
        mask = tot > 0
        cons = (g.sum(dim=0).abs()[mask] / tot[mask]).mean() if bool(mask.any()) else torch.tensor(float("nan"))
        probes[i]["consistency"].append(float(cons))
        if i == readout:
            err = max(err, float((touched - torch.as_tensor(actives[i], dtype=touched.dtype)).abs().max()))
    del hooks, acts
    return err
