"""The break-even activity of every shipped integer model: where the spiking network would cost what
the reference accelerator costs under the same energy model.

Usage::

    python analysis/tools/break_even.py --out results/break_even [--models digits_hcs fashion_hcs_ternary ...]
        [--n-images 200] [--fashion-n-images 100] [--profile cmos45_snn] [--analytic] [--n-jobs 2]

For each model (default: every shipped model with integer levels, i.e. all but the fp32 baselines)
the exact race is simulated on the first N test images of its dataset (Brian2 cpp_standalone, one
compiled network per model; ``--analytic``: no simulation, the counts a network that reproduces the
reference emits, without neuron updates) and its energy counted and priced
(:func:`hcs_neuro.pipeline.run_network`, :func:`hcs_neuro.measure.energy.network_energy`). Writes
into ``--out``:

* ``energy_<model>.json`` — the full energy result (the same as ``hcs-neuro energy MODEL --json``);
* ``break_even.json`` — per model :func:`hcs_neuro.measure.energy.break_even_summary`: the measured
  activity a0 (excitatory spikes per cell per image), k/C, and per comparison (compute only against
  the dense reference; with data movement against the dense reference and against the sparse
  reference bound) the break-even activity a* = a0 (E_ref - E_fixed) / E_var(a0), with the neuron
  updates as counted and without per-step updates, and the break-even k/C = (k/C) a* / a0;
* ``break_even.png`` — :func:`hcs_neuro.plotting.energy.plot_break_even`, two panels (neuron updates
  as counted; without per-step updates).

The same figure from existing energy JSON files: ``hcs-neuro plot break-even ENERGY_JSON... --out FIG``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hcs_neuro.core.catalog import load_model_named, shipped_model_names
from hcs_neuro.core.errors import HCSError
from hcs_neuro.core.io import write_json_atomic
from hcs_neuro.measure.energy import break_even_summary
from hcs_neuro.pipeline import load_images, run_network


def integer_models() -> list[str]:
    """Shipped models with integer levels (the ones that run as spiking networks)."""
    return [n for n in shipped_model_names() if not load_model_named(n).architecture.is_full_precision]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (created)")
    ap.add_argument("--models", nargs="+", help="model names or files (default: every shipped integer model)")
    ap.add_argument("--n-images", type=int, default=200, help="digits test images per model (default 200)")
    ap.add_argument("--fashion-n-images", type=int, default=100,
                    help="Fashion-MNIST test images per model (default 100)")
    ap.add_argument("--profile", help="spiking profile of the summary (default: each model's own-precision one)")
    ap.add_argument("--analytic", action="store_true", help="no simulation (no neuron updates)")
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--device", default="cpp_standalone", choices=("cpp_standalone", "runtime"))
    args = ap.parse_args(argv)
    args.command = " ".join(["python", "analysis/tools/break_even.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        return _run(args)
    except HCSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.models or integer_models()
    summaries = []
    for name in names:
        model = load_model_named(name)
        dataset = model.metadata.get("dataset") or "digits"
        n = args.n_images if dataset == "digits" else args.fashion_n_images
        images, _ = load_images(model, dataset, "test", None, n)
        t0 = time.perf_counter()
        run = run_network(model, images, device=args.device, n_jobs=args.n_jobs, block=len(images),
                          validate=False, energy=True, analytic=args.analytic, progress=False)
        e = run.energy
        e["wall_time_s"] = time.perf_counter() - t0
        e["dataset"] = dataset
        stem = Path(str(name)).stem
        write_json_atomic(out / f"energy_{stem}.json", e)
        s = break_even_summary(e, args.profile)
        s.update(architecture=s["model"], model=stem, dataset=dataset, source=f"energy_{stem}.json")
        summaries.append(s)
        parts = ", ".join(f"{k} {'none' if c['a_star'] is None else format(c['a_star'], '.3g')}"
                          for k, c in s["comparisons"].items())
        print(f"{stem}: {n} images, activity {s['measured_activity']:.4g}, a* {parts} "
              f"({e['wall_time_s']:.0f} s)", flush=True)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hcs_neuro.plotting.energy import plot_break_even

    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    plot_break_even(summaries, ax=axes[0], step_updates=True)
    plot_break_even(summaries, ax=axes[1], step_updates=False)
    fig.tight_layout()
    fig.savefig(out / "break_even.png", dpi=150)
    plt.close(fig)
    write_json_atomic(out / "break_even.json", {
        "figure": "break_even.png", "command": args.command,
        "analytic": bool(args.analytic), "formula": summaries[0]["formula"] if summaries else None,
        "models": summaries})
    print(f"wrote {out / 'break_even.json'} and {out / 'break_even.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
