"""Study: neuron updates counted under the clock, gated and event policies (issue 26 items 1-2).

Question: with the ladder race, which share of the simulated Loihi energy per image is neuron
updates under each policy, and does the simulated HCS / no-HCS energy ratio follow the ratio of the
counted events (spikes and synaptic operations alone)?
Status: done once (docs/studies/energy_model.md, "Counted neuron updates").
Result: see docs/studies/energy_model.md; the JSON records are in docs/data/update_policies/.
Command: ``python analysis/studies/update_policies.py --out docs/data/update_policies
digits_hcs:digits:359 digits_hcs_nok:digits:359 fashion_hcs_ternary:fashion-mnist:250:125
fashion_hcs_ternary_nok:fashion-mnist:250:125 fashion_hcs_ternary_wide:fashion-mnist:100``

Each job is ``MODEL:DATASET:N_IMAGES[:CHUNK]``: a shipped model name (or a .npz file) run on the
first N test images by :func:`hcs_neuro.pipeline.run_network` (exact race, cpp_standalone, 2
processes) once per policy, validated and priced with the ``loihi`` and ``cmos45_snn`` profiles.
``NAME_nok`` is the shipped model NAME with k-WTA switched off in every layer
(:func:`hcs_neuro.core.architecture.with_overrides` ``hcs=False``: every positive cell wins), the
same weights: the "no HCS" side of the ratio (not a model trained without HCS). One JSON record
per model and policy: neuron updates per image, the Loihi energy split and the update share,
class and layer agreement, the count basis of the neuron updates, times.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from hcs_neuro.core.architecture import with_overrides
from hcs_neuro.core.catalog import load_model_named
from hcs_neuro.core.model import load_model
from hcs_neuro.core.updates import UPDATE_POLICIES
from hcs_neuro.pipeline import load_images, run_network


def model_for(name: str):
    if name.endswith("_nok"):  # the shipped weights with k-WTA switched off in every layer
        m = load_model_named(name[:-4])
        return dataclasses.replace(m, architecture=with_overrides(m.architecture, hcs=False))
    return load_model(name) if name.endswith(".npz") else load_model_named(name)


def run_job(job: str, out: Path) -> None:
    parts = job.split(":")
    name, dataset, n = parts[0], parts[1], int(parts[2])
    chunk = int(parts[3]) if len(parts) > 3 else None
    model = model_for(name)
    images, labels = load_images(model, dataset, "test", None, n)
    for policy in UPDATE_POLICIES:
        path = out / f"{Path(name).stem}_{policy}.json"
        if path.exists():
            continue
        t0 = time.time()
        run = run_network(model, images, labels, updates=policy, n_jobs=2, block=n, chunk=chunk,
                          profiles=["loihi", "cmos45_snn"], progress=False)
        e, v = run.energy, run.validation
        loihi = e["energy"]["loihi"]["per_image_pj"]
        rec = {"model": name, "dataset": dataset, "n_images": n, "updates": policy,
               "class_agreement": v.get("class_agreement"),
               "min_layer_agreement_strict": v.get("min_conditional_agreement_strict"),
               "unconditional": [layer.get("unconditional_agreement_strict") for layer in v.get("layers", [])],
               "neuron_updates_per_image": e["totals"]["neuron_updates_per_image"],
               "loihi_pj": loihi, "loihi_update_share": loihi["neuron_updates_pj"] / loihi["total_pj"],
               "loihi_events_pj": loihi["total_pj"] - loihi["neuron_updates_pj"],
               "count_basis_updates": e["count_basis"]["layers.neuron_updates_per_image"],
               "cmos45_snn": e["energy"]["cmos45_snn"].get("per_image_with_data_movement_uj"),
               "compile_time_s": run.compile_time_s, "wall_time_s": run.wall_time_s, "elapsed_s": time.time() - t0}
        path.write_text(json.dumps(rec, indent=1, default=str))
        print(name, policy, f"{rec['neuron_updates_per_image']:,.0f} updates/image",
              f"{100 * rec['loihi_update_share']:.1f} % of Loihi", f"class agreement {rec['class_agreement']}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("jobs", nargs="+", metavar="MODEL:DATASET:N[:CHUNK]")
    ap.add_argument("--out", required=True, help="folder for the JSON records (existing records are kept)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for job in args.jobs:
        run_job(job, out)


if __name__ == "__main__":
    main()
