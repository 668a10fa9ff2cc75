"""Study: whole models as networks of biophysical hypercolumns (issue 25, item 3).

Question: with every hypercolumn a real LIF / conductance circuit (membranes, synaptic kinetics,
inhibition through synapses), how often does the spiking network agree with the reference?
Status: see docs/studies/network.md ("Biophysical networks") for which cells were run.
Result: docs/studies/network.md; raw JSON in docs/data/network_bio/.
Command: ``python analysis/studies/network_bio.py digits_hcs lif_net --json docs/data/network_bio/digits_lif_net.json``

Runs one model with one network circuit through the public pipeline
(:func:`hcs_neuro.pipeline.run_network`, cpp_standalone compiled once, 2 processes) and writes the
validation (class agreement, spiking accuracy, conditional per-layer agreement strict and
tie-tolerant, latency median / p95, spikes per neuron) plus what the validator does not report:
per-layer over- and under-selection (hypercolumns with more / fewer spiking winners than the
reference applied to the spiking previous layer), feed-forward and circuit SOPs per image (computed
from counted spikes), per-layer race timing and the number of simultaneous first readout spikes.

Usage::

    python analysis/studies/network_bio.py MODEL CIRCUIT [--n N] [--set neuron.sigma_v=0.1mV] [--jobs 2] --json OUT
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from hcs_neuro.brian.session import make_network, network_circuit
from hcs_neuro.pipeline import load_images, resolve_model, run_network, validation_summary
from hcs_neuro.report import conditional_reference_winners


def selection_errors(model, reference, spiking) -> list:
    """Per conv/pool layer: fraction of hypercolumns with more (over) / fewer (under) spiking
    winners than the reference layer applied to the spiking previous layer."""
    out = []
    n = spiking.n_images
    for i, layer in enumerate(spiking.layers[:-1]):
        ref_w = conditional_reference_winners(model, reference, spiking, i)
        if ref_w is None:
            continue
        c = layer.winners.shape[1]
        sw = np.asarray(layer.winners, bool).reshape(n, c, -1).sum(1)
        rw = np.asarray(ref_w, bool).reshape(n, c, -1).sum(1)
        out.append({"index": i, "over_selection": float((sw > rw).mean()), "under_selection": float((sw < rw).mean())})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("circuit")
    ap.add_argument("--n", type=int, default=None, help="first N test images (default: all)")
    ap.add_argument("--start", type=int, default=0, help="skip the first START of those N images (pieces of a run)")
    ap.add_argument("--chunk", type=int, default=None, help="images per run of the compiled binary")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="circuit override, e.g. neuron.sigma_v=0.1mV or network.tie=random")
    ap.add_argument("--json", required=True)
    a = ap.parse_args(argv)
    model = resolve_model(a.model)
    dataset = "digits" if model.architecture.input_shape[-1] == 8 else "fashion-mnist"
    images, labels = load_images(model, dataset, "test", None, a.n)
    images, labels = images[a.start:], labels[a.start:]
    circuit = network_circuit(make_network(model, a.circuit))
    if a.set:
        circuit = circuit.with_overrides(dict(kv.split("=", 1) for kv in a.set))
    t0 = time.perf_counter()
    run = run_network(model, images, labels, circuit=circuit, n_jobs=a.jobs, chunk=a.chunk, seed=a.seed,
                      block=len(images),
                      energy=False, keep_first=True, progress=False)
    x, y, ref, sp = run.first_block
    out = validation_summary(run)
    out.update(model=str(a.model), start=a.start, circuit_arg=a.circuit, overrides=dict(kv.split("=", 1) for kv in a.set),
               dataset=dataset, seed=a.seed, command="python analysis/studies/network_bio.py " + " ".join(
                   [a.model, a.circuit] + ([f"--n {a.n}"] if a.n else []) + ([f"--start {a.start}"] if a.start else []) + [f"--set {s}" for s in a.set]))
    out["selection"] = selection_errors(model, ref, sp)
    cells = sum(L.n_exc for L in sp.layers)
    n = sp.n_images
    out["exc_spikes_per_neuron_per_image"] = float(sum(L.spike_counts.sum() for L in sp.layers) / cells / n)
    out["inh_spikes_per_neuron_per_image"] = float(sum(L.interneuron_spikes.sum() for L in sp.layers)
                                                   / sum(L.n_inh for L in sp.layers) / n)
    out["sops_feedforward_per_image"] = float((sum(L.sops for L in sp.layers) + sp.input_sops).mean())
    out["sops_circuit_per_image"] = float(sum(L.sops_circuit for L in sp.layers).mean())
    out["sops_per_image"] = float(sp.total_sops().mean())
    out["ambiguous_decisions"] = sp.metadata.get("ambiguous_decisions")
    out["layer_timing"] = sp.metadata.get("layer_timing")
    out["plan"] = sp.metadata.get("plan")
    out["study_wall_s"] = time.perf_counter() - t0
    keys = ["n_images", "class_agreement", "spiking_accuracy", "reference_accuracy", "undecided_fraction",
            "latency_ms_median", "latency_ms_p95", "spikes_per_neuron_per_image", "sops_per_image",
            "compile_time_s", "wall_time_s", "ambiguous_decisions"]
    for k in keys:
        print(f"{k:32s} {out.get(k)}")
    for L, s in zip(out["layers"], out["selection"] + [{}]):
        print(f"  L{L['index']} {L['type']:7s} strict {L['conditional_agreement_strict']:.4f} "
              f"tol {L['conditional_agreement_tie_tolerant']:.4f} over {s.get('over_selection', float('nan')):.4f} "
              f"under {s.get('under_selection', float('nan')):.4f}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
