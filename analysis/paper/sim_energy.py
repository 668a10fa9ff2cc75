"""Energy per image from *simulated* spiking runs, beside the analytic counts of the same images.

For the grid points named by the ``sim_energy_*`` keys of a dataset section of
``experiments.toml`` (weight x activity precision with and without HCS, and the k sweep), the
trained model is run as a Brian2 spiking network by the package's own simulator
(:func:`hcs_neuro.brian.session.simulate`) on the first ``sim_energy_images`` test images, and
:func:`hcs_neuro.measure.energy.network_energy` counts, from that simulation, the spikes, synaptic
operations (SOPs) and neuron updates per image, next to the *analytic* counts of the same images
(what a network that reproduces the reference emits: one spike per winner, the reference
activity times the exact fan-out). Both are priced with the profiles of
``hcs_neuro/data/energy_profiles.toml``.

Models: a run record made by ``make_paper.py`` keeps its trained model as ``<key>.npz`` beside
``<key>.json``; for older records (no model file) the point is retrained with the same spec and
seed (:func:`runs.run_point`) and the retrained model's test accuracy is stored next to the
record's, so a reader sees whether the retrained model is the one of the record.

Each simulated point is cached as ``sim-<key>-n<N>-<device>.json`` beside the run records.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from runs import code_version, load_split, run_key, run_point, stratified_subset, unique_specs

__all__ = ["SIM_SCHEMA", "sim_specs", "sim_key", "simulate_point", "sim_cached", "split_energy"]

#: Bumped when the meaning of a simulated-energy record changes (old records are then ignored).
SIM_SCHEMA = 1

#: Reference profiles priced for every point (plus the model's own-precision profile).
REFERENCE_PROFILES = ("cmos45_fp32", "cmos45_int8", "cmos45_lowprec")


def sim_specs(ds: dict, studies: dict) -> list[dict]:
    """The run specs of a dataset section whose models are simulated (no duplicates, grid order).

    ``sim_energy_weight_bits`` x ``sim_energy_act_bits`` of the precision study (full-precision
    settings cannot become a spiking network and are skipped), and, when ``sim_energy_k`` is
    true, every point of the k study; only seeds in ``sim_energy_seeds`` and HCS settings in
    ``sim_energy_hcs`` (default ``[true, false]``).
    """
    seeds = [int(s) for s in ds.get("sim_energy_seeds", [])]
    wbs = [int(b) for b in ds.get("sim_energy_weight_bits", []) if int(b) != 32]
    abs_ = [int(b) for b in ds.get("sim_energy_act_bits", []) if int(b) != 32]
    hcs = [bool(h) for h in ds.get("sim_energy_hcs", [True, False])]
    out = [s for s in studies.get("precision", [])
           if s["seed"] in seeds and s["weight_bits"] in wbs and s["act_bits"] in abs_ and s["hcs"] in hcs]
    if ds.get("sim_energy_k"):
        out += [s for s in studies.get("k", []) if s["seed"] in seeds and s["hcs"] in hcs]
    return unique_specs(out)


def sim_key(spec: dict, n_images: int, device: str) -> str:
    """File stem of the simulated-energy record of ``spec``."""
    return f"sim-{run_key(spec)}-n{int(n_images)}-{device}"


def _model_for(spec: dict, cache: Path, command: str):
    """The trained model of ``spec`` and where it came from (saved with the record, or retrained)."""
    from hcs_neuro.core.model import load_model, save_model

    key = run_key(spec)
    saved = cache / f"{key}.npz"
    retrained = cache / f"sim-{key}.npz"
    record = cache / f"{key}.json"
    rec_acc = None
    if record.exists():
        try:
            rec_acc = json.loads(record.read_text()).get("test_accuracy")
        except (OSError, json.JSONDecodeError):
            rec_acc = None
    if saved.exists():
        return load_model(saved), {"model_source": "saved with the run record", "model_file": saved.name,
                                   "record_test_accuracy": rec_acc}
    info = {"model_source": "retrained (the run record keeps no model)", "model_file": retrained.name,
            "record_test_accuracy": rec_acc}
    if retrained.exists():
        meta = json.loads(retrained.with_suffix(".json").read_text())
        info.update(meta)
        return load_model(retrained), info
    t0 = time.process_time()
    rec, model = run_point(spec, command=command, threads=1, return_model=True)
    save_model(model, retrained)
    meta = {"retrained_test_accuracy": rec["test_accuracy"], "retrain_cpu_s": time.process_time() - t0,
            "retrained_code": rec["code"],
            "retrained_matches_record": None if rec_acc is None else bool(rec["test_accuracy"] == rec_acc)}
    from hcs_neuro.core.io import write_json_atomic

    write_json_atomic(retrained.with_suffix(".json"), meta)
    info.update(meta)
    return model, info


def split_energy(counts: dict, profile) -> dict:
    """Loihi-style energy per image (pJ) split into the parts the two count bases share.

    ``feedforward_*``: SOPs of the feed-forward synapses x ``synaptic_op_pj`` + input and
    excitatory spikes x ``spike_pj`` — from the simulated counts and from the analytic counts
    (equal wherever the counts are); ``circuit_sim``: k-WTA circuit SOPs x ``synaptic_op_pj`` +
    interneuron spikes x ``spike_pj``; ``neuron_updates_sim``: neuron updates x
    ``neuron_update_pj``; ``total_sim`` = the three simulated parts; ``total_analytic`` = the
    analytic feed-forward part (an analytic count has no circuit and no neuron updates).
    """
    c = counts
    ff_sim = c["sops_feedforward_sim"] * profile.synaptic_op_pj + (
        c["input_spikes_sim"] + c["excitatory_spikes_sim"]) * profile.spike_pj
    ff_an = c["sops_analytic"] * profile.synaptic_op_pj + (
        c["input_spikes_analytic"] + c["excitatory_spikes_analytic"]) * profile.spike_pj
    circ = c["sops_circuit_sim"] * profile.synaptic_op_pj + c["interneuron_spikes_sim"] * profile.spike_pj
    upd = c["neuron_updates_sim"] * profile.neuron_update_pj
    return {"feedforward_sim": ff_sim, "feedforward_analytic": ff_an, "circuit_sim": circ, "neuron_updates_sim": upd,
            "total_sim": ff_sim + circ + upd, "total_analytic": ff_an}


def simulate_point(spec: dict, model, n_images: int, device: str = "runtime", n_jobs: int = 1,
                   directory=None) -> dict:
    """Simulate ``model`` on the first ``n_images`` test images of its study; count and price.

    The test images are those the run was evaluated on (its ``test_subset``, if any, else the
    whole split), the first ``n_images`` of them. Returns a JSON-able record: class agreement
    with the reference, accuracies, the simulated and analytic counts per image (means), the
    SOP cross-check, and energies per image (pJ) for Loihi (simulated and analytic) and the
    45 nm reference profiles (dense and zeros skipped).
    """
    from hcs_neuro.measure.energy import network_energy, own_precision_profile
    from hcs_neuro.measure.profiles import get_profile
    from hcs_neuro.core.reference import forward, quantize_input
    from hcs_neuro.brian.session import simulate

    x, y = load_split(spec["dataset"], "test")
    if spec.get("test_subset"):
        keep = np.sort(stratified_subset(y, int(spec["test_subset"]), seed=0))
        x, y = x[keep], y[keep]
    images, labels = x[:n_images], y[:n_images]
    t0 = time.perf_counter()
    c0 = time.process_time()
    ref = forward(model, images, keep_layers=True)
    levels = quantize_input(model, images)
    spk = simulate(model, images, n_jobs=n_jobs, progress=False, device=device, directory=directory)
    own = own_precision_profile(model.architecture)
    profiles = ["loihi", *REFERENCE_PROFILES]
    e = network_energy(model, ref, spk, profiles, input_levels=levels, input_coding="single")
    e_an = network_energy(model, ref, None, ["loihi"], input_levels=levels, input_coding="single")
    loihi = get_profile("loihi")
    t = e["totals"]
    inp = e["input"]
    layers = e["layers"]
    counts = {
        "input_spikes_sim": inp["spikes_per_image"], "input_spikes_analytic": inp["spikes_analytic_per_image"],
        "excitatory_spikes_sim": float(sum(l["spikes_per_image"] for l in layers)),
        "excitatory_spikes_analytic": float(sum(l["spikes_analytic_per_image"] for l in layers)),
        "interneuron_spikes_sim": t["interneuron_spikes_per_image"],
        "sops_feedforward_sim": t["sops_feedforward_per_image"], "sops_analytic": t["sops_analytic_per_image"],
        "sops_circuit_sim": t["sops_circuit_per_image"], "neuron_updates_sim": t["neuron_updates_per_image"],
        "dense_macs": t["dense_macs_per_image"], "effective_ops": t["effective_ops_per_image"],
    }
    parts = split_energy(counts, loihi)
    sim_pj = e["energy"]["loihi"]["per_image_pj"]
    if not np.isclose(parts["total_sim"], sim_pj["total_pj"], rtol=1e-9):
        raise AssertionError(f"Loihi energy split {parts['total_sim']} != network_energy {sim_pj['total_pj']}")
    # per-image simulated energy (for the spread over images): SOPs and spikes per image, neuron
    # updates are the same for every image (cells x steps of the fixed schedule)
    per = e["per_image"]
    per_img = (np.asarray(per["sops"], float) * loihi.synaptic_op_pj + np.asarray(per["spikes"], float) * loihi.spike_pj
               + counts["neuron_updates_sim"] * loihi.neuron_update_pj)
    per_img_an = (np.asarray(per["sops_analytic"], float) * loihi.synaptic_op_pj
                  + (np.asarray(e_an["per_image"]["spikes_analytic"], float)
                     + (np.asarray(levels).reshape(n_images, -1) != 0).sum(1)) * loihi.spike_pj)
    if not np.isclose(per_img_an.mean(), parts["total_analytic"], rtol=1e-9):
        raise AssertionError(f"per-image analytic energy {per_img_an.mean()} != {parts['total_analytic']}")
    ref_pj = {p: e["energy"][p]["per_image_pj"] for p in REFERENCE_PROFILES}
    plan = spk.metadata.get("plan") or {}
    # exact comparison, image by image, on the integer counts (means of equal integers can differ
    # in the last floating-point digit)
    ff_sim = np.asarray(spk.input_sops, np.int64) + sum(np.asarray(l.sops, np.int64) for l in spk.layers)
    exc_sim = sum(np.asarray(l.spike_counts, np.int64).reshape(n_images, -1).sum(1) for l in spk.layers)
    in_sim = np.asarray(spk.input_spike_counts, np.int64).reshape(n_images, -1).sum(1)
    in_an = (np.asarray(levels).reshape(n_images, -1) != 0).sum(1)
    equal = {"sops_feedforward": bool(np.array_equal(ff_sim, np.asarray(e["per_image"]["sops_analytic"], np.int64))),
             "excitatory_spikes": bool(np.array_equal(exc_sim, np.asarray(e_an["per_image"]["spikes_analytic"],
                                                                          np.int64))),
             "input_spikes": bool(np.array_equal(in_sim, in_an))}
    return {
        "schema": SIM_SCHEMA,
        "spec": spec,
        "key": run_key(spec),
        "n_images": int(n_images),
        "device": device,
        "class_agreement": float(np.mean(np.asarray(spk.pred) == np.asarray(ref.pred))),
        "reference_accuracy": float(np.mean(np.asarray(ref.pred) == labels)),
        "spiking_accuracy": float(np.mean(np.asarray(spk.pred) == labels)),
        "counts": counts,
        "counts_equal_every_image": equal,
        "sop_check": e["sop_check"],
        "steps_per_image": plan.get("steps_per_image"),
        "energy_pj": {
            "loihi": parts,
            "loihi_simulated_sd_over_images": float(per_img.std(ddof=1)) if n_images > 1 else 0.0,
            "loihi_analytic_sd_over_images": float(per_img_an.std(ddof=1)) if n_images > 1 else 0.0,
            "loihi_network_energy_simulated": sim_pj,
            "loihi_network_energy_analytic": e_an["energy"]["loihi"]["per_image_pj"],
            "reference": ref_pj, "own_precision_profile": own,
            "reference_own_effective": ref_pj[own]["effective_pj"] if own in ref_pj else None,
        },
        "profiles": {p: get_profile(p).citation for p in profiles},
        "sim_wall_s": time.perf_counter() - t0,
        "sim_cpu_s_main_process": time.process_time() - c0,
        "compile_time_s": spk.metadata.get("compile_time_s"),
        "run_time_s": spk.metadata.get("run_time_s"),
        "note": e["note"],
    }


def sim_cached(spec: dict, cache, n_images: int, *, device: str = "runtime", n_jobs: int = 1, command: str = "",
               directory=None) -> dict:
    """The cached simulated-energy record of ``spec`` or compute (model: saved or retrained) and store it."""
    from hcs_neuro.core.io import write_json_atomic

    cache = Path(cache)
    path = cache / f"{sim_key(spec, n_images, device)}.json"
    if path.exists():
        try:
            rec = json.loads(path.read_text())
            if rec.get("spec") == spec and rec.get("schema") == SIM_SCHEMA:
                rec["cached"] = True
                return rec
        except (OSError, json.JSONDecodeError):
            pass
    code = code_version()
    model, info = _model_for(spec, cache, command)
    rec = simulate_point(spec, model, n_images, device=device, n_jobs=n_jobs, directory=directory)
    rec.update({"model": info, "produced_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "produced_by": command, "code": code})
    write_json_atomic(path, rec)
    rec["cached"] = False
    return rec


def main(argv=None) -> int:
    """Simulate the ``sim_energy_*`` points of the grid whose runs are cached (no grid training).

    ``python analysis/paper/sim_energy.py [--quick] [--out DIR] [--only digits,fashion]``: the same
    records ``make_paper.py`` makes at the end of a section, for points whose run record (and, for
    records made since models are kept, model file) already exist; other points are skipped and
    listed. Lets the simulations of a section start while its grid is still training.
    """
    import argparse
    import os
    import sys

    import make_paper as mp

    ap = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", help="output folder of make_paper.py (default analysis/, or output/paper-quick)")
    ap.add_argument("--only", help="comma-separated sections")
    args = ap.parse_args(argv)
    grid = mp.load_grid(args.quick)
    out = Path(args.out) if args.out else (mp.REPO / ("output/paper-quick" if args.quick else "analysis"))
    cache = out / "results" / "paper_cache"
    os.chdir(mp.REPO)
    command = " ".join(["python", "analysis/paper/sim_energy.py", *sys.argv[1:]] if argv is None else
                       ["python", "analysis/paper/sim_energy.py", *argv])
    sections = [k for k, v in grid.items() if isinstance(v, dict)]
    if args.only:
        sections = [s for s in sections if s in args.only.split(",")]
    for name in sections:
        ds = grid[name]
        n = int(ds.get("sim_energy_images", 0))
        if n <= 0:
            continue
        studies = mp.build_specs(ds, list(grid.get("seeds", [0, 1, 2])))
        for s in sim_specs(ds, studies):
            key = run_key(s)
            if not (cache / f"{key}.json").exists():
                print(f"{name}: skipped {key} (no run record yet)", file=sys.stderr)
                continue
            rec = sim_cached(s, cache, n, device=ds.get("sim_energy_device", "runtime"), command=command)
            print(f"{name}: {key} wb {s['weight_bits']} ab {s['act_bits']} hcs {s['hcs']} k {s['k']}: "
                  f"{'cached' if rec.get('cached') else 'simulated'}, counts equal "
                  f"{all(rec['counts_equal_every_image'].values())}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
