"""How far training moved each layer's weight levels from their seeded initialisation.

Usage::

    python analysis/tools/weight_drift.py models/fashion_hcs_ternary.npz OTHER.npz ... [--json OUT]

For every low-precision weighted layer of each trained model: the share of weight levels that
differ from the levels the training run started from, the mean absolute change in levels, and
the spread of the bias levels (in accumulator units). The starting levels are rebuilt from the
architecture and the seed that the model's metadata records (``hcs_neuro.train.HCSNet``
draws them from ``torch.Generator().manual_seed(seed)``, nothing else; layers trained with
``channel_gains`` start as ternary levels times their top level), so the model file is all that
is needed; a warm-started model (``--init``) is compared with the levels of the file its
metadata names, which must still be there. Used in docs/studies/training.md ("The first layer") to
show that a slower first-layer step leaves that layer close to its random start, and ("Two
stages") to count the levels that a second stage moved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from hcs_neuro.core.io import write_json_atomic
from hcs_neuro.core.errors import HCSError
from hcs_neuro.core.model import load_model


def drift(path: Path) -> dict:
    """Per low-precision layer: changed share, mean |change| and bias spread of one model file."""
    from hcs_neuro.train import HCSNet, low_precision_layers, parse_channel_gains

    model = load_model(path)
    seed = model.metadata.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise HCSError(f"{path}: metadata field 'seed' = {seed!r}; expected the integer seed of a training run")
    training = model.metadata.get("training") or {}
    if training.get("init"):  # a warm start: the levels of that model
        init_path = Path(training["init"])
        if not init_path.is_file():
            raise HCSError(f"{path}: it was warm-started from {init_path} (metadata training.init), "
                           "which is not there; its starting levels are in that file")
        init = load_model(init_path)
        starts = {i: np.asarray(init.layers[i].weight_levels, dtype=np.float64)
                  for i in low_precision_layers(model.architecture)}
    else:
        start = HCSNet(model.architecture, "probabilistic", seed=seed)
        if training.get("channel_gains"):  # (their ternary start times the top gain, drawn after the rest)
            start.use_channel_gains(parse_channel_gains(model.architecture, training["channel_gains"]))
        starts = {i: start.effective(i)[0].detach().numpy()  # (levels as the forward pass uses them)
                  for i in low_precision_layers(model.architecture)}
    layers = []
    for i in low_precision_layers(model.architecture):
        spec = model.architecture.layers[i]
        w0 = starts[i]
        w = np.asarray(model.layers[i].weight_levels, dtype=np.float64)
        b = np.asarray(model.layers[i].bias_levels, dtype=np.float64)
        layers.append({"layer": i, "type": spec.type, "weight_bits": spec.weight_bits,
                       "changed_fraction": float(np.mean(w != w0)),
                       "mean_abs_change_levels": float(np.mean(np.abs(w - w0))),
                       "bias_min": int(b.min()), "bias_max": int(b.max()), "bias_sd": float(b.std())})
    return {"model": str(path), "seed": seed, "layers": layers}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path, help="trained .npz model files")
    ap.add_argument("--json", type=Path, help="also write the table as JSON")
    args = ap.parse_args(argv)
    try:
        rows = [drift(p) for p in args.models]
    except HCSError as exc:
        print(f"weight_drift: {exc}", file=sys.stderr)
        return 2
    for r in rows:
        print(f"{r['model']} (seed {r['seed']})")
        for ly in r["layers"]:
            print(f"  layer {ly['layer']} {ly['type']:<7} {ly['weight_bits']}-bit: "
                  f"{100 * ly['changed_fraction']:5.1f} % of the levels changed, mean |change| "
                  f"{ly['mean_abs_change_levels']:.3f} levels; bias levels {ly['bias_min']}..{ly['bias_max']} "
                  f"(sd {ly['bias_sd']:.0f})")
    if args.json:
        write_json_atomic(args.json, {"models": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
